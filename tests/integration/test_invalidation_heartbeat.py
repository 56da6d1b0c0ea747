"""A feed that stays connected but stops delivering (issue 11, hole 10c).

Behind a transaction-mode pooler (PgBouncer) LISTEN is accepted and every query is answered, but no
notification ever reaches the listening connection; a proxy without pub/sub support does the same to
Redis. A heartbeat of `SELECT 1` or PING passes there, so the session cache stayed on, deaf to every
revocation. Now each process sends a heartbeat through the feed itself and turns its cache off when
the heartbeat does not come back.

Process B reaches its store through a proxy that passes everything but the feed's messages once told
to (tests/integration/feed_proxies.py); process A revokes directly. B must then refuse what A revoked,
from the store, within the heartbeat's bound, even with a session cache allowed to hold entries for a
minute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import _KEK
from tests.integration.feed_proxies import DroppingProxy, PostgresProxy, RedisProxy
from tests.support import REDIS_URL
from threshold.core.models import Aal, Amr, PasswordCredential, RequestContext, User
from threshold.core.secrets import new_id
from threshold.services import Services, build_services
from threshold.settings import Settings

CONTEXT = RequestContext(ip="127.0.0.1", user_agent="test", device="d")
BOUND = 6.0
"""Heartbeat every second, a beat that is not back within three is a silent feed; plus slack."""


@dataclass
class Pair:
    a: Services
    b: Services
    proxy: DroppingProxy


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture(params=["postgres", "redis"])
def feed(request: pytest.FixtureRequest) -> dict[str, object]:
    values: dict[str, object] = {
        "issuer": "https://auth.example",
        "key_encryption_key": _KEK,
        "database_url": request.getfixturevalue("pg_url"),
        "redis_key_prefix": request.getfixturevalue("redis_prefix"),
    }
    if request.param == "redis":
        request.getfixturevalue("redis_url")
        values["redis_url"] = REDIS_URL
    return values


async def _pair(feed: dict[str, object], tmp_path: Path, *, dropping: bool) -> Pair:
    through_redis = "redis_url" in feed
    upstream = urlsplit(str(feed["redis_url"] if through_redis else feed["database_url"]))
    assert upstream.hostname and upstream.port
    proxy_type = RedisProxy if through_redis else PostgresProxy
    proxy = await proxy_type(upstream.hostname, upstream.port, dropping=dropping).start()
    key = "redis_url" if through_redis else "database_url"
    a = build_services(Settings.model_validate({**feed, "data_dir": tmp_path / "a"}))
    b = build_services(
        Settings.model_validate(
            {
                **feed,
                key: _through(str(feed[key]), proxy.port),
                "data_dir": tmp_path / "b",
                "session": {"cache_ttl": 60, "touch_interval": 3600},
            }
        )
    )
    return Pair(a=a, b=b, proxy=proxy)


@pytest.fixture
async def delivering(feed: dict[str, object], tmp_path: Path) -> AsyncIterator[Pair]:
    pair = await _pair(feed, tmp_path, dropping=False)
    try:
        yield pair
    finally:
        await pair.a.close()
        await pair.b.close()
        await pair.proxy.stop()


@pytest.fixture
async def deaf(feed: dict[str, object], tmp_path: Path) -> AsyncIterator[Pair]:
    pair = await _pair(feed, tmp_path, dropping=True)
    try:
        yield pair
    finally:
        await pair.a.close()
        await pair.b.close()
        await pair.proxy.stop()


async def _until(condition: Callable[[], bool], what: str, timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def _refused_within(check: Callable[[], Awaitable[object]], seconds: float) -> float:
    start = time.monotonic()
    while await check() is not None:
        assert time.monotonic() - start < seconds, f"a revoked session still accepted after {seconds}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def _signed_in(services: Services) -> str:
    email = f"{new_id().lower()}@example.com"
    user = User(
        id=new_id(),
        email=email,
        email_normalized=email,
        email_verified=True,
        disabled=False,
        created_at=time.time(),
    )
    await services.users.add(user, PasswordCredential(user_id=user.id, hash="x", updated_at=time.time()))
    issued = await services.sessions.issue_session(
        user_id=user.id, aal=Aal.AAL1, amr=[Amr.PASSWORD], context=CONTEXT
    )
    return issued.token


async def test_a_feed_that_falls_silent_turns_the_cache_off(delivering: Pair) -> None:
    a, b, proxy = delivering.a, delivering.b, delivering.proxy
    b.start_invalidation_listener()
    await _until(lambda: b.session_check.cache.live, "B's feed to go live", timeout=BOUND)
    token = await _signed_in(a)
    found = await b.session_check(token)
    assert found is not None and len(b.session_check.cache) == 1  # B answers from memory now

    proxy.dropping = True  # connected, answering every query, delivering nothing
    await a.sessions.end_session(found[0])
    await _refused_within(lambda: b.session_check(token), BOUND)
    assert not b.session_check.cache.live
    assert proxy.dropped >= 1

    proxy.dropping = False  # delivering again: the cache comes back on, and is kept exact again
    await _until(lambda: b.session_check.cache.live, "B's feed to come back", timeout=BOUND)
    other = await _signed_in(a)
    found = await b.session_check(other)
    assert found is not None and len(b.session_check.cache) == 1
    await a.sessions.end_session(found[0])
    await _refused_within(lambda: b.session_check(other), 0.5)


async def test_a_feed_that_never_delivers_never_turns_the_cache_on(deaf: Pair) -> None:
    a, b, proxy = deaf.a, deaf.b, deaf.proxy
    b.start_invalidation_listener()
    await asyncio.sleep(BOUND)  # long enough for several heartbeats
    assert not b.session_check.cache.live
    assert proxy.dropped >= 1  # the heartbeats that did not come back

    token = await _signed_in(a)
    found = await b.session_check(token)
    assert found is not None
    assert await b.session_check(token) is not None
    assert len(b.session_check.cache) == 0  # nothing kept in memory: every check goes to the store
    await a.sessions.end_session(found[0])
    assert await b.session_check(token) is None
