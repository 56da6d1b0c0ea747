"""SQL implementations of UserRepo, SessionStore, RateLimitStore and AuditLog."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnClause,
    Integer,
    Row,
    Select,
    Table,
    TextClause,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import (
    SqlRepo,
    Statements,
    SyncStatements,
    reading,
    translate_errors,
    writing,
)
from threshold.adapters.sql.rows import (
    PASSWORD_OF_USER,
    USER_BY_EMAIL,
    USER_BY_ID,
    USER_WITH_PASSWORD,
    password_of,
    user_of,
    user_with_password,
)
from threshold.core.errors import EmailUnavailable
from threshold.core.models import (
    Aal,
    Amr,
    AuditEvent,
    AuditKind,
    PasswordCredential,
    SessionRecord,
    Sightings,
    User,
)
from threshold.core.ports import SignInClosed, WindowCount


def _insert(engine: AsyncEngine, table: Table) -> Any:
    """INSERT with ON CONFLICT support for the engine's dialect."""
    return _insert_for(engine.dialect.name, table)


def _insert_for(dialect: str, table: Table) -> Any:
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


# Statements of every sign-in, built once: SQLAlchemy memoizes a statement's cache key on the statement
# object, so one built per call costs its key again (about 70 us each on a small machine, more than
# the statement's own round trip through asyncpg). The values go in as named parameters.
def _credential_epoch(key: str) -> Select[Any]:
    """An account's credential epoch, its id in the named parameter `key`."""
    return select(t.users.c.credential_epoch).where(t.users.c.id == bindparam(key))


_CREDENTIAL_EPOCH = _credential_epoch("user_id")
_SEE_DEVICE = (
    update(t.known_devices)
    .where(
        t.known_devices.c.user_id == bindparam("b_user_id"), t.known_devices.c.device == bindparam("b_device")
    )
    .values(last_seen_at=bindparam("b_at"))
)


def _named(*columns: str) -> dict[str, Any]:
    """VALUES of a prebuilt INSERT: each column's named parameter (asyncpg compiles exactly these)."""
    return {column: bindparam(column) for column in columns}


_AUDIT_COLUMNS = ("at", "kind", "user_id", "ip", "user_agent", "detail")
"""An audit row's columns: the named parameters of `_AUDIT_APPEND` and `_close_sign_in` (`_audit_row`)."""
_AUDIT_APPEND = (
    insert(t.audit_events)
    .values(_named(*_AUDIT_COLUMNS))
    .inline()  # no RETURNING of the new id: nothing reads it
)
_NEW_SESSION = t.sessions.insert()


def _audit_row(event: AuditEvent) -> dict[str, Any]:
    """An audit event as `_AUDIT_APPEND`'s (and `_CLOSE_SIGN_IN`'s) named parameters."""
    return {
        "at": event.at,
        "kind": event.kind.value,
        "user_id": event.user_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "detail": json.dumps(event.detail, sort_keys=True),
    }


@functools.cache
def _network_success(dialect: str) -> Any:
    return _noting_network(
        _insert_for(dialect, t.login_networks).values(_named("user_id", "network", "last_success_at"))
    )


def _noting_network(statement: Any) -> Any:
    """An INSERT of a network's success (`_network_success`, `_close_sign_in`): a network noted again
    moves its time forward."""
    return statement.on_conflict_do_update(
        index_elements=["user_id", "network"], set_={"last_success_at": statement.excluded.last_success_at}
    )


