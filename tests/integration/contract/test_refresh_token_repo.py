"""RefreshTokenRepo: SQLAlchemy on SQLite and PostgreSQL, and the asyncpg fast paths on PostgreSQL.

Rotation is single-use (of concurrent rotations of one token exactly one stores a successor), and every
revocation ends the grants it matches together with their refresh tokens.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from tests.integration.contract.conftest import AddUser
from tests.integration.records import grant, refresh_token
from threshold.core.secrets import new_id
from threshold.oidc.models import Grant, RefreshToken
from threshold.oidc.ports import RefreshTokenRepo


async def _family(repo: RefreshTokenRepo, owner: str, **changes: Any) -> tuple[Grant, RefreshToken]:
    family = grant(owner, **changes)
    first = refresh_token(family)
    await repo.add_grant(family, first_token=first)
    return family, first


async def test_grant_and_first_token_round_trip(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner = await add_token_owner()
    family, first = await _family(refresh_tokens, owner.id)
    alone = grant(owner.id, revoked_at=time.time() - 3.5)
    await refresh_tokens.add_grant(alone)

    assert await refresh_tokens.get_grant(family.id) == family
    assert await refresh_tokens.get_grant(alone.id) == alone
    assert await refresh_tokens.get(first.digest) == first
    assert await refresh_tokens.get_grant(new_id()) is None
    assert await refresh_tokens.get_grant("nul\x00") is None


async def test_add_and_get_round_trip_every_field(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner = await add_token_owner()
    family, first = await _family(refresh_tokens, owner.id)
    second = refresh_token(family, parent=first, amr=(), acr="aal1", scope="openid")

    await refresh_tokens.add(second)

    assert await refresh_tokens.get(second.digest) == second
    assert await refresh_tokens.get(refresh_token(family).digest) is None


async def test_rotate_marks_the_parent_used_and_stores_the_successor(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner = await add_token_owner()
    family, first = await _family(refresh_tokens, owner.id)
    successor = refresh_token(family, parent=first)
    now = time.time()

    assert await refresh_tokens.rotate(first.digest, successor, now=now, sealed="sealed successor")

    assert await refresh_tokens.get(first.digest) == replace(first, used_at=now, successor="sealed successor")
    assert await refresh_tokens.get(successor.digest) == successor

    again = refresh_token(family, parent=first)
    assert not await refresh_tokens.rotate(first.digest, again, now=now + 1, sealed=None)
    assert await refresh_tokens.get(again.digest) is None  # nothing stored
    assert await refresh_tokens.get(first.digest) == replace(first, used_at=now, successor="sealed successor")


async def test_a_revoked_or_unknown_token_does_not_rotate(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner = await add_token_owner()
    family, first = await _family(refresh_tokens, owner.id)
    await refresh_tokens.revoke_family(family.id, now=time.time())

    successor = refresh_token(family, parent=first)
    assert not await refresh_tokens.rotate(first.digest, successor, now=time.time(), sealed=None)
    assert await refresh_tokens.get(successor.digest) is None
    assert not await refresh_tokens.rotate(new_id(), refresh_token(family), now=time.time(), sealed=None)


async def test_of_concurrent_rotations_exactly_one_stores_a_successor(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner = await add_token_owner()
    for _ in range(3):
        family, first = await _family(refresh_tokens, owner.id)
        successors = [refresh_token(family, parent=first) for _ in range(6)]
        now = time.time()

        won = await asyncio.gather(
            *(refresh_tokens.rotate(first.digest, s, now=now, sealed=s.digest) for s in successors)
        )

        assert sorted(won) == [False] * 5 + [True]
        winner = successors[won.index(True)]
        stored = [s for s in successors if await refresh_tokens.get(s.digest) is not None]
        assert stored == [winner]
        parent = await refresh_tokens.get(first.digest)
        assert parent is not None and parent.successor == winner.digest


async def test_revoke_family_ends_its_grant_and_tokens_only(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner = await add_token_owner()
    family, first = await _family(refresh_tokens, owner.id)
    second = refresh_token(family, parent=first)
    await refresh_tokens.add(second)
    other, others_token = await _family(refresh_tokens, owner.id)
    now = time.time()

    assert await refresh_tokens.revoke_family(family.id, now=now) == 2

    assert await refresh_tokens.get_grant(family.id) == replace(family, revoked_at=now)
    assert await refresh_tokens.get(first.digest) == replace(first, revoked_at=now)
    assert await refresh_tokens.get(second.digest) == replace(second, revoked_at=now)
    assert await refresh_tokens.get_grant(other.id) == other
    assert await refresh_tokens.get(others_token.digest) == others_token
    # Revoked once: a second revocation keeps the first time and counts nothing.
    assert await refresh_tokens.revoke_family(family.id, now=now + 10) == 0
    assert await refresh_tokens.get(first.digest) == replace(first, revoked_at=now)


async def test_revoke_for_session(refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser) -> None:
    owner = await add_token_owner()
    family, first = await _family(refresh_tokens, owner.id)
    same_session, second = await _family(refresh_tokens, owner.id, session_digest=family.session_digest)
    other, others_token = await _family(refresh_tokens, owner.id)
    now = time.time()

    assert await refresh_tokens.revoke_for_session(family.session_digest, now=now) == 2

    for ended in (family, same_session):
        assert await refresh_tokens.get_grant(ended.id) == replace(ended, revoked_at=now)
    for token in (first, second):
        assert await refresh_tokens.get(token.digest) == replace(token, revoked_at=now)
    assert await refresh_tokens.get_grant(other.id) == other
    assert await refresh_tokens.get(others_token.digest) == others_token


async def test_revoke_for_user_and_for_one_of_its_clients(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner, someone = await add_token_owner(), await add_token_owner()
    one, one_token = await _family(refresh_tokens, owner.id, client_id="client-one")
    two, two_token = await _family(refresh_tokens, owner.id, client_id="client-two")
    theirs, their_token = await _family(refresh_tokens, someone.id, client_id="client-one")
    now = time.time()

    assert await refresh_tokens.revoke_for_user(owner.id, now=now, client_id="client-one") == 1
    assert await refresh_tokens.get_grant(one.id) == replace(one, revoked_at=now)
    assert await refresh_tokens.get(one_token.digest) == replace(one_token, revoked_at=now)
    assert await refresh_tokens.get_grant(two.id) == two

    assert await refresh_tokens.revoke_for_user(owner.id, now=now + 1) == 1
    assert await refresh_tokens.get_grant(two.id) == replace(two, revoked_at=now + 1)
    assert await refresh_tokens.get(two_token.digest) == replace(two_token, revoked_at=now + 1)
    assert await refresh_tokens.get_grant(theirs.id) == theirs
    assert await refresh_tokens.get(their_token.digest) == their_token


async def test_the_organization_of_a_grant_and_its_tokens_round_trips(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner = await add_token_owner()
    org_id = new_id()
    family = grant(owner.id, org_id=org_id)
    first_token = refresh_token(family, org_id=org_id)
    await refresh_tokens.add_grant(family, first_token=first_token)
    successor = refresh_token(family, parent=first_token, org_id=org_id)
    plain, plain_token = await _family(refresh_tokens, owner.id)

    assert await refresh_tokens.rotate(first_token.digest, successor, now=time.time(), sealed=None)

    stored = await refresh_tokens.get_grant(family.id)
    assert stored is not None and stored.org_id == org_id and stored == family
    assert (await refresh_tokens.get(successor.digest)) == successor and successor.org_id == org_id
    parent = await refresh_tokens.get(first_token.digest)
    assert parent is not None and parent.org_id == org_id
    assert (await refresh_tokens.get_grant(plain.id)) == plain and plain.org_id is None
    assert (await refresh_tokens.get(plain_token.digest)) == plain_token and plain_token.org_id is None


async def test_revoke_for_org_ends_the_users_grants_for_that_organization_only(
    refresh_tokens: RefreshTokenRepo, add_token_owner: AddUser
) -> None:
    owner, someone = await add_token_owner(), await add_token_owner()
    org_a, org_b = new_id(), new_id()

    async def family_for(user_id: str, org_id: str | None) -> tuple[Grant, RefreshToken, RefreshToken]:
        family = grant(user_id, org_id=org_id)
        first = refresh_token(family, org_id=org_id)
        await refresh_tokens.add_grant(family, first_token=first)
        second = refresh_token(family, parent=first, org_id=org_id)
        assert await refresh_tokens.rotate(first.digest, second, now=time.time(), sealed=None)
        return family, first, second

    for_a, a_first, a_second = await family_for(owner.id, org_a)
    also_a, also_first, also_second = await family_for(owner.id, org_a)
    for_b, b_first, b_second = await family_for(owner.id, org_b)
    for_none, none_first, none_second = await family_for(owner.id, None)
    theirs, their_first, their_second = await family_for(someone.id, org_a)
    now = time.time()

    assert await refresh_tokens.revoke_for_org(owner.id, org_a, now=now) == 4

    for ended in (for_a, also_a):
        assert await refresh_tokens.get_grant(ended.id) == replace(ended, revoked_at=now)
    for token in (a_first, a_second, also_first, also_second):
        stored = await refresh_tokens.get(token.digest)
        assert stored is not None and stored.revoked_at == now and stored.org_id == org_a
    for kept in (for_b, for_none, theirs):
        assert await refresh_tokens.get_grant(kept.id) == kept
    for token in (b_second, none_second, their_second):
        assert await refresh_tokens.get(token.digest) == token
    for token in (b_first, none_first, their_first):
        stored = await refresh_tokens.get(token.digest)
        assert stored is not None and stored.revoked_at is None and stored.used_at is not None
    assert await refresh_tokens.revoke_for_org(owner.id, org_a, now=now + 1) == 0
