"""Durable work queues in a SQL table shared by every process: the mail queue and the logout-token queue.

A row is due while it is neither done nor given up, its next attempt has come and no lease on it runs;
a worker claims due rows by leasing them (and counting the attempt) in one UPDATE that checks the same
condition again, so of two workers on two processes exactly one gets each row. A failed attempt is
retried after an exponential backoff.

`run_worker` is the loop both queues' workers run: it clears its wake-up event *before* it looks at the
queue, so a row queued while a pass runs wakes the next pass instead of waiting for the poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Double,
    Row,
    Select,
    Table,
    bindparam,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql.db import EngineStatements, Statements, reading, translate_errors, writing
from threshold.core.errors import DependencyUnavailable

LEASE = 60.0
"""Seconds a claimed row is left to its worker before another may take it (a worker that crashed)."""


def backoff(attempts: int, *, base: float, cap: float) -> float:
    """`base`, then twice as long after each further attempt, at most `cap` seconds."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


def due(table: Table, *, done: str, now: float | BindParameter[float]) -> ColumnElement[bool]:
    """Rows not done (`done` names the column set on success), not given up, due, and not leased."""
    c = table.c
    return (
        c[done].is_(None)
        & c.failed_at.is_(None)
        & (c.next_attempt_at <= now)
        & (c.lease_until.is_(None) | (c.lease_until <= now))
    )


@functools.cache
def _any_due(table: Table, done: str) -> Select[Any]:
    """Whether a row is due at the named parameter `now` (built once per queue: its compiled form is
    cached, so an idle poll costs one read without a transaction)."""
    return select(exists().where(due(table, done=done, now=bindparam("now", type_=Double()))).label("due"))


async def claim(
    engine: AsyncEngine,
    table: Table,
    *,
    done: str,
    now: float,
    limit: int,
    statements: Statements | None = None,
) -> list[Row[Any]]:
    """Lease up to `limit` due rows (oldest due first) and count the attempt; the rows leased. A queue
    with nothing due (every idle poll of every process, four a second for the logout queue) is answered by
    one read without a transaction, on `statements` when given (PostgreSQL: the asyncpg pool's)."""
    c = table.c
    found = await (statements or EngineStatements(engine)).first(_any_due(table, done), {"now": now})
    if found is None or not found["due"]:
        return []
    condition = due(table, done=done, now=now)
    with translate_errors():
        async with writing(engine) as conn:
            ids = [
                r.id
                for r in (
                    await conn.execute(select(c.id).where(condition).order_by(c.next_attempt_at).limit(limit))
                ).all()
            ]
            if not ids:
                return []
            # The condition is checked again by the UPDATE itself: of two workers, one gets each row.
            return list(
                (
                    await conn.execute(
                        update(table)
                        .where(c.id.in_(ids), condition)
                        .values(lease_until=now + LEASE, attempts=c.attempts + 1)
                        .returning(*c)
                    )
                ).all()
            )


@dataclass(frozen=True, slots=True)
class Backlog:
    """What a queue still holds: rows neither done nor given up (due, leased or waiting to retry)."""

    depth: int
    oldest_created_at: float | None


async def backlog(engine: AsyncEngine, table: Table, *, done: str) -> Backlog:
    """How many rows of `table` are neither done nor given up, and when the oldest was queued (one
    aggregate query, for the metrics scrape)."""
    c = table.c
    pending = c[done].is_(None) & c.failed_at.is_(None)
    with translate_errors():
        async with reading(engine) as conn:
            row = (await conn.execute(select(func.count(), func.min(c.created_at)).where(pending))).one()
    return Backlog(depth=int(row[0]), oldest_created_at=row[1])


async def run_worker(
    deliver_due: Callable[[], Awaitable[int]], wakeup: asyncio.Event, *, poll: float, log: logging.Logger
) -> None:
    """Deliver while there is work, then wait for a wake-up or `poll` seconds; forever."""
    while True:
        wakeup.clear()  # before looking: what is queued during this pass sets it again
        try:
            while await deliver_due():
                pass
        except DependencyUnavailable:
            log.warning("%s: database unavailable, retrying", log.name)
        except Exception:
            log.exception("%s failed", log.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout=poll)
