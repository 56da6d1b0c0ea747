"""The console's grants and its keyset reads (core.console.ConsoleStore) on SQL.

Pages are keyset pages: each continues strictly after the last row of the one before, on an index
(`users.email_normalized`, `audit_events (at, id)` or `(user_id, at)`), so page 2,000 costs what page 1
does.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import SqlRepo, translate_errors, writing
from threshold.adapters.sql.repos import audit_event_of
from threshold.adapters.sql.rows import user_of
from threshold.core.console import AuditQuery, ConsoleGrant
from threshold.core.models import AuditEvent, User

LIKE_ESCAPE = "\\"


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching exactly the strings that start with `prefix`."""
    escaped = prefix.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class SqlConsoleStore(SqlRepo):
    async def grant(self, grant: ConsoleGrant) -> bool:
        statement = t.console_operators.insert().values(
            user_id=grant.user_id, granted_at=grant.granted_at, granted_by=grant.granted_by
        )
        try:
            with translate_errors():
                async with writing(self._engine) as conn:
                    await conn.execute(statement)
        except IntegrityError:
            return False  # granted already (or, with no such account, refused by the foreign key)
        return True

    async def revoke(self, user_id: str) -> bool:
        return bool(
            await self._write(delete(t.console_operators).where(t.console_operators.c.user_id == user_id))
        )

    async def is_granted(self, user_id: str) -> bool:
        rows = await self._rows(
            select(t.console_operators.c.user_id).where(t.console_operators.c.user_id == user_id)
        )
        return bool(rows)

    async def grants(self) -> Sequence[ConsoleGrant]:
        rows = await self._rows(select(t.console_operators).order_by(t.console_operators.c.granted_at))
        return [
            ConsoleGrant(user_id=r.user_id, granted_at=r.granted_at, granted_by=r.granted_by) for r in rows
        ]

    async def users_page(self, *, prefix: str, after: str | None, limit: int) -> Sequence[User]:
        column = t.users.c.email_normalized
        statement = select(t.users).order_by(column).limit(limit)
        if prefix:
            # The range bounds the index scan; LIKE makes the match exact whatever the collation.
            statement = statement.where(
                column >= prefix, column < prefix + "\uffff", column.like(like_prefix(prefix), escape="\\")
            )
        if after is not None:
            statement = statement.where(column > after)
        return [user_of(row._mapping) for row in await self._rows(statement)]

    async def audit_page(self, query: AuditQuery, *, limit: int) -> Sequence[AuditEvent]:
        c = t.audit_events.c
        statement = select(t.audit_events).order_by(c.at.desc(), c.id.desc()).limit(limit)
        if query.user_id is not None:
            statement = statement.where(c.user_id == query.user_id)
        if query.kind is not None:
            statement = statement.where(c.kind == query.kind.value)
        if query.ip is not None:
            statement = statement.where(c.ip == query.ip)
        if query.since is not None:
            statement = statement.where(c.at >= query.since)
        if query.until is not None:
            statement = statement.where(c.at < query.until)
        if query.before is not None:
            at, event_id = query.before
            # (at, id) < (at', id'), spelt out: both backends then use the (at, id) index
            statement = statement.where(or_(c.at < at, and_(c.at == at, c.id < event_id)))
        return [audit_event_of(row) for row in await self._rows(statement)]
