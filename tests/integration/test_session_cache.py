"""The session cache across processes, on each invalidation feed: Redis pub/sub, PostgreSQL NOTIFY and
the SQLite change file. Two Services instances on one store stand for two processes: B answers from
memory, A revokes, and B refuses within 100 ms. A lost feed turns B's cache off until it is back.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.conftest import _KEK, sqlite_template
from tests.support import REDIS_URL
from tests.unit.fakes import FakeClock
from threshold.adapters.redis.invalidation import channel_name as redis_channel
from threshold.adapters.sql.invalidation import channel_name as pg_channel
from threshold.adapters.sql.scim_repos import SqlScimTokenRepo
from threshold.core.models import Aal, Amr, PasswordCredential, RequestContext, User
from threshold.core.scim.tokens import TOUCH_INTERVAL, ScimTokens
from threshold.core.secrets import digest, new_id
from threshold.scim.wiring import scim_tokens
from threshold.services import Services, build_services
from threshold.settings import Settings

FEEDS = ("sqlite", "postgres", "redis")
CONTEXT = RequestContext(ip="127.0.0.1", user_agent="test", device="d")


@pytest.fixture(params=FEEDS)
def feed(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """Settings values for one feed (resolved outside the event loop: the PostgreSQL fixture runs its own)."""
    values: dict[str, object] = {"issuer": "https://auth.example", "key_encryption_key": _KEK}
    if request.param == "sqlite":
        db = tmp_path / "threshold.db"
        shutil.copy(sqlite_template(tmp_path_factory), db)
        values["database_url"] = f"sqlite:///{db}"
    else:
        values["database_url"] = request.getfixturevalue("pg_url")
        values["redis_key_prefix"] = request.getfixturevalue("redis_prefix")
        if request.param == "redis":
            request.getfixturevalue("redis_url")
            values["redis_url"] = REDIS_URL
    return values


@pytest.fixture
async def pair(feed: dict[str, object], tmp_path: Path) -> AsyncIterator[tuple[Services, Services]]:
    values = feed
    a = build_services(Settings(data_dir=tmp_path / "a", **values))  # type: ignore[arg-type]
    b = build_services(Settings(data_dir=tmp_path / "b", **values))  # type: ignore[arg-type]
    b.start_invalidation_listener()
    try:
        await _until(lambda: b.session_check.cache.live, "B's invalidation feed to go live")
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def _refused_within(check: Callable[[], Awaitable[object]], seconds: float) -> float:
    start = time.monotonic()
    while await check() is not None:
        assert time.monotonic() - start < seconds, f"still accepted after {seconds}s"
        await asyncio.sleep(0.002)
    return time.monotonic() - start


async def _signed_in(services: Services) -> tuple[User, str]:
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
    return user, issued.token


async def test_b_answers_from_memory_and_refuses_what_a_revoked_within_100ms(
    pair: tuple[Services, Services],
) -> None:
    a, b = pair
    _, token = await _signed_in(a)
    assert await b.session_check(token) is not None
    assert len(b.session_check.cache) == 1  # the next check is served from memory
    record, _ = await b.session_check(token) or (None, None)
    assert record is not None
    await a.sessions.end_session(record)
    elapsed = await _refused_within(lambda: b.session_check(token), 0.1)
    assert elapsed < 0.1


async def test_user_changes_on_a_reach_b(pair: tuple[Services, Services]) -> None:
    a, b = pair
    user, token = await _signed_in(a)
    assert await b.session_check(token) is not None
    new_email = f"new-{new_id().lower()}@example.com"
    await a.users.change_email(user.id, email=new_email, email_normalized=new_email)

    async def email_on_b() -> str:
        found = await b.session_check(token)
        assert found is not None
        return found[1].email

    start = time.monotonic()
    while await email_on_b() != new_email:
        assert time.monotonic() - start < 0.1
        await asyncio.sleep(0.002)
    await a.users.set_disabled(user.id, True)
    await _refused_within(lambda: b.session_check(token), 0.1)


async def test_revoke_all_on_a_ends_every_session_on_b(pair: tuple[Services, Services]) -> None:
    a, b = pair
    user, token = await _signed_in(a)
    second = await a.sessions.issue_session(
        user_id=user.id, aal=Aal.AAL1, amr=[Amr.PASSWORD], context=CONTEXT
    )
    for t in (token, second.token):
        assert await b.session_check(t) is not None
    await a.sessions.end_user_sessions(user.id)
    for t in (token, second.token):
        await _refused_within(lambda t=t: b.session_check(t), 0.1)  # type: ignore[misc]


async def _kill_feed(b: Services) -> None:
    settings = b.settings
    if settings.redis_url:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            name = redis_channel(settings.redis_key_prefix)
            killed = 0
            for entry in await client.client_list():
                if entry.get("name") == name:
                    killed += await client.client_kill_filter(_id=entry["id"])
            assert killed == 1
        finally:
            await client.aclose()
        return
    url = settings.effective_database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url.replace("postgresql://", "postgres://"))
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            pg_channel(settings.redis_key_prefix),
        )
        assert killed == 1
    finally:
        await conn.close()


@pytest.mark.parametrize("feed", ["postgres", "redis"], indirect=True)
async def test_a_lost_feed_turns_the_cache_off_until_it_is_back(pair: tuple[Services, Services]) -> None:
    a, b = pair
    _, token = await _signed_in(a)
    found = await b.session_check(token)
    assert found is not None and len(b.session_check.cache) == 1
    await _kill_feed(b)
    await _until(lambda: not b.session_check.cache.live, "the cache to go off", timeout=3)
    assert len(b.session_check.cache) == 0
    # Revoked while B hears nothing: B must not answer from what it had.
    await a.sessions.end_session(found[0])
    assert await b.session_check(token) is None
    _, other = await _signed_in(a)
    await _until(lambda: b.session_check.cache.live, "the feed to come back", timeout=5)
    assert await b.session_check(other) is not None
    assert len(b.session_check.cache) == 1


async def test_a_client_deleted_on_a_stops_authenticating_on_b(pair: tuple[Services, Services]) -> None:
    from threshold.oidc.client_auth import ClientCredentials
    from threshold.oidc.errors import InvalidClient
    from threshold.oidc.models import AuthMethod

    a, b = pair
    registered = await a.provider.create_client(
        name="svc", grant_types=["client_credentials"], scopes=["api:read"]
    )
    assert registered.secret is not None
    credentials = ClientCredentials(
        AuthMethod.CLIENT_SECRET_BASIC, registered.client.client_id, secret=registered.secret
    )
    assert (await b.provider.authenticate(credentials)).client_id == registered.client.client_id
    assert (await b.provider.authenticate(credentials)).client_id == registered.client.client_id  # memory
    await a.provider.delete_client(registered.client.client_id)

    async def still_accepted() -> object:
        try:
            return await b.provider.authenticate(credentials)
        except InvalidClient:
            return None

    await _refused_within(still_accepted, 0.1)


async def test_a_client_updated_on_a_is_seen_updated_by_b(pair: tuple[Services, Services]) -> None:
    from threshold.oidc.client_auth import ClientCredentials
    from threshold.oidc.errors import InvalidClient
    from threshold.oidc.models import AuthMethod

    a, b = pair
    registered = await a.provider.create_client(
        name="svc", grant_types=["client_credentials"], scopes=["api:read"]
    )
    assert registered.secret is not None
    client_id = registered.client.client_id
    old = ClientCredentials(AuthMethod.CLIENT_SECRET_BASIC, client_id, secret=registered.secret)
    assert (await b.provider.authenticate(old)).client_id == client_id
    assert (await b.provider.authenticate(old)).name == "svc"  # from memory
    rotated = await a.provider.update_client(client_id, name="renamed", rotate_secret=True)
    assert rotated is not None and rotated.secret is not None

    async def old_secret_accepted() -> object:
        try:
            return await b.provider.authenticate(old)
        except InvalidClient:
            return None

    await _refused_within(old_secret_accepted, 0.1)
    new = ClientCredentials(AuthMethod.CLIENT_SECRET_BASIC, client_id, secret=rotated.secret)
    assert (await b.provider.authenticate(new)).name == "renamed"


async def test_concurrent_checks_of_one_session_share_one_store_read(pair: tuple[Services, Services]) -> None:
    a, b = pair
    _, token = await _signed_in(a)
    store = b.sessions._store  # the store behind the service: count what reaches it
    reads = 0
    original = store.get

    async def counted(key: str) -> object:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)  # a slow store: every check below arrives while this read is pending
        return await original(key)

    store.get = counted  # type: ignore[method-assign,assignment]
    results = await asyncio.gather(*(b.session_check(token) for _ in range(20)))
    assert all(found is not None for found in results)
    assert reads == 1


async def test_a_check_after_a_revocation_does_not_share_a_read_that_began_before_it(
    pair: tuple[Services, Services],
) -> None:
    """The single-flight read must not hand a revoked session to a request that arrived after B heard of
    the revocation: that request reads the store again."""
    a, b = pair
    _, token = await _signed_in(a)
    store = b.sessions._store
    original = store.get
    release, read = asyncio.Event(), asyncio.Event()
    first = True

    async def read_then_wait(key: str) -> object:
        nonlocal first
        found = await original(key)  # read before the revocation commits ...
        if first:
            first = False
            read.set()
            await release.wait()  # ... and answered after it
        return found

    store.get = read_then_wait  # type: ignore[method-assign,assignment]
    before = asyncio.ensure_future(b.session_check(token))
    await asyncio.wait_for(read.wait(), timeout=10)  # not a fixed sleep: a loaded machine reads slowly
    record = await a.sessions.live_session(digest(token))
    assert record is not None
    epoch = b.session_check.cache.epoch
    await a.sessions.end_session(record)
    cache = b.session_check.cache

    def heard() -> bool:
        cache.get("nothing")  # on SQLite B hears when it looks (the change file is probed at each look)
        return cache.epoch != epoch

    await _until(heard, "B to hear of the revocation")
    after = asyncio.ensure_future(b.session_check(token))
    await asyncio.sleep(0.01)
    release.set()
    assert await before is not None  # read before the revocation committed
    assert await after is None


async def _scim_token(services: Services) -> tuple[ScimTokens, Any, str]:
    tokens = scim_tokens(services)
    org = await services.orgs.create(name="Acme", slug=f"acme-{new_id().lower()[:8]}", context=CONTEXT)
    issued = await tokens.create(org, name="IdP", context=CONTEXT)
    return tokens, org, issued.token


async def test_a_scim_token_revoked_on_a_stops_authenticating_on_b(pair: tuple[Services, Services]) -> None:
    a, b = pair
    tokens_a, org, token = await _scim_token(a)
    tokens_b = scim_tokens(b)
    reads: list[str] = []
    stored = b.scim_token_repo._tokens  # type: ignore[attr-defined]
    by_digest = stored.by_digest

    async def counted(token_digest: str) -> Any:
        reads.append(token_digest)
        return await by_digest(token_digest)

    stored.by_digest = counted
    client = await tokens_b.authenticate(token)  # its first use is recorded, which drops the entry
    assert client is not None and client.org.id == org.id
    await asyncio.sleep(0.2)  # that drop has come back through the feed
    assert await tokens_b.authenticate(token) == client
    reads.clear()
    for _ in range(5):
        assert await tokens_b.authenticate(token) == client
    assert reads == []  # from memory
    listed = await tokens_a.list_tokens(org)
    await tokens_a.revoke(org, listed[0].id, context=CONTEXT)
    await _refused_within(lambda: tokens_b.authenticate(token), 0.1)


async def test_the_scim_token_cache_answers_as_the_store_does(pair: tuple[Services, Services]) -> None:
    """Parity: B (cached) and a read of the store agree on every token, live, revoked or unknown; a use
    recorded after TOUCH_INTERVAL reaches the store whichever process saw it."""
    a, b = pair
    tokens_a, org, token = await _scim_token(a)
    _, _, other = await _scim_token(a)
    uncached = ScimTokens(
        repo=SqlScimTokenRepo(a.engine), auditor=a.auditor, clock=a.clock, issuer=a.settings.issuer
    )
    tokens_b = scim_tokens(b)
    for presented in (token, other, token + "x", "scim_" + new_id()):
        for _ in range(2):
            assert await tokens_b.authenticate(presented) == await uncached.authenticate(presented)
    listed = await tokens_a.list_tokens(org)
    assert listed[0].last_used_at is not None
    first_use = listed[0].last_used_at
    later = first_use + TOUCH_INTERVAL + 1
    tokens_later = ScimTokens(
        repo=b.scim_token_repo, auditor=b.auditor, clock=FakeClock(later), issuer=b.settings.issuer
    )
    assert await tokens_later.authenticate(token) is not None
    assert (await tokens_a.list_tokens(org))[0].last_used_at == later
    await tokens_a.revoke(org, listed[0].id, context=CONTEXT)
    await _refused_within(lambda: tokens_b.authenticate(token), 0.1)
    assert await uncached.authenticate(token) is None
    assert await tokens_b.authenticate(other) == await uncached.authenticate(other)
