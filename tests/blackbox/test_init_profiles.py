"""`threshold init --profile P`: each profile's file starts Threshold, and what it says is what runs.

For every profile: the command writes a commented file and prints the next commands; Threshold is
migrated and served with that file (`THRESHOLD_CONFIG`), the printed `threshold` commands that need no
outside service (clients, organizations, SCIM tokens) succeed against it, and the architecture's
settings show where a person or an application meets them: the session lifetime of a sign-up, the
verification a B2B sign-up waits for, the audience and lifetime of an API's tokens, a mobile app's
loopback redirect on any port without a secret.
"""

from __future__ import annotations

import base64
import json
import shlex
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.blackbox.conftest import Browser
from tests.blackbox.oidc_support import HttpRP
from tests.conftest import STRONG_PASSWORD
from tests.support import Deployment, Server, clean_env, make_deployment, run_cli
from threshold.cli import _parser
from threshold.cli.init import PROFILES

APP = "http://127.0.0.1:9000"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def printed_commands(output: str) -> list[list[str]]:
    """The `threshold ...` lines printed under `next:`, as argument lists (without `threshold`)."""
    lines = output.split("next:\n", 1)[1].splitlines()
    return [shlex.split(line.strip())[1:] for line in lines if line.strip().startswith("threshold ")]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def initialised(tmp_path: Path, profile: str) -> tuple[Path, list[list[str]]]:
    env = clean_env()
    written = run_cli("init", "--profile", profile, "--app-url", APP, env=env, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    config = tmp_path / "threshold.toml"
    text = config.read_text()
    assert text.startswith(f"# Threshold configuration: {PROFILES[profile].title}")
    assert sum(line.startswith("# ") for line in text.splitlines()) >= 8  # it explains itself
    # the data beside the file, whichever directory threshold is later run in
    assert f"data_dir = {json.dumps(str((tmp_path / 'var').resolve()))}" in text
    again = run_cli("init", "--profile", profile, env=env, cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr and config.read_text() == text
    return config, printed_commands(written.stdout)


def run_printed(deployment: Deployment, commands: list[list[str]]) -> dict[str, Any]:
    """Every printed command but migrate and serve (which the deployment ran) and those that need an
    outside party (a shell variable for an IdP's client, a DNS record): each must succeed. Their --json
    answers, by command name."""
    answers: dict[str, Any] = {}
    for argv in commands:
        assert argv[:2] == ["--config", "threshold.toml"], argv
        rest = argv[2:]
        outside = any("$" in a for a in rest) or rest[1:3] == ["domains", "verify"]
        if rest[0] in ("migrate", "serve") or outside:
            _parser().parse_args(argv)  # not run here, but a command the CLI knows as written
            continue
        done = deployment.cli(*rest)
        assert done.returncode == 0, (rest, done.stderr)
        if "--json" in rest:
            answers[" ".join(rest[:2])] = json.loads(done.stdout)
    return answers


@pytest.fixture
def served(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Deployment, Server, dict[str, Any]]]:
    profile = request.param
    config, commands = initialised(tmp_path, profile)
    (tmp_path / "deployment").mkdir()
    with make_deployment(tmp_path / "deployment", "sqlite", THRESHOLD_CONFIG=config.resolve()) as deployment:
        server = deployment.start()
        answers = run_printed(deployment, commands)
        assert httpx.get(server.url + "/.well-known/openid-configuration").status_code == 200
        yield deployment, server, answers


def refresh_lifetime(http: httpx.Client, server: Server, client: dict[str, Any], token: str) -> int:
    """Seconds from issue to expiry of a refresh token, as introspection tells its client."""
    answer = http.post(
        server.url + "/oauth2/introspect",
        data={"token": token, "token_type_hint": "refresh_token"},
        auth=(client["client_id"], client["client_secret"]),
    )
    body = answer.json()
    assert answer.status_code == 200 and body["active"], body
    return int(body["exp"]) - int(body["iat"])


def session_lifetime(response: httpx.Response) -> float:
    session = response.json()["session"]
    return (
        datetime.fromisoformat(session["expires_at"].replace("Z", "+00:00"))
        - datetime.fromisoformat(session["created_at"].replace("Z", "+00:00"))
    ).total_seconds()


@pytest.mark.parametrize("served", ["monolith"], indirect=True)
def test_monolith_sessions_end_after_the_profiles_three_idle_days(
    served: tuple[Deployment, Server, dict[str, Any]], http: httpx.Client
) -> None:
    _, server, _ = served
    signed_up = Browser(http).signup(server, f"mono-{time.time_ns()}@example.com")
    assert signed_up.status_code == 201, signed_up.text
    assert session_lifetime(signed_up) == 3 * 86400  # the default would be 7 days


@pytest.mark.parametrize("served", ["b2b"], indirect=True)
def test_b2b_wants_verified_addresses_short_sessions_and_an_organization(
    served: tuple[Deployment, Server, dict[str, Any]], http: httpx.Client
) -> None:
    deployment, server, answers = served
    waiting = Browser(http).signup(server, f"b2b-{time.time_ns()}@example.com")
    assert waiting.status_code == 202 and waiting.json() == {"status": "verification_required"}
    assert answers["orgs create"]["slug"] == "acme"
    assert answers["orgs scim-token"]["token"]
    assert answers["clients create"]["backchannel_logout_uri"] == f"{APP}/backchannel"
    email = f"b2b-op-{time.time_ns()}@example.com"  # an address the operator vouches for
    made = deployment.cli("users", "create", "--email", email, "--password-stdin", "--verified",
                          stdin=STRONG_PASSWORD)  # fmt: skip
    assert made.returncode == 0, made.stderr
    signed_in = Browser(http).login(server, email)
    assert signed_in.status_code == 200, signed_in.text
    assert session_lifetime(signed_in) == 12 * 3600


@pytest.mark.parametrize("served", ["api"], indirect=True)
def test_api_tokens_are_five_minute_jwts_for_the_api(
    served: tuple[Deployment, Server, dict[str, Any]], http: httpx.Client
) -> None:
    _, server, answers = served
    service = answers["clients create"]
    issued = http.post(
        server.url + "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "orders:read"},
        auth=(service["client_id"], service["client_secret"]),
    )
    assert issued.status_code == 200, issued.text
    claims = claims_of(issued.json()["access_token"])
    assert claims["aud"] in (APP, [APP]) and claims["exp"] - claims["iat"] == 300


@pytest.mark.parametrize("served", ["spa"], indirect=True)
def test_spa_registers_the_bff_client_and_its_refresh_tokens_rotate(
    served: tuple[Deployment, Server, dict[str, Any]], http: httpx.Client
) -> None:
    _, server, answers = served
    client = answers["clients create"]
    assert client["backchannel_logout_uri"] == f"{APP}/bff/backchannel"
    browser = Browser(http)
    assert browser.signup(server, f"spa-{time.time_ns()}@example.com").status_code == 201
    rp = HttpRP(client["client_id"], client["client_secret"], http, redirect_uri=f"{APP}/bff/callback")
    tokens = rp.tokens(browser, server)
    assert tokens["expires_in"] == 300
    rotated = rp.refresh(server, tokens["refresh_token"])
    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != tokens["refresh_token"]
    lifetime = refresh_lifetime(http, server, client, rotated.json()["refresh_token"])
    assert 14 * 86400 - 120 <= lifetime <= 14 * 86400  # the profile's two weeks (the default: 30 days)
    reused = rp.refresh(server, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert rp.refresh(server, rotated.json()["refresh_token"]).status_code == 400  # the family is gone


@pytest.mark.parametrize("served", ["mobile"], indirect=True)
def test_mobile_app_signs_in_on_any_loopback_port_without_a_secret(
    served: tuple[Deployment, Server, dict[str, Any]], http: httpx.Client
) -> None:
    deployment, server, answers = served
    client = answers["clients create"]
    assert "client_secret" not in client or client["client_secret"] is None
    browser = Browser(http)
    assert browser.signup(server, f"app-{time.time_ns()}@example.com").status_code == 201
    rp = HttpRP(client["client_id"], None, http, redirect_uri="http://127.0.0.1:53117/callback")
    code, verifier, _ = rp.authorize(browser, server)
    exchanged = rp.exchange(server, code, verifier)
    assert exchanged.status_code == 200, exchanged.text
    # a public client cannot introspect: the lifetime as stored (the profile's 90 days, bounded by the
    # session's 90-day absolute end, which the profile raises to match; the defaults: 30 days)
    database = Path(deployment.env["THRESHOLD_DATA_DIR"]) / "threshold.db"
    with sqlite3.connect(database) as db:
        (lifetime,) = db.execute(
            "SELECT max(expires_at - created_at) FROM refresh_tokens WHERE client_id = ?",
            (client["client_id"],),
        ).fetchone()
    assert 90 * 86400 - 120 <= lifetime <= 90 * 86400, lifetime
    scheme = HttpRP(client["client_id"], None, http, redirect_uri="com.example.app:/oauth2redirect")
    code, _, _ = scheme.authorize(browser, server)  # a private-use scheme: the same client, PKCE
    assert code