def _close_sign_in() -> Select[Any]:
    """PostgreSQL: a sign-in's closing writes (ports.SignInWrites) as one statement. The credential epoch
    is read (`_credential_epoch`); only if it is the one given (`epoch`) is the audit event inserted, the
    network noted (`_noting_network`) and the browser's row touched (`_SEE_DEVICE`), as data-modifying
    CTEs: one snapshot, one round trip, atomic. Its row: the epoch read and how many rows the sighting
    touched (0: a browser new to the account, or none given). The account's id is `b_user_id` throughout
    (a parameter named after a column of the UPDATE would become a SET of it when SQLAlchemy runs the
    statement, as in a unit of work); the network is `b_network`, its time the sighting's `b_at`."""
    epoch = _credential_epoch("b_user_id").cte("epoch")
    current = select(epoch.c.credential_epoch).where(epoch.c.credential_epoch == bindparam("epoch")).exists()
    columns = t.audit_events.c
    values = (
        bindparam("b_user_id" if name == "user_id" else name, type_=columns[name].type)
        for name in _AUDIT_COLUMNS
    )
    audited = (
        insert(t.audit_events)
        .from_select(list(_AUDIT_COLUMNS), select(*values).where(current))
        .cte("audited")
    )
    networks = t.login_networks.c
    network = select(
        bindparam("b_user_id", type_=networks.user_id.type),
        bindparam("b_network", type_=networks.network.type),
        bindparam("b_at", type_=networks.last_success_at.type),
    ).where(current)
    noted = _noting_network(
        postgresql.insert(t.login_networks).from_select(["user_id", "network", "last_success_at"], network)
    ).cte("noted")
    seen = _SEE_DEVICE.where(current).returning(t.known_devices.c.device).cte("seen")
    return select(
        select(epoch.c.credential_epoch).scalar_subquery().label("credential_epoch"),
        select(func.count()).select_from(seen).scalar_subquery().label("seen"),
    ).add_cte(audited, noted)


_CLOSE_SIGN_IN = _close_sign_in()
_SESSION_BY_DIGEST = select(t.sessions).where(t.sessions.c.digest == bindparam("digest"))


# Rate limits on SQL (deployments without Redis): every attempt counted, given back or cleared.
_REFUND_ATTEMPT = (
    update(t.rate_limits)
    .where(
        t.rate_limits.c.key == bindparam("b_key"),
        t.rate_limits.c.window_start == bindparam("b_start"),
        t.rate_limits.c.count > 0,
    )
    .values(count=t.rate_limits.c.count - 1)
)


@functools.cache
def _count_attempt(dialect: str) -> Any:
    return (
        _insert_for(dialect, t.rate_limits)
        .on_conflict_do_update(
            index_elements=["key", "window_start"], set_={"count": t.rate_limits.c.count + 1}
        )
        .returning(t.rate_limits.c.count)
    )


@functools.cache
def _count_attempts(n: int) -> TextClause:
    """`_count_attempt` for `n` counters in one statement (a multi-row upsert): each row inserted at 1 or
    its count raised, and returned with its key and window (RETURNING's order is the database's, so the
    counts are matched to their counters by these). The counters must be distinct rows; PostgreSQL
    inserts (and locks) them in the order of VALUES, the order they are given.

    SQLAlchemy compiles a multi-row INSERT afresh at every execution (it has no cache key: 0.5 ms each
    time), so the statement it builds is compiled here once per dialect and size and run as text, its
    named parameters key_i, start_i and expires_i."""
    c = t.rate_limits.c
    one: ColumnClause[int] = literal_column("1")
    rows = [
        {"key": bindparam(f"key_{i}"), "window_start": bindparam(f"start_{i}"), "count": one,
         "expires_at": bindparam(f"expires_{i}")}
        for i in range(n)
    ]  # fmt: skip
    statement = (
        sqlite.insert(t.rate_limits)
        .values(rows)
        .on_conflict_do_update(index_elements=["key", "window_start"], set_={"count": c.count + one})
        .returning(c.key, c.window_start, c.count)
    )
    # SQLite's rendering is also PostgreSQL's syntax (the upsert, RETURNING, the quoted "key"), and
    # unlike PostgreSQL's it writes no casts after the parameters, which text() would not read.
    return text(str(statement.compile(dialect=sqlite.dialect(paramstyle="named"))))


@functools.cache
def _refund_attempts(n: int) -> Any:
    """`_REFUND_ATTEMPT` for `n` distinct counters in one statement: each gives one attempt back, never
    below zero."""
    c = t.rate_limits.c
    rows = [(c.key == bindparam(f"key_{i}")) & (c.window_start == bindparam(f"start_{i}")) for i in range(n)]
    return update(t.rate_limits).where(or_(*rows), c.count > 0).values(count=c.count - 1)


