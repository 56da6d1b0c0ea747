"""UserRepo: SQLAlchemy on SQLite and PostgreSQL, and the asyncpg fast paths on PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.records import user
from threshold.core.errors import EmailUnavailable
from threshold.core.models import PasswordCredential
from threshold.core.ports import UserRepo
from threshold.core.secrets import new_id


async def test_add_then_get_and_get_by_email(users: UserRepo) -> None:
    ada = user("Ada.Lovelace@Example.com", email_verified=True, mfa_required=True, credential_epoch=3)
    credential = PasswordCredential(user_id=ada.id, hash="$argon2id$v=19$m=19456,t=2,p=1$x$y", updated_at=5.5)

    await users.add(ada, credential)

    assert await users.get(ada.id) == ada
    assert await users.get_by_email("ada.lovelace@example.com") == ada
    assert await users.get_password(ada.id) == credential
    assert await users.get(new_id()) is None
    assert await users.get_by_email("Ada.Lovelace@Example.com") is None  # lookups use the normalized form
    assert await users.get_password(new_id()) is None
    assert await users.get_with_password("ada.lovelace@example.com") == (ada, credential)
    assert await users.get_with_password("Ada.Lovelace@Example.com") is None
    assert await users.get_with_password("nobody@example.com") is None
    assert await users.get_with_password("ada.lovelace@example.com\x00") is None


async def test_add_without_password(users: UserRepo) -> None:
    nopass = user("nopass@example.com")
    await users.add(nopass, None)
    assert await users.get(nopass.id) == nopass
    assert await users.get_password(nopass.id) is None
    assert await users.get_with_password("nopass@example.com") == (nopass, None)


async def test_email_normalized_is_unique(users: UserRepo) -> None:
    first = user("grace@example.com")
    await users.add(first, PasswordCredential(user_id=first.id, hash="h1", updated_at=1.0))
    second = user("GRACE@example.com", email_normalized="grace@example.com")

    with pytest.raises(EmailUnavailable):
        await users.add(second, PasswordCredential(user_id=second.id, hash="h2", updated_at=2.0))

    assert await users.get(second.id) is None
    assert await users.get_password(second.id) is None  # the transaction rolled back as a whole
    assert await users.get_by_email("grace@example.com") == first


async def test_of_two_concurrent_sign_ups_for_one_address_one_wins(users: UserRepo) -> None:
    rivals = [user("race@example.com") for _ in range(2)]
    outcomes = await asyncio.gather(*(users.add(r, None) for r in rivals), return_exceptions=True)

    assert sorted(type(o).__name__ for o in outcomes) == ["EmailUnavailable", "NoneType"]
    winner = rivals[outcomes.index(None)]
    assert await users.get_by_email("race@example.com") == winner


async def test_set_password_inserts_then_updates_and_moves_the_epoch(users: UserRepo) -> None:
    hopper = user("hopper@example.com")
    await users.add(hopper, None)
    assert await users.credential_epoch(hopper.id) == 0

    first = PasswordCredential(user_id=hopper.id, hash="first", updated_at=10.0)
    await users.set_password(first)
    assert await users.get_password(hopper.id) == first
    assert await users.credential_epoch(hopper.id) == 1

    second = PasswordCredential(user_id=hopper.id, hash="second", updated_at=20.0)
    await users.set_password(second)
    assert await users.get_password(hopper.id) == second
    assert await users.credential_epoch(hopper.id) == 2

    rehashed = PasswordCredential(user_id=hopper.id, hash="second, stronger", updated_at=30.0)
    await users.set_password(rehashed, same_secret=True)  # the same secret rehashed: no new epoch
    assert await users.get_password(hopper.id) == rehashed
    assert await users.credential_epoch(hopper.id) == 2
    fetched = await users.get(hopper.id)
    assert fetched is not None and fetched.credential_epoch == 2
    assert await users.get_with_password("hopper@example.com") == (fetched, rehashed)


async def test_delete_password_moves_the_epoch(users: UserRepo) -> None:
    owner = user()
    await users.add(owner, PasswordCredential(user_id=owner.id, hash="h", updated_at=1.0))

    assert await users.delete_password(owner.id) is True
    assert await users.get_password(owner.id) is None
    assert await users.credential_epoch(owner.id) == 1
    assert await users.delete_password(owner.id) is False


async def test_bump_credential_epoch(users: UserRepo) -> None:
    owner, other = user(), user()
    await users.add(owner, None)
    await users.add(other, None)

    await asyncio.gather(*(users.bump_credential_epoch(owner.id) for _ in range(5)))

    assert await users.credential_epoch(owner.id) == 5  # concurrent bumps are each counted
    assert await users.credential_epoch(other.id) == 0
    assert await users.credential_epoch(new_id()) is None


async def test_set_disabled(users: UserRepo) -> None:
    turing = user("turing@example.com")
    await users.add(turing, None)

    assert await users.set_disabled(turing.id, True) is True
    fetched = await users.get(turing.id)
    assert fetched is not None and fetched.disabled is True
    assert await users.set_disabled(turing.id, False) is True
    fetched = await users.get(turing.id)
    assert fetched is not None and fetched.disabled is False
    assert await users.set_disabled(new_id(), True) is False


async def test_mfa_required_and_passkey_prompt_snooze(users: UserRepo) -> None:
    owner = user()
    await users.add(owner, None)

    assert await users.set_mfa_required(owner.id, True) is True
    await users.snooze_passkey_prompt(owner.id, 1_767_300_000.5)

    fetched = await users.get(owner.id)
    assert fetched is not None
    assert fetched.mfa_required is True
    assert fetched.passkey_prompt_snoozed_until == 1_767_300_000.5
    assert await users.get_by_email(owner.email_normalized) == fetched
    assert await users.set_mfa_required(new_id(), True) is False


async def test_email_verified_only_for_the_current_address(users: UserRepo) -> None:
    owner = user("old@example.com")
    await users.add(owner, None)

    assert await users.set_email_verified(owner.id, "other@example.com") is False
    fetched = await users.get(owner.id)
    assert fetched is not None and fetched.email_verified is False
    assert await users.set_email_verified(owner.id, "old@example.com") is True
    fetched = await users.get(owner.id)
    assert fetched is not None and fetched.email_verified is True


async def test_change_email(users: UserRepo) -> None:
    owner, taken = user("before@example.com"), user("taken@example.com")
    await users.add(owner, None)
    await users.add(taken, None)

    await users.change_email(owner.id, email="After@Example.com", email_normalized="after@example.com")

    moved = await users.get_by_email("after@example.com")
    assert moved is not None and (moved.id, moved.email, moved.email_verified) == (
        owner.id,
        "After@Example.com",
        True,
    )
    assert await users.get_by_email("before@example.com") is None
    with pytest.raises(EmailUnavailable):
        await users.change_email(owner.id, email="taken@example.com", email_normalized="taken@example.com")
    assert await users.get(owner.id) == moved


async def test_list_is_ordered_and_paged(users: UserRepo) -> None:
    listed = [user(f"u{i}@example.com", created_at=1000.0 + i) for i in range(5)]
    for each in reversed(listed):
        await users.add(each, None)
    assert list(await users.list()) == listed
    assert list(await users.list(limit=2, offset=1)) == listed[1:3]


async def test_record_network_and_network_seen_since(users: UserRepo) -> None:
    owner, other = user("network@example.com"), user("other@example.com")
    await users.add(owner, None)
    await users.add(other, None)
    now = time.time()

    assert await users.network_seen_since(owner.id, "203.0.113.0/24", now - 100) is False
    await users.record_network(owner.id, "203.0.113.0/24", now - 50)
    assert await users.network_seen_since(owner.id, "203.0.113.0/24", now - 100) is True
    assert await users.network_seen_since(owner.id, "203.0.113.0/24", now - 10) is False
    assert await users.network_seen_since(owner.id, "198.51.100.0/24", now - 100) is False
    assert await users.network_seen_since(other.id, "203.0.113.0/24", now - 100) is False

    await users.record_network(owner.id, "203.0.113.0/24", now)  # the same row, its time moved forward
    assert await users.network_seen_since(owner.id, "203.0.113.0/24", now - 10) is True


async def test_remember_device(users: UserRepo) -> None:
    owner, other = user(), user()
    await users.add(owner, None)
    await users.add(other, None)

    assert await users.remember_device(owner.id, "device-digest", 100.0) is True
    assert await users.remember_device(owner.id, "device-digest", 200.0) is False
    assert await users.remember_device(other.id, "device-digest", 200.0) is True  # per account
    assert (await users.sightings(owner.id)).devices == ((100.0, 200.0),)  # first and last seen
    assert (await users.sightings(other.id)).devices == ((200.0, 200.0),)


async def test_a_device_first_seen_by_concurrent_sign_ins_is_new_to_exactly_one(users: UserRepo) -> None:
    # A new device's notice goes out once: of sightings racing on one connection each, one finds it new.
    owner = user()
    await users.add(owner, None)
    for round_ in range(5):
        device = f"device-{round_}"
        found = await asyncio.gather(
            *(users.remember_device(owner.id, device, 100.0 + attempt) for attempt in range(6))
        )
        assert found.count(True) == 1, found
    devices = (await users.sightings(owner.id)).devices
    assert len(devices) == 5
    # Each sighting is recorded, the racers that lost the INSERT included: the last one seen is never
    # only the first one's.
    assert all(first != last for first, last in devices), devices


async def test_lookup_of_an_address_with_a_nul_byte_finds_nobody(users: UserRepo) -> None:
    # A login form may submit "\u0000" in JSON; PostgreSQL text cannot hold it, which must not be a 500.
    await users.add(user("nul@example.com"), None)
    assert await users.get_by_email("nul\x00@example.com") is None
    assert await users.get_by_email("\x00") is None
