"""Scheduled erasures of accounts (core.ports.DeletionRepo) on SQL, and the erasure itself: one
transaction, so that a process killed in the middle leaves the account whole (and still due) or gone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import SqlRepo, reading, translate_errors, writing
from threshold.core.emails import normalize_email
from threshold.core.errors import DependencyUnavailable, EmailInvalid, LastOperator
from threshold.core.models import AuditKind, ScheduledDeletion
from threshold.core.ratelimit import personal_counter_fragments
from threshold.core.secrets import new_id
from threshold.oidc.models import ACCOUNT_PURGED

PERSONAL_DETAIL = frozenset({"email", "old_email", "new_email", "address", "name", "subject", "device", "ip"})
"""Audit detail keys that hold something of the person; erased with them (the rest, such as `method`,
`cause` or `session`, says what happened without saying who)."""


def _deletion_of(row: Any) -> ScheduledDeletion:
    return ScheduledDeletion(
        pseudonym=row.pseudonym,
        user_id=row.user_id,
        requested_at=row.requested_at,
        erase_at=row.erase_at,
        requested_by=row.requested_by,
        erased_at=row.erased_at,
        keepable=bool(row.keepable),
    )


def scrubbed_detail(raw: str, email: str) -> str:
    """The audit detail without the person: personal keys dropped, and any value naming the address."""
    try:
        detail = json.loads(raw)
    except ValueError:
        return "{}"
    if not isinstance(detail, dict):
        return "{}"
    lowered = email.casefold()
    kept = {
        key: value
        for key, value in detail.items()
        if key not in PERSONAL_DETAIL and lowered not in str(value).casefold()
    }
    return json.dumps(kept, sort_keys=True)


async def _queue_deletion_events(conn: AsyncConnection, user_id: str, *, at: float) -> None:
    """A deletion event for each application that registered a deletion event URI and holds (or held) a
    grant or a consent of the person: queued in the erasure's transaction, delivered after it with the
    logout tokens' retries (adapters.backchannel)."""
    c = t.oauth_clients
    held = union(
        select(t.oauth_grants.c.client_id).where(t.oauth_grants.c.user_id == user_id),
        select(t.consents.c.client_id).where(t.consents.c.user_id == user_id),
    ).subquery()
    listening = await conn.execute(
        select(c.c.client_id).where(
            c.c.client_id.in_(select(held.c.client_id)), c.c.deletion_event_uri.is_not(None)
        )
    )
    rows = [
        {
            "id": new_id(),
            "client_id": client_id,
            "user_id": user_id,
            "sid": None,
            "cause": "user_deleted",
            "kind": ACCOUNT_PURGED,
            "created_at": at,
            "next_attempt_at": at,
            "attempts": 0,
        }
        for (client_id,) in listening
    ]
    if rows:
        await conn.execute(insert(t.logout_deliveries), rows)


async def _keep_an_operator(conn: AsyncConnection, user_id: str) -> None:
    """Refuse (LastOperator) to lock the only account that can open the console (granted, not
    disabled). Its first statement writes every grant, so that of two deletions at once (two operators
    deleting each other) the second waits for the first and then sees it: a row lock on PostgreSQL, the
    write lock on SQLite."""
    o = t.console_operators
    await conn.execute(update(o).values(granted_at=o.c.granted_at))
    active = (
        (
            await conn.execute(
                select(o.c.user_id)
                .join(t.users, t.users.c.id == o.c.user_id)
                .where(t.users.c.disabled.is_(False))
            )
        )
        .scalars()
        .all()
    )
    if user_id in active and len(active) == 1:
        raise LastOperator()


