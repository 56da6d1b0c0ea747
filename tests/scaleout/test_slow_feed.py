"""A revocation is exact across processes even when the message reaches a process late.

Server B's listening connection (PostgreSQL LISTEN, or the Redis subscription) is slow: every byte the
broker sends it arrives 0.8 s late. So the revocation's message, which A publishes before it answers,
is still on its way to B when the client's next request lands on B, and B answers that session check
from memory (it did before the revocation: the test waits until its feed is live and the session is
cached). The revocation must not be answered before B has dropped the session: the next request on B
is a 401. Fails without the acknowledgements (core/session_cache.py `Acks`): B answered 200.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.conftest import unique_email
from tests.support import Backend, Deployment, Server, make_deployment, start_server, wait_for
from tests.support.slow_link import LISTENING, SlowLink

DELAY = 0.8
METRICS_TOKEN = "slow-feed-metrics-token-0123456789abcdef"


@dataclass
class SlowPair:
    deployment: Deployment
    a: Server
    b: Server
    """Reaches the database and Redis through links `DELAY` seconds slow."""


def _through(url: str, link: SlowLink) -> str:
    return make_url(url).set(host="127.0.0.1", port=link.port).render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=["postgres+redis", "postgres"])
def slow_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowPair]:
    backend: Backend = request.param
    directory = tmp_path_factory.mktemp("slow-feed")
    with make_deployment(directory, backend, THRESHOLD_METRICS_TOKEN=METRICS_TOKEN) as deployment:
        env = dict(deployment.env)
        links: list[SlowLink] = []
        try:
            for name in ("THRESHOLD_DATABASE_URL", "THRESHOLD_REDIS_URL"):
                if name in env:
                    url = make_url(env[name])
                    link = SlowLink(
                        url.host or "127.0.0.1", url.port or 0, delay=DELAY, marker=LISTENING
                    ).__enter__()
                    links.append(link)
                    env[name] = _through(env[name], link)
            a = deployment.start()
            b = start_server(env, directory)
            deployment.servers.append(b)
            yield SlowPair(deployment=deployment, a=a, b=b)
        finally:
            deployment.stop()
            for link in links:
                link.__exit__(None, None, None)


def _check(browser: Browser, server: Server) -> tuple[int, float]:
    started = time.monotonic()
    status = browser.get(server, "/api/v1/session").status_code
    return status, time.monotonic() - started


def _cached_on(browser: Browser, server: Server) -> None:
    """Wait until `server`'s feed delivers (its cache is on) and it has this browser's session in it."""

    def live() -> bool:
        metrics = httpx.get(
            server.base_url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
        ).text
        return any(
            line.startswith("threshold_invalidation_feed_up{") and line.endswith(" 1.0")
            for line in metrics.splitlines()
        )

    wait_for(live, timeout=30, what="server B's invalidation feed live")
    assert _check(browser, server)[0] == 200


def test_a_revocation_is_answered_only_once_a_slow_process_has_dropped_the_session(
    slow_pair: SlowPair, http: httpx.Client
) -> None:
    victim, other = Browser(http), Browser(http)
    email = unique_email("slow-feed")
    assert victim.signup(slow_pair.a, email).status_code == 201
    assert other.login(slow_pair.a, email).status_code == 200
    stolen = Browser(http, cookies={SESSION_COOKIE: victim.session or ""})
    victim_id = victim.get(slow_pair.a, "/api/v1/session").json()["session"]["id"]
    _cached_on(victim, slow_pair.b)

    revoked = other.delete(slow_pair.a, f"/api/v1/sessions/{victim_id}")
    assert revoked.status_code == 204, revoked.text

    assert _check(stolen, slow_pair.b)[0] == 401
    assert _check(stolen, slow_pair.a)[0] == 401
    assert _check(other, slow_pair.b)[0] == 200


def test_disabling_a_user_on_a_ends_their_sessions_on_a_slow_process_at_once(
    slow_pair: SlowPair, http: httpx.Client
) -> None:
    browser = Browser(http)
    email = unique_email("slow-feed")
    assert browser.signup(slow_pair.a, email).status_code == 201
    _cached_on(browser, slow_pair.b)

    result = slow_pair.deployment.cli("users", "disable", email)
    assert result.returncode == 0, result.stderr

    assert _check(browser, slow_pair.b)[0] == 401


def test_concurrent_revocations_are_each_acknowledged_not_waited_out(
    slow_pair: SlowPair, http: httpx.Client
) -> None:
    """Eight revocations at once: B owes eight acknowledgements at once (on PostgreSQL, all through its
    one listening connection). Each revocation returns once B has dropped its session, well before the
    bound a missing acknowledgement would cost (3 s)."""
    email = unique_email("slow-feed")
    owner = Browser(http)
    assert owner.signup(slow_pair.a, email).status_code == 201
    victims = [Browser(http) for _ in range(8)]
    for victim in victims:
        assert victim.login(slow_pair.a, email).status_code == 200
    ids = [victim.get(slow_pair.a, "/api/v1/session").json()["session"]["id"] for victim in victims]
    _cached_on(victims[0], slow_pair.b)
    for victim in victims:
        assert _check(victim, slow_pair.b)[0] == 200

    def revoke(session_id: str) -> tuple[int, float]:
        started = time.monotonic()
        status = owner.delete(slow_pair.a, f"/api/v1/sessions/{session_id}").status_code
        return status, time.monotonic() - started

    with ThreadPoolExecutor(len(ids)) as pool:
        results = list(pool.map(revoke, ids))

    assert [status for status, _ in results] == [204] * len(ids)
    assert max(took for _, took in results) < 2.8, results  # a missing acknowledgement costs 3 s
    assert [_check(victim, slow_pair.b)[0] for victim in victims] == [401] * len(victims)
    assert _check(owner, slow_pair.b)[0] == 200
