"""A session revoked on server A is refused by server B on B's very next request, and how long after.

Each round: the victim's session is used on B (so that B has seen it, and would have cached it if it
cached sessions), revoked on A, and the victim's next request (no retry, no wait) goes to B and must be
a 401. The time from A's revocation response to B's refusal is measured: it is the cost of one request
to B, not a propagation delay. Runs on PostgreSQL + Redis (sessions in Redis) and PostgreSQL alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.conftest import unique_email
from tests.scaleout.conftest import Pair
from tests.support import Server

ROUNDS = 3
MAX_SECONDS = 1.0
"""Ceiling for revoke-response-to-refusal: generous for a loaded CI machine; a loopback request takes ms."""


def signed_in(http: httpx.Client, server: Server, email: str, *, new_account: bool = False) -> Browser:
    browser = Browser(http)
    response = browser.signup(server, email) if new_account else browser.login(server, email)
    assert response.status_code in (200, 201), response.text
    assert browser.session
    return browser


def session_id(browser: Browser, server: Server) -> str:
    response = browser.get(server, "/api/v1/session")
    assert response.status_code == 200, response.text
    value: str = response.json()["session"]["id"]
    return value


def revoke_by_id(pair: Pair, victim: Browser, other: Browser) -> httpx.Response:
    return other.delete(pair.a, f"/api/v1/sessions/{session_id(victim, pair.a)}")


def revoke_others(pair: Pair, victim: Browser, other: Browser) -> httpx.Response:
    return other.post(pair.a, "/api/v1/sessions/revoke-others")


def log_out(pair: Pair, victim: Browser, other: Browser) -> httpx.Response:
    """The victim's own logout on A; its old cookie (copied before) is then tried on B."""
    return victim.post(pair.a, "/api/v1/logout")


REVOCATIONS: dict[str, tuple[Callable[[Pair, Browser, Browser], httpx.Response], int]] = {
    "delete-session": (revoke_by_id, 204),
    "revoke-others": (revoke_others, 200),
    "logout": (log_out, 204),
}


@pytest.mark.parametrize("how", sorted(REVOCATIONS))
def test_b_refuses_a_session_revoked_on_a_on_its_very_next_request(
    pair: Pair, http: httpx.Client, how: str, record_property: Callable[[str, object], None]
) -> None:
    revoke, status = REVOCATIONS[how]
    email = unique_email("latency")
    other = signed_in(http, pair.a, email, new_account=True)
    latencies: list[float] = []
    for _ in range(ROUNDS):
        victim = signed_in(http, pair.b, email)
        token = victim.session
        assert victim.get(pair.b, "/api/v1/session").status_code == 200  # B has just served it

        revoked = revoke(pair, victim, other)
        answered = time.perf_counter()
        assert revoked.status_code == status, revoked.text
        next_on_b = Browser(http, cookies={SESSION_COOKIE: token or ""}).get(pair.b, "/api/v1/session")
        refused = time.perf_counter()

        assert next_on_b.status_code == 401, (how, next_on_b.text)
        assert next_on_b.json()["code"] == "not_authenticated"
        latencies.append(refused - answered)
        assert other.get(pair.b, "/api/v1/session").status_code == 200  # only the victim's session ended

    record_property("revoke_to_refusal_seconds", [round(x, 4) for x in latencies])
    print(
        f"\n{pair.backend} {how}: revoke-to-refusal on B "
        + ", ".join(f"{x * 1000:.1f} ms" for x in latencies)
    )
    assert max(latencies) < MAX_SECONDS, latencies
