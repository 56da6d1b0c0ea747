"""SignInWrites: a sign-in's closing writes (the credential epoch read again; only while it is current the
success audited, the network noted and the browser sighted) give the same answers and leave the same rows
through the batched implementation (adapters.sql.repos.SqlSignInWrites: one statement on PostgreSQL, one
transaction on SQLite) as through the ordinary ports one call at a time (core.flows.closing), on SQLite,
PostgreSQL through SQLAlchemy and PostgreSQL through the asyncpg pool the service uses."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from tests.integration.contract.conftest import Storage, statements_of
from tests.integration.records import user
from threshold.adapters.sql.repos import SqlAuditLog, SqlSignInWrites, SqlUserRepo
from threshold.core.audit import Auditor
from threshold.core.clock import SystemClock
from threshold.core.flows.closing import SequentialSignInWrites
from threshold.core.models import AuditEvent, AuditKind, Sightings
from threshold.core.ports import SignInClosed, SignInWrites

Scenario = Callable[[SignInWrites, SqlUserRepo], Awaitable[tuple[object, ...]]]
HOME, CAFE, AWAY = "203.0.113.0/24", "198.51.100.0/24", "2001:db8:1:2::/64"


def _event(user_id: str, at: float) -> AuditEvent:
    return AuditEvent(
        kind=AuditKind.LOGIN_SUCCEEDED,
        at=at,
        user_id=user_id,
        ip="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        detail={"method": "password", "session": f"s-{at}"},
    )


def _implementations(storage: Storage) -> dict[str, tuple[SignInWrites, SqlUserRepo, SqlAuditLog]]:
    assert storage.engine is not None
    statements = statements_of(storage)
    users = SqlUserRepo(storage.engine, statements=statements)
    audit = SqlAuditLog(storage.engine, statements=statements)
    return {
        "batched": (SqlSignInWrites(storage.engine, users, statements=statements), users, audit),
        "sequential": (SequentialSignInWrites(users, Auditor(audit, SystemClock())), users, audit),
    }


async def _state(users: SqlUserRepo, audit: SqlAuditLog, user_id: str) -> tuple[list[AuditEvent], Sightings]:
    events = [dataclasses.replace(e, id=None) for e in await audit.list_for_user(user_id)]
    return events, await users.sightings(user_id)


async def test_the_batched_closing_answers_and_writes_as_the_ordinary_ports_do(user_storage: Storage) -> None:
    outcomes: dict[str, list[object]] = {}
    for name, (writes, users, audit) in _implementations(user_storage).items():
        ada = user(credential_epoch=4)
        await users.add(ada, None)
        seen: list[object] = []
        # A browser new to the account, then the same browser again (from another network), then none
        # given (from the first network again: its time moves forward).
        seen.append(
            await writes.close(ada.id, epoch=4, event=_event(ada.id, 100.0), network=HOME, device="browser-1")
        )
        seen.append(
            await writes.close(ada.id, epoch=4, event=_event(ada.id, 200.0), network=CAFE, device="browser-1")
        )
        seen.append(
            await writes.close(ada.id, epoch=4, event=_event(ada.id, 300.0), network=HOME, device=None)
        )
        seen.append(await _state(users, audit, ada.id))
        # A reset committed meanwhile (the epoch moved on): nothing is written, whatever the browser
        # or the network.
        await users.bump_credential_epoch(ada.id)
        seen.append(
            await writes.close(ada.id, epoch=4, event=_event(ada.id, 400.0), network=HOME, device="browser-1")
        )
        seen.append(
            await writes.close(ada.id, epoch=4, event=_event(ada.id, 500.0), network=AWAY, device="browser-2")
        )
        seen.append(await _state(users, audit, ada.id))
        # The new epoch is current again; an account that is gone is never current.
        seen.append(
            await writes.close(ada.id, epoch=5, event=_event(ada.id, 600.0), network=AWAY, device="browser-2")
        )
        seen.append(await _state(users, audit, ada.id))
        ghost = user()
        seen.append(
            await writes.close(
                ghost.id, epoch=0, event=_event(ghost.id, 700.0), network=HOME, device="browser-1"
            )
        )
        seen.append(await _state(users, audit, ghost.id))
        outcomes[name] = [_without_ids(value, ada.id) for value in seen]

    batched, sequential = outcomes["batched"], outcomes["sequential"]
    assert batched == sequential
    assert batched[:3] == [
        SignInClosed(current=True, new_device=True),
        SignInClosed(current=True, new_device=False),
        SignInClosed(current=True, new_device=False),
    ]
    state = batched[3]
    assert isinstance(state, tuple)
    assert [e.at for e in state[0]] == [300.0, 200.0, 100.0]
    assert state[1] == Sightings(devices=((100.0, 200.0),), networks=((CAFE, 200.0), (HOME, 300.0)))
    assert batched[4:6] == [SignInClosed(current=False, new_device=False)] * 2
    assert batched[6] == batched[3]  # nothing written while stale
    assert batched[7] == SignInClosed(current=True, new_device=True)
    later = batched[8]
    assert isinstance(later, tuple)
    assert later[1].networks == ((CAFE, 200.0), (AWAY, 600.0), (HOME, 300.0))  # by network
    assert batched[9] == SignInClosed(current=False, new_device=False)
    assert batched[10] == ([], Sightings(devices=(), networks=()))


def _without_ids(value: object, user_id: str) -> object:
    """Each implementation signs in an account of its own: compare their rows with the account id
    written as one placeholder."""
    if isinstance(value, tuple):
        events, sightings = value
        return [
            dataclasses.replace(e, user_id="ACCOUNT" if e.user_id == user_id else e.user_id) for e in events
        ], sightings
    return value


async def test_a_browser_first_seen_by_concurrent_sign_ins_is_new_to_exactly_one(
    user_storage: Storage,
) -> None:
    # Its notice goes out once: of closings racing for a new browser (a connection each on the asyncpg
    # pool), exactly one finds it new, and each is audited.
    writes, users, audit = _implementations(user_storage)["batched"]
    ada = user()
    await users.add(ada, None)
    for round_ in range(4):
        closed = await asyncio.gather(
            *(
                writes.close(
                    ada.id,
                    epoch=0,
                    event=_event(ada.id, 10.0 * round_ + n),
                    network=HOME,
                    device=f"browser-{round_}",
                )
                for n in range(6)
            )
        )
        assert all(c.current for c in closed)
        assert [c.new_device for c in closed].count(True) == 1, closed
    assert len(await audit.list_for_user(ada.id, limit=100)) == 24
    sightings = await users.sightings(ada.id)
    assert len(sightings.devices) == 4
    assert [network for network, _ in sightings.networks] == [HOME]