class SqlDeletionRepo(SqlRepo):
    async def schedule(self, deletion: ScheduledDeletion) -> ScheduledDeletion:
        assert deletion.user_id is not None
        for _ in range(3):  # a cancel racing an earlier schedule: try the insert again
            try:
                with translate_errors():
                    async with writing(self._engine) as conn:
                        await _keep_an_operator(conn, deletion.user_id)
                        await conn.execute(
                            t.account_deletions.insert().values(
                                pseudonym=deletion.pseudonym,
                                user_id=deletion.user_id,
                                requested_at=deletion.requested_at,
                                erase_at=deletion.erase_at,
                                requested_by=deletion.requested_by,
                                keepable=deletion.keepable,
                            )
                        )
                        await conn.execute(
                            update(t.users).where(t.users.c.id == deletion.user_id).values(disabled=True)
                        )
                return deletion
            except IntegrityError:  # scheduled already (the unique user_id): the earlier erasure stands
                d = t.account_deletions
                with translate_errors():
                    async with writing(self._engine) as conn:
                        await conn.execute(
                            update(d)
                            .where(
                                d.c.user_id == deletion.user_id,
                                d.c.erased_at.is_(None),
                                d.c.erase_at > deletion.erase_at,
                            )
                            .values(erase_at=deletion.erase_at)
                        )
                found = await self.pending(deletion.user_id)
                if found is not None:
                    return found
        raise DependencyUnavailable("account deletion kept racing")

    async def pending(self, user_id: str) -> ScheduledDeletion | None:
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (
                    await conn.execute(
                        select(t.account_deletions).where(
                            t.account_deletions.c.user_id == user_id,
                            t.account_deletions.c.erased_at.is_(None),
                        )
                    )
                ).first()
        return None if row is None else _deletion_of(row)

    async def cancel(self, user_id: str, *, now: float) -> bool:
        d = t.account_deletions
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    delete(d).where(
                        d.c.user_id == user_id, d.c.erased_at.is_(None), d.c.erase_at > now, d.c.keepable
                    )
                )
                if result.rowcount:
                    await conn.execute(update(t.users).where(t.users.c.id == user_id).values(disabled=False))
        return bool(result.rowcount)

    async def operator_locked(self, user_id: str, *, disabled: bool) -> bool:
        d = t.account_deletions
        pending = and_(d.c.user_id == user_id, d.c.erased_at.is_(None))
        with translate_errors():
            async with writing(self._engine) as conn:
                if disabled:
                    result = await conn.execute(update(d).where(pending).values(keepable=False))
                else:
                    result = await conn.execute(delete(d).where(pending))
        return bool(result.rowcount)

    async def due(self, *, now: float, limit: int = 100) -> Sequence[ScheduledDeletion]:
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = await conn.execute(
                    select(t.account_deletions)
                    .where(t.account_deletions.c.erased_at.is_(None), t.account_deletions.c.erase_at <= now)
                    .order_by(t.account_deletions.c.erase_at)
                    .limit(limit)
                )
                return [_deletion_of(row) for row in rows]

    async def erase(self, deletion: ScheduledDeletion, *, email: str, at: float) -> bool:
        user_id = deletion.user_id
        if user_id is None:
            return False
        try:
            normalized = normalize_email(email).normalized
        except EmailInvalid:
            normalized = email.casefold()
        d, a = t.account_deletions, t.audit_events
        with translate_errors():
            async with writing(self._engine) as conn:  # one transaction (the erasure is in no unit)
                # First, and conditional: of two processes erasing at once, one goes on; the other's
                # transaction ends here with nothing written.
                claimed = await conn.execute(
                    update(d)
                    .where(
                        d.c.pseudonym == deletion.pseudonym, d.c.erased_at.is_(None), d.c.user_id == user_id
                    )
                    .values(erased_at=at, user_id=None)
                )
                if not claimed.rowcount:
                    return False
                await _queue_deletion_events(conn, user_id, at=at)
                # Mail already sent (or given up on) to the address: its bodies are the person's. Mail
                # still queued (the deletion notice) is delivered, then purged as sent mail is.
                await conn.execute(
                    delete(t.mail_queue).where(
                        func.lower(t.mail_queue.c.to_address).in_({email.lower(), normalized}),
                        (t.mail_queue.c.sent_at.is_not(None)) | (t.mail_queue.c.failed_at.is_not(None)),
                    )
                )
                # Attempt counters keyed by the person (on Redis: core.deletion, after this commits).
                for fragment in personal_counter_fragments(user_id, normalized):
                    await conn.execute(
                        delete(t.rate_limits).where(t.rate_limits.c.key.contains(fragment, autoescape=True))
                    )
                await conn.execute(
                    delete(t.org_invitations).where(t.org_invitations.c.email_normalized == normalized)
                )
                # The account and, by their foreign keys, every row of it: password, factors, sessions,
                # devices, networks, grants, consents, codes, tokens, memberships, links, SCIM records.
                # Before the audit events are rewritten: the audit log's trigger accepts the rewrite only
                # of an account that is gone, under the pseudonym of an erasure carried out.
                await conn.execute(delete(t.users).where(t.users.c.id == user_id))
                events = await conn.execute(select(a.c.id, a.c.detail).where(a.c.user_id == user_id))
                for event_id, raw in events.all():
                    await conn.execute(
                        update(a)
                        .where(a.c.id == event_id)
                        .values(
                            user_id=deletion.pseudonym,
                            ip=None,
                            user_agent=None,
                            detail=scrubbed_detail(raw, email),
                        )
                    )
                await conn.execute(
                    a.insert().values(
                        at=at,
                        kind=AuditKind.ACCOUNT_ERASED.value,
                        user_id=deletion.pseudonym,
                        ip=None,
                        user_agent=None,
                        detail=json.dumps(
                            {
                                "requested_by": deletion.requested_by,
                                "requested_at": str(int(deletion.requested_at)),
                            },
                            sort_keys=True,
                        ),
                    )
                )
        return True
