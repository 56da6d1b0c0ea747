"""Two processes, one service: a session made on A works on B, and any revocation reaches B at once.

Runs on PostgreSQL + Redis (sessions in Redis) and on PostgreSQL alone (sessions in SQL), so the
guarantee does not hang on Redis. The CLI, run as a separate process with the same configuration,
acts on both servers at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.support import Deployment, Server, make_deployment


@dataclass
class Pair:
    deployment: Deployment
    a: Server
    b: Server


@pytest.fixture(scope="module", params=["postgres+redis", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with make_deployment(tmp_path_factory.mktemp("pair"), request.param) as deployment:
        yield Pair(deployment=deployment, a=deployment.start(), b=deployment.start())


def _signed_up(browser: Browser, server: Server) -> tuple[str, dict[str, str]]:
    email = unique_email("pair")
    response = browser.signup(server, email)
    assert response.status_code == 201, response.text
    assert browser.session
    return email, response.json()["session"]


def _logged_in(
    browser: Browser, server: Server, email: str, password: str = STRONG_PASSWORD
) -> dict[str, str]:
    response = browser.login(server, email, password)
    assert response.status_code == 200, response.text
    assert browser.session
    session: dict[str, str] = response.json()["session"]
    return session


def _assert_signed_in(browser: Browser, *servers: Server) -> None:
    for server in servers:
        response = browser.get(server, "/api/v1/session")
        assert response.status_code == 200, (server.base_url, response.text)


def _assert_signed_out(browser: Browser, *servers: Server) -> None:
    for server in servers:
        response = browser.get(server, "/api/v1/session")
        assert response.status_code == 401, (server.base_url, response.text)
        assert response.json()["code"] == "not_authenticated"


def test_session_made_on_a_works_on_b(pair: Pair, http: httpx.Client) -> None:
    browser = Browser(http)
    email, session = _signed_up(browser, pair.a)

    on_b = browser.get(pair.b, "/api/v1/session")

    assert on_b.status_code == 200, on_b.text
    assert on_b.json()["user"]["email"] == email
    assert on_b.json()["session"]["id"] == session["id"]
    assert browser.get(pair.b, "/api/v1/forward-auth").headers["x-threshold-user-email"] == email


def test_revoking_a_session_on_a_ends_it_on_b_at_once(pair: Pair, http: httpx.Client) -> None:
    victim, other = Browser(http), Browser(http)
    email, victim_session = _signed_up(victim, pair.a)
    _logged_in(other, pair.b, email)
    assert victim.get(pair.b, "/api/v1/session").status_code == 200

    listed = other.get(pair.a, "/api/v1/sessions")
    assert listed.status_code == 200
    sessions = {s["id"]: s for s in listed.json()["sessions"]}
    assert victim_session["id"] in sessions and not sessions[victim_session["id"]]["current"]

    revoked = other.delete(pair.a, f"/api/v1/sessions/{victim_session['id']}")
    assert revoked.status_code == 204, revoked.text

    _assert_signed_out(victim, pair.b, pair.a)
    assert other.get(pair.b, "/api/v1/session").status_code == 200
    listed_on_b = other.get(pair.b, "/api/v1/sessions").json()["sessions"]
    assert victim_session["id"] not in {s["id"] for s in listed_on_b}


def test_logout_on_a_ends_the_session_on_b_at_once(pair: Pair, http: httpx.Client) -> None:
    browser = Browser(http)
    _signed_up(browser, pair.a)
    token = browser.session
    assert browser.get(pair.b, "/api/v1/session").status_code == 200

    out = browser.post(pair.a, "/api/v1/logout")
    assert out.status_code == 204, out.text
    assert browser.session is None  # the cookie was cleared

    # A copy of the old cookie (a stolen one, say) is worthless on every process.
    thief = Browser(http, cookies={SESSION_COOKIE: token or ""})
    _assert_signed_out(thief, pair.b, pair.a)


def test_revoke_others_on_b_kicks_a_session_made_on_a(pair: Pair, http: httpx.Client) -> None:
    on_a, on_b = Browser(http), Browser(http)
    email, _ = _signed_up(on_a, pair.a)
    _logged_in(on_b, pair.b, email)
    _assert_signed_in(on_a, pair.a, pair.b)

    response = on_b.post(pair.b, "/api/v1/sessions/revoke-others")
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": 1}

    _assert_signed_out(on_a, pair.a, pair.b)
    assert on_b.get(pair.a, "/api/v1/session").status_code == 200


def test_cli_revoke_sessions_ends_sessions_on_both_servers(pair: Pair, http: httpx.Client) -> None:
    first, second = Browser(http), Browser(http)
    email, _ = _signed_up(first, pair.a)
    _logged_in(second, pair.b, email)
    bystander = Browser(http)
    _signed_up(bystander, pair.b)
    _assert_signed_in(first, pair.a, pair.b)
    _assert_signed_in(second, pair.a, pair.b)

    result = pair.deployment.cli("users", "revoke-sessions", email)

    assert result.returncode == 0, result.stderr
    assert "ended 2 session(s)" in result.stdout
    _assert_signed_out(first, pair.a, pair.b)
    _assert_signed_out(second, pair.a, pair.b)
    assert bystander.get(pair.a, "/api/v1/session").status_code == 200
    _logged_in(Browser(http), pair.a, email)  # the account itself still works


def test_cli_disable_makes_login_fail_on_both_servers(pair: Pair, http: httpx.Client) -> None:
    browser = Browser(http)
    email, _ = _signed_up(browser, pair.a)
    _assert_signed_in(browser, pair.a, pair.b)

    result = pair.deployment.cli("users", "disable", email)

    assert result.returncode == 0, result.stderr
    _assert_signed_out(browser, pair.a, pair.b)
    for server in (pair.a, pair.b):
        response = Browser(http).login(server, email)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_credentials"
        assert not any(h.startswith(SESSION_COOKIE) for h in response.headers.get_list("set-cookie"))

    listed = pair.deployment.cli("users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {u["email"]: u["disabled"] for u in json.loads(listed.stdout)}[email] is True

    enabled = pair.deployment.cli("users", "enable", email)
    assert enabled.returncode == 0, enabled.stderr
    _logged_in(Browser(http), pair.b, email)