@functools.cache
def _settle_in_order(refunds: int, resets: int) -> Any:
    """PostgreSQL: a settlement as one statement. `refunds` distinct counters (`key_i`, `start_i`) each
    give one attempt back, never below zero, their rows locked first in the counters' order (a SELECT
    ... ORDER BY ... FOR UPDATE locks in the order it sorts, as `increment_all` and the one-at-a-time
    give-back do); then the `resets` counters (`reset_i`, every window of each, keys none of the
    refunds has) are cleared by the main statement, whose condition reads the UPDATE's rows: so the
    UPDATE (a data-modifying CTE) has run, and taken its locks, before the DELETE takes any."""
    c = t.rate_limits.c
    # every parameter a named one (pg_fast): the constants as literals
    zero, one = literal_column("0", Integer), literal_column("1", Integer)
    rows = [
        (c.key == bindparam(f"key_{i}")) & (c.window_start == bindparam(f"start_{i}")) for i in range(refunds)
    ]
    locked = (
        select(c.key, c.window_start)
        .where(or_(*rows), c.count > zero)
        .order_by(case(*((row, literal_column(str(i))) for i, row in enumerate(rows))))
        .with_for_update()
        .cte("locked")
    )
    refund = (
        update(t.rate_limits)
        .where(c.key == locked.c.key, c.window_start == locked.c.window_start, c.count > zero)
        .values(count=c.count - one)
    )
    if not resets:
        return refund
    refunded = refund.returning(c.key).cte("refunded")
    after_the_refunds = select(func.count()).select_from(refunded).scalar_subquery() >= zero
    return delete(t.rate_limits).where(
        c.key.in_([bindparam(f"reset_{i}") for i in range(resets)]), after_the_refunds
    )


@functools.cache
def _reset_counters(n: int) -> Any:
    """Clear `n` counters (every window of each), named key_0 ... (not an expanding IN: compiled once)."""
    return delete(t.rate_limits).where(t.rate_limits.c.key.in_([bindparam(f"key_{i}") for i in range(n)]))


@functools.cache
def _new_device(dialect: str) -> Any:
    return (
        _insert_for(dialect, t.known_devices)
        .values(_named("user_id", "device", "first_seen_at", "last_seen_at"))
        .on_conflict_do_nothing(index_elements=["user_id", "device"])
    )


