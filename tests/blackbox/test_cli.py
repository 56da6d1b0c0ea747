"""The `threshold` command as an operator runs it: a fresh install, accounts, bad configuration, serving."""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.blackbox.conftest import SESSION_COOKIE, Browser, clean_env, migrate, run_cli, start_server
from tests.conftest import STRONG_PASSWORD, free_port


@pytest.fixture
def fresh_install(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """No configuration at all, in an empty working directory: the embedded default (./var)."""
    return clean_env(THRESHOLD_LOG_LEVEL="warning"), tmp_path


def test_migrate_on_a_fresh_install_creates_the_database_and_a_private_kek(
    fresh_install: tuple[dict[str, str], Path],
) -> None:
    env, cwd = fresh_install
    result = run_cli("migrate", env=env, cwd=cwd)

    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    assert (cwd / "var" / "threshold.db").is_file()
    kek = cwd / "var" / "kek"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    key = kek.read_text()

    again = run_cli("migrate", env=env, cwd=cwd)
    assert again.returncode == 0, again.stderr
    assert kek.read_text() == key  # generated once, never replaced


def test_migrate_uses_the_configured_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    result = run_cli("migrate", env=clean_env(THRESHOLD_DATA_DIR=data), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (data / "threshold.db").is_file()
    assert stat.S_IMODE((data / "kek").stat().st_mode) == 0o600
    assert not (tmp_path / "var").exists()


def test_users_create_from_stdin_then_list(fresh_install: tuple[dict[str, str], Path]) -> None:
    env, cwd = fresh_install
    migrate(env, cwd=cwd)

    created = run_cli(
        "users",
        "create",
        "--email",
        "Operator@Example.com",
        "--password-stdin",
        env=env,
        cwd=cwd,
        stdin=STRONG_PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert STRONG_PASSWORD not in created.stdout + created.stderr

    listed = run_cli("users", "list", "--json", env=env, cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    users = json.loads(listed.stdout)
    assert [(u["email"], u["disabled"]) for u in users] == [("Operator@example.com", False)]
    assert users[0]["id"] == json.loads(created.stdout)["id"]

    duplicate = run_cli(
        "users",
        "create",
        "--email",
        "operator@example.com",
        "--password-stdin",
        env=env,
        cwd=cwd,
        stdin=STRONG_PASSWORD + "\n",
    )
    assert duplicate.returncode != 0
    assert "email_unavailable" in duplicate.stderr


WEAK_PASSWORDS = [
    "short",
    "password",
    "aaaaaaaaaaaaaaaaaaaaaaa",
    "operator@example.com",
    "threshold threshold",
]


def test_weak_passwords_are_refused(fresh_install: tuple[dict[str, str], Path]) -> None:
    env, cwd = fresh_install
    migrate(env, cwd=cwd)

    accepted = []
    for password in WEAK_PASSWORDS:
        result = run_cli(
            "users",
            "create",
            "--email",
            "operator@example.com",
            "--password-stdin",
            env=env,
            cwd=cwd,
            stdin=password + "\n",
        )
        if (
            result.returncode == 0
            or not re.search(r"password_\w+", result.stderr)
            or "Traceback" in result.stderr
        ):
            accepted.append((password, result.returncode, result.stderr))

    assert accepted == []
    listed = run_cli("users", "list", "--json", env=env, cwd=cwd)
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize("command", ["migrate", "serve"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THRESHOLD_ARGON2__MEMORY_KIB", "1024"),
        ("THRESHOLD_ISSUER", "notaurl"),
        ("THRESHOLD_DATABASE_URL", "mysql://db/threshold"),
    ],
)
def test_invalid_environment_is_refused_naming_the_setting(
    fresh_install: tuple[dict[str, str], Path], command: str, variable: str, value: str
) -> None:
    env, cwd = fresh_install
    args = [command, "--port", str(free_port())] if command == "serve" else [command]

    result = run_cli(*args, env={**env, variable: value}, cwd=cwd, timeout=30)

    assert result.returncode != 0
    assert variable in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (cwd / "var").exists()  # nothing was created on a refused configuration


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_invalid_config_file_is_refused_naming_the_setting(
    fresh_install: tuple[dict[str, str], Path], command: str
) -> None:
    env, cwd = fresh_install
    config = cwd / "threshold.toml"
    config.write_text('issuer = "https://auth.example.com"\n\n[argon2]\nmemory_kib = 1024\n')

    result = run_cli("--config", str(config), command, env=env, cwd=cwd, timeout=30)

    assert result.returncode != 0
    assert "THRESHOLD_ARGON2__MEMORY_KIB" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_missing_or_malformed_config_file_is_refused(fresh_install: tuple[dict[str, str], Path]) -> None:
    env, cwd = fresh_install
    missing = run_cli("--config", str(cwd / "nope.toml"), "migrate", env=env, cwd=cwd)
    assert missing.returncode != 0
    assert "nope.toml" in missing.stderr

    broken = cwd / "broken.toml"
    broken.write_text("issuer = \n[[[")
    malformed = run_cli("--config", str(broken), "migrate", env=env, cwd=cwd)
    assert malformed.returncode != 0
    assert "invalid configuration" in malformed.stderr, malformed.stderr
    assert "Traceback" not in malformed.stderr


def test_serve_refuses_an_unmigrated_database(fresh_install: tuple[dict[str, str], Path]) -> None:
    env, cwd = fresh_install
    port = free_port()

    result = run_cli("serve", "--host", "127.0.0.1", "--port", str(port), env=env, cwd=cwd, timeout=60)

    assert result.returncode != 0
    assert "threshold migrate" in result.stdout + result.stderr


def test_serve_with_two_workers_on_sqlite(tmp_path: Path, http: httpx.Client) -> None:
    env = clean_env(THRESHOLD_DATA_DIR=tmp_path / "data", THRESHOLD_LOG_LEVEL="info")
    migrate(env, cwd=tmp_path)
    server = start_server(env, tmp_path, workers=2)
    try:
        deadline = time.monotonic() + 30
        while server.output().count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = set(re.findall(r"Started server process \[(\d+)\]", server.output()))
        assert len(workers) == 2, server.output()
        assert all(Path(f"/proc/{pid}").exists() for pid in workers)

        # A session made through one connection holds on fresh connections, whichever worker answers.
        browser = Browser(http)
        signed_up = browser.signup(server, "two.workers@example.com")
        assert signed_up.status_code == 201, signed_up.text
        for _ in range(20):
            with httpx.Client(timeout=10) as fresh:
                response = Browser(fresh, cookies=dict(browser.cookies)).get(server, "/api/v1/session")
                assert response.status_code == 200, response.text
        token = browser.session or ""
        assert browser.post(server, "/api/v1/logout").status_code == 204
        for _ in range(10):
            with httpx.Client(timeout=10) as fresh:
                copied = Browser(fresh, cookies={SESSION_COOKIE: token})
                assert copied.get(server, "/api/v1/session").status_code == 401
    finally:
        server.stop()
    assert server.process.returncode is not None
