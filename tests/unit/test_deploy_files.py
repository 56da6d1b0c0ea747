"""The deployment files (Dockerfile, compose.yaml, deploy/threshold.service) read as their tools read
them: no container runtime or systemd here, so each is parsed and held to what the README promises: an
unprivileged process that writes only its data directory, secrets that must be given (never defaulted),
the schema migrated before the service starts, and only settings Threshold knows."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from threshold.cli import config_reference

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = frozenset(re.findall(r"^\| `(THRESHOLD_[A-Z0-9_]+)` \|", config_reference(), re.M))


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(instruction, arguments) per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def test_the_image_runs_unprivileged_from_pinned_bases_and_checks_its_health() -> None:
    stages = dockerfile_stages()
    assert len(stages) == 2  # a build stage; the final one has no compiler or pip cache
    for stage in stages:
        base = stage[0][1].split()[0]
        assert ":" in base and not base.endswith(":latest"), base
    final = dict(stages[-1])
    user = final["USER"].split(":")
    assert user[0] not in ("root", "0") and int(user[0]) >= 1000
    assert final["EXPOSE"] == "8400"
    assert "/healthz" in final["HEALTHCHECK"]
    assert shlex.split(final["ENTRYPOINT"].strip("[]").replace(",", " ")) == ["threshold"]
    assert "THRESHOLD_DATA_DIR=/var/lib/threshold" in final["ENV"]
    assert "PYTHONDONTWRITEBYTECODE=1" in final["ENV"]  # nothing written beside the code (read-only root)
    for instruction, arguments in (i for stage in stages for i in stage):
        assert not (instruction == "ADD" and "://" in arguments), "no remote ADD"
        if instruction == "COPY" and "--from" not in arguments:
            for source in arguments.split()[:-1]:
                assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "var" in ignored and ".git" in ignored


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_migrates_first_and_runs_threshold_read_only_without_privileges() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "threshold"}
    migrate, threshold = services["migrate"], services["threshold"]
    assert migrate["command"] == ["migrate"]
    assert threshold["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert threshold["depends_on"]["redis"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for service in (migrate, threshold):
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
        assert any(v.endswith(":/var/lib/threshold") for v in service["volumes"])
    assert all(port.startswith("127.0.0.1:") for port in threshold["ports"])  # behind the TLS proxy
    assert "--appendonly" in services["redis"]["command"]  # sessions survive a Redis restart


def test_compose_demands_its_secrets_and_names_only_real_settings() -> None:
    env = compose()["services"]["threshold"]["environment"]
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert "THRESHOLD_DATABASE_URL" in env and "THRESHOLD_REDIS_URL" in env
    # a secret has no default: compose refuses to start without it (${VAR:?message})
    assert re.fullmatch(r"\$\{THRESHOLD_KEY_ENCRYPTION_KEY:\?[^}]+\}", env["THRESHOLD_KEY_ENCRYPTION_KEY"])
    assert "${POSTGRES_PASSWORD:?" in env["THRESHOLD_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_the_systemd_unit_migrates_first_and_is_hardened() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read(ROOT / "deploy" / "threshold.service")
    service = unit["Service"]
    assert service["User"] not in ("root", "0")
    assert service["ExecStartPre"].split()[-1] == "migrate"
    start = service["ExecStart"].split()
    assert start[0] == "/opt/threshold/bin/threshold" and "serve" in start
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
        "StateDirectory": "threshold",
    }
    assert {k: service.get(k) for k in expected} == expected
    for assignment in [service["Environment"]]:
        name = assignment.split("=", 1)[0]
        assert name in SETTINGS, name
    assert unit["Install"]["WantedBy"] == "multi-user.target"