class SqlUserRepo(SqlRepo):
    async def set_mfa_required(self, user_id: str, required: bool) -> bool:
        return await _update_user(self._engine, user_id, mfa_required=required)

    async def snooze_passkey_prompt(self, user_id: str, until: float) -> None:
        await _update_user(self._engine, user_id, passkey_prompt_snoozed_until=until)

    async def set_email_verified(self, user_id: str, email_normalized: str) -> bool:
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    update(t.users)
                    .where(t.users.c.id == user_id, t.users.c.email_normalized == email_normalized)
                    .values(email_verified=True)
                )
        return bool(result.rowcount)

    async def change_email(self, user_id: str, *, email: str, email_normalized: str) -> None:
        with translate_errors():
            try:
                async with writing(self._engine) as conn:
                    await conn.execute(
                        update(t.users)
                        .where(t.users.c.id == user_id)
                        .values(email=email, email_normalized=email_normalized, email_verified=True)
                    )
            except IntegrityError as error:
                raise EmailUnavailable() from error

    async def remember_device(self, user_id: str, device: str, at: float) -> bool:
        # A returning device (most sign-ins) is one UPDATE; a new one an INSERT after it. Each statement
        # is atomic on its own, which a sighting needs: of two first sign-ins from one device at once,
        # only the one whose INSERT lands calls the device new, and the other then records its sighting.
        seen = {"b_user_id": user_id, "b_device": device, "b_at": at}
        if await self._statements.execute(_SEE_DEVICE, seen):
            return False
        row = {"user_id": user_id, "device": device, "first_seen_at": at, "last_seen_at": at}
        if await self._statements.execute(_new_device(self._engine.dialect.name), row):
            return True
        await self._statements.execute(_SEE_DEVICE, seen)  # inserted meanwhile by the other
        return False

    async def add(self, user: User, credential: PasswordCredential | None) -> None:
        with translate_errors():
            try:
                async with writing(self._engine) as conn:
                    await conn.execute(
                        t.users.insert().values(
                            id=user.id,
                            email=user.email,
                            email_normalized=user.email_normalized,
                            email_verified=user.email_verified,
                            disabled=user.disabled,
                            mfa_required=user.mfa_required,
                            created_at=user.created_at,
                            credential_epoch=user.credential_epoch,
                        )
                    )
                    if credential is not None:
                        await conn.execute(
                            t.password_credentials.insert().values(
                                user_id=credential.user_id,
                                hash=credential.hash,
                                updated_at=credential.updated_at,
                            )
                        )
            except IntegrityError as error:
                raise EmailUnavailable() from error

    async def get(self, user_id: str) -> User | None:
        row = await self._statements.first(USER_BY_ID, {"user_id": user_id})
        return user_of(row) if row else None

    async def get_by_email(self, email_normalized: str) -> User | None:
        if "\x00" in email_normalized:  # never stored (not printable), and PostgreSQL text refuses NUL
            return None
        row = await self._statements.first(USER_BY_EMAIL, {"email_normalized": email_normalized})
        return user_of(row) if row else None

    async def list(self, *, limit: int = 100, offset: int = 0) -> Sequence[User]:
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (
                    await conn.execute(
                        select(t.users)
                        .order_by(t.users.c.created_at, t.users.c.id)
                        .limit(limit)
                        .offset(offset)
                    )
                ).all()
        return [user_of(row._mapping) for row in rows]

    async def set_disabled(self, user_id: str, disabled: bool) -> bool:
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    update(t.users).where(t.users.c.id == user_id).values(disabled=disabled)
                )
        return bool(result.rowcount)

    async def get_password(self, user_id: str) -> PasswordCredential | None:
        row = await self._statements.first(PASSWORD_OF_USER, {"user_id": user_id})
        return password_of(row) if row else None

    async def get_with_password(self, email_normalized: str) -> tuple[User, PasswordCredential | None] | None:
        if "\x00" in email_normalized:  # as get_by_email
            return None
        row = await self._statements.first(USER_WITH_PASSWORD, {"email_normalized": email_normalized})
        return user_with_password(row) if row else None

    async def set_password(self, credential: PasswordCredential, *, same_secret: bool = False) -> None:
        statement = _insert(self._engine, t.password_credentials).values(
            user_id=credential.user_id, hash=credential.hash, updated_at=credential.updated_at
        )
        statement = statement.on_conflict_do_update(
            index_elements=["user_id"], set_={"hash": credential.hash, "updated_at": credential.updated_at}
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(statement)
                if not same_secret:
                    await conn.execute(_next_epoch(credential.user_id))

    async def delete_password(self, user_id: str) -> bool:
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    delete(t.password_credentials).where(t.password_credentials.c.user_id == user_id)
                )
                await conn.execute(_next_epoch(user_id))
        return bool(result.rowcount)

    async def bump_credential_epoch(self, user_id: str) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(_next_epoch(user_id))

    async def credential_epoch(self, user_id: str) -> int | None:
        row = await self._statements.first(_CREDENTIAL_EPOCH, {"user_id": user_id})
        return None if row is None else int(row["credential_epoch"])

    async def record_network(self, user_id: str, network: str, at: float) -> None:
        row = {"user_id": user_id, "network": network, "last_success_at": at}
        await self._statements.execute(_network_success(self._engine.dialect.name), row)

    async def sightings(self, user_id: str) -> Sightings:
        devices = (
            select(t.known_devices.c.first_seen_at, t.known_devices.c.last_seen_at)
            .where(t.known_devices.c.user_id == user_id)
            .order_by(t.known_devices.c.first_seen_at)
        )
        networks = (
            select(t.login_networks.c.network, t.login_networks.c.last_success_at)
            .where(t.login_networks.c.user_id == user_id)
            .order_by(t.login_networks.c.network)
        )
        with translate_errors():
            async with reading(self._engine) as conn:
                seen = [(float(a), float(b)) for a, b in (await conn.execute(devices)).all()]
                from_networks = [(str(n), float(at)) for n, at in (await conn.execute(networks)).all()]
        return Sightings(devices=tuple(seen), networks=tuple(from_networks))

    async def network_seen_since(self, user_id: str, network: str, since: float) -> bool:
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (
                    await conn.execute(
                        select(t.login_networks.c.last_success_at).where(
                            t.login_networks.c.user_id == user_id,
                            t.login_networks.c.network == network,
                            t.login_networks.c.last_success_at >= since,
                        )
                    )
                ).first()
        return row is not None


async def _update_user(engine: AsyncEngine, user_id: str, **values: Any) -> bool:
    with translate_errors():
        async with writing(engine) as conn:
            result = await conn.execute(update(t.users).where(t.users.c.id == user_id).values(**values))
    return bool(result.rowcount)


def _next_epoch(user_id: str) -> Any:
    return (
        update(t.users).where(t.users.c.id == user_id).values(credential_epoch=t.users.c.credential_epoch + 1)
    )


def _session(row: Row[Any]) -> SessionRecord:
    return SessionRecord(
        digest=row.digest,
        public_id=row.public_id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        idle_expires_at=row.idle_expires_at,
        absolute_expires_at=row.absolute_expires_at,
        aal=Aal(row.aal),
        amr=tuple(Amr(value) for value in row.amr.split(",") if value),
        ip=row.ip,
        user_agent=row.user_agent,
        device_label=row.device_label,
        auth_time=row.auth_time,
        org_id=row.org_id,
        connection_id=row.connection_id,
        upstream_acr=row.upstream_acr,
        upstream_amr=tuple(value for value in row.upstream_amr.split(",") if value),
    )


class SqlSessionStore(SqlRepo):
    async def create(self, record: SessionRecord) -> None:
        row = {
            "digest": record.digest,
            "public_id": record.public_id,
            "user_id": record.user_id,
            "created_at": record.created_at,
            "last_seen_at": record.last_seen_at,
            "idle_expires_at": record.idle_expires_at,
            "absolute_expires_at": record.absolute_expires_at,
            "auth_time": record.auth_time,
            "aal": record.aal.value,
            "amr": ",".join(record.amr),
            "ip": record.ip,
            "user_agent": record.user_agent,
            "device_label": record.device_label,
            "org_id": record.org_id,
            "connection_id": record.connection_id,
            "upstream_acr": record.upstream_acr[:200] if record.upstream_acr else None,
            "upstream_amr": ",".join(record.upstream_amr)[:200],
        }
        # committed when this returns (or with the unit of work): the sign-in checks the epoch after it
        await self._statements.execute(_NEW_SESSION, row)

    async def get(self, digest: str) -> SessionRecord | None:
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (await conn.execute(_SESSION_BY_DIGEST, {"digest": digest})).first()
        return _session(row) if row else None

    async def touch(self, digest: str, *, last_seen_at: float, idle_expires_at: float) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.sessions)
                    .where(t.sessions.c.digest == digest)
                    .values(last_seen_at=last_seen_at, idle_expires_at=idle_expires_at)
                )

    async def delete(self, digest: str) -> bool:
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(delete(t.sessions).where(t.sessions.c.digest == digest))
        return bool(result.rowcount)

    async def update_auth(self, digest: str, *, auth_time: float, aal: Aal, amr: Sequence[Amr]) -> bool:
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    update(t.sessions)
                    .where(t.sessions.c.digest == digest)
                    .values(auth_time=auth_time, aal=aal.value, amr=",".join(amr))
                )
        return bool(result.rowcount)

    async def delete_for_user(self, user_id: str, *, except_digest: str | None = None) -> int:
        statement = delete(t.sessions).where(t.sessions.c.user_id == user_id)
        if except_digest is not None:
            statement = statement.where(t.sessions.c.digest != except_digest)
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(statement)
        return int(result.rowcount)

    async def list_for_user(self, user_id: str) -> Sequence[SessionRecord]:
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (await conn.execute(select(t.sessions).where(t.sessions.c.user_id == user_id))).all()
        return [_session(row) for row in rows]

    async def purge_expired(self, *, now: float, batch: int = 500) -> int:
        """Delete up to `batch` expired sessions; the sweeper calls it repeatedly."""
        expired = (
            select(t.sessions.c.digest)
            .where((t.sessions.c.absolute_expires_at <= now) | (t.sessions.c.idle_expires_at <= now))
            .limit(batch)
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(delete(t.sessions).where(t.sessions.c.digest.in_(expired)))
        return int(result.rowcount)


class SqlRateLimitStore(SqlRepo):
    """Counting and giving back through `statements` (on a fast runner: one statement, or on SQLite one
    transaction, per hand-over)."""

    @staticmethod
    def _window(window: int, now: float) -> tuple[int, int]:
        start = int(now // window) * window
        return start, max(1, int(start + window - now + 0.999))

    async def get(self, key: str, *, window: int, now: float) -> WindowCount:
        start, retry_after = self._window(window, now)
        with translate_errors():
            async with reading(self._engine) as conn:
                count = (
                    await conn.execute(
                        select(t.rate_limits.c.count).where(
                            t.rate_limits.c.key == key, t.rate_limits.c.window_start == start
                        )
                    )
                ).scalar()
        return WindowCount(count=int(count or 0), retry_after=retry_after)

    async def increment(self, key: str, *, window: int, now: float) -> WindowCount:
        return (await self.increment_all([(key, window)], now=now))[0]

    async def increment_all(self, counters: Sequence[tuple[str, int]], *, now: float) -> list[WindowCount]:
        # Every write here takes its rows in the order the counters are given (the order of the limits,
        # the same for counting, giving back and clearing): two attempts never wait on each other's
        # rows in opposite orders (PostgreSQL's row locks; SQLite locks the whole database).
        windows = [(key, *self._window(window, now), window) for key, window in counters]
        counting = _count_attempt(self._engine.dialect.name)
        if len({(key, start) for key, start, _, _ in windows}) < len(windows):

            def one_at_a_time(run: SyncStatements) -> list[int]:  # a counter named twice: counted twice
                counted = []
                for key, start, _, window in windows:
                    row = {"key": key, "window_start": start, "count": 1, "expires_at": start + window}
                    found = run.first(counting, row)
                    assert found is not None, "an upsert returns its row"
                    counted.append(int(found["count"]))
                return counted

            counts = await self._statements.transaction(one_at_a_time)
        else:  # one statement for all of them: one round trip (one hand-over on SQLite)
            params: dict[str, Any] = {}
            for i, (key, start, _, window) in enumerate(windows):
                params |= {f"key_{i}": key, f"start_{i}": start, f"expires_{i}": start + window}
            rows = await self._statements.returning(_count_attempts(len(windows)), params)
            counted = {(row["key"], int(row["window_start"])): int(row["count"]) for row in rows}
            counts = [counted[(key, start)] for key, start, _, _ in windows]
        return [
            WindowCount(count=count, retry_after=retry)
            for count, (_, _, retry, _) in zip(counts, windows, strict=True)
        ]

    async def settle(
        self, *, refund: Sequence[tuple[str, int]] = (), reset: Sequence[tuple[str, int]] = (), now: float
    ) -> None:
        if not refund and not reset:
            return
        given = [(key, self._window(window, now)[0]) for key, window in refund]
        distinct = bool(given) and len(set(given)) == len(given)
        if (
            self._engine.dialect.name == "postgresql"
            and distinct
            and not {key for key, _ in given} & {key for key, _ in reset}
        ):  # one statement, one round trip (autocommit on the fast pool, or in the unit of work)
            params: dict[str, Any] = {f"reset_{i}": key for i, (key, _) in enumerate(reset)}
            for i, (key, start) in enumerate(given):
                params |= {f"key_{i}": key, f"start_{i}": start}
            await self._statements.execute(_settle_in_order(len(given), len(reset)), params)
            return
        together = self._engine.dialect.name == "sqlite" and distinct

        def give_back(run: SyncStatements) -> None:
            if together:
                # one statement (SQLite, where a writer locks the whole database); on PostgreSQL one
                # UPDATE would lock its rows in the order it finds them, so there they go one at a time,
                # in the counters' order (see increment_all)
                params: dict[str, Any] = {}
                for i, (key, start) in enumerate(given):
                    params |= {f"key_{i}": key, f"start_{i}": start}
                run.execute(_refund_attempts(len(given)), params)
            else:
                for key, start in given:
                    run.execute(_REFUND_ATTEMPT, {"b_key": key, "b_start": start})
            if reset:
                run.execute(
                    _reset_counters(len(reset)), {f"key_{i}": key for i, (key, _) in enumerate(reset)}
                )

        await self._statements.transaction(give_back)

    async def forget(self, fragment: str) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    delete(t.rate_limits).where(t.rate_limits.c.key.contains(fragment, autoescape=True))
                )

    async def purge_expired(self, *, now: float, batch: int = 1000) -> int:
        expired = (
            select(t.rate_limits.c.key, t.rate_limits.c.window_start)
            .where(t.rate_limits.c.expires_at <= now)
            .limit(batch)
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                rows = (await conn.execute(expired)).all()
                for row in rows:
                    await conn.execute(
                        delete(t.rate_limits).where(
                            t.rate_limits.c.key == row.key, t.rate_limits.c.window_start == row.window_start
                        )
                    )
        return len(rows)


def audit_event_of(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        kind=AuditKind(row.kind),
        at=row.at,
        user_id=row.user_id,
        ip=row.ip,
        user_agent=row.user_agent,
        detail=json.loads(row.detail),
    )


class SqlSignInWrites(SqlRepo):
    """ports.SignInWrites on SQL: on PostgreSQL one statement (`_CLOSE_SIGN_IN`), elsewhere the same
    statements (`_AUDIT_APPEND`, `_network_success`, `_SEE_DEVICE`) in one transaction (on SQLite's fast
    runner one hand-over to its thread, the epoch read under the write lock; through SQLAlchemy, where
    pysqlite begins the transaction at the first write, the epoch is read just before, as the ordinary
    path reads it); a browser the account had not seen is then added by `SqlUserRepo.remember_device`
    (which settles two first sightings at once): more round trips only for a new browser."""

    def __init__(
        self, engine: AsyncEngine, users: SqlUserRepo, *, statements: Statements | None = None
    ) -> None:
        super().__init__(engine, statements=statements)
        self._users = users

    async def close(
        self, user_id: str, *, epoch: int, event: AuditEvent, network: str, device: str | None
    ) -> SignInClosed:
        assert event.user_id == user_id, "a sign-in's event is about its account"
        seen_params = {"b_user_id": user_id, "b_device": device, "b_at": event.at}
        if self._engine.dialect.name == "postgresql":
            # On the fast pool or in `reading`, both in autocommit on PostgreSQL (or in the unit of work,
            # committing with it), so the CTEs' writes commit with the statement.
            audit = {k: v for k, v in _audit_row(event).items() if k != "user_id"}  # it is b_user_id
            params = {"epoch": epoch, **audit, **seen_params, "b_network": network}
            row = await self._statements.first(_CLOSE_SIGN_IN, params)
            current = row is not None and row["credential_epoch"] == epoch
            seen = bool(row and row["seen"])
        else:
            noted = {"user_id": user_id, "network": network, "last_success_at": event.at}
            noting = _network_success(self._engine.dialect.name)

            def close(run: SyncStatements) -> tuple[bool, bool]:
                found = run.first(_CREDENTIAL_EPOCH, {"user_id": user_id})
                if found is None or found["credential_epoch"] != epoch:
                    return False, False
                run.execute(_AUDIT_APPEND, _audit_row(event))
                run.execute(noting, noted)
                return True, bool(device) and bool(run.execute(_SEE_DEVICE, seen_params))

            current, seen = await self._statements.transaction(close)
        if not current:
            return SignInClosed(current=False, new_device=False)
        if seen or not device:
            return SignInClosed(current=True, new_device=False)
        return SignInClosed(
            current=True, new_device=await self._users.remember_device(user_id, device, event.at)
        )


class SqlAuditLog(SqlRepo):
    async def append(self, event: AuditEvent) -> None:
        await self._statements.execute(_AUDIT_APPEND, _audit_row(event))

    async def list_for_user(self, user_id: str, *, limit: int = 50) -> Sequence[AuditEvent]:
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (
                    await conn.execute(
                        select(t.audit_events)
                        .where(t.audit_events.c.user_id == user_id)
                        .order_by(t.audit_events.c.at.desc(), t.audit_events.c.id.desc())
                        .limit(limit)
                    )
                ).all()
        return [audit_event_of(row) for row in rows]

    async def count(self) -> int:
        with translate_errors():
            async with reading(self._engine) as conn:
                return int(
                    (await conn.execute(select(func.count()).select_from(t.audit_events))).scalar_one()
                )
