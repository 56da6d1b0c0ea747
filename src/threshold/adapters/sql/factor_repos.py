"""SQL implementations of FactorRepo (passkeys, TOTP, recovery codes, recovery requests), EphemeralStore."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, Row, bindparam, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import SqlRepo, reading, translate_errors, writing
from threshold.adapters.sql.repos import _insert
from threshold.core.models import Passkey, RecoveryRequest, SecondFactors, TotpCredential


def _passkey(row: Row[Any]) -> Passkey:
    return Passkey(
        id=row.id,
        user_id=row.user_id,
        credential_id=row.credential_id,
        public_key=row.public_key,
        sign_count=int(row.sign_count),
        transports=tuple(json.loads(row.transports)),
        backup_eligible=bool(row.backup_eligible),
        backup_state=bool(row.backup_state),
        aaguid=row.aaguid,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        flagged=bool(row.flagged),
    )


def _request(row: Row[Any]) -> RecoveryRequest:
    return RecoveryRequest(
        id=row.id,
        user_id=row.user_id,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        execute_after=row.execute_after,
        executed_at=row.executed_at,
        cancelled_at=row.cancelled_at,
    )


def _second_factors() -> Any:
    p, totp, codes = t.passkeys.c, t.totp_credentials.c, t.recovery_codes.c
    user_id: BindParameter[str] = bindparam("user_id")
    return select(
        exists().where(p.user_id == user_id).label("passkey"),
        exists().where(totp.user_id == user_id, totp.confirmed.is_(True)).label("totp"),
        select(func.count())
        .select_from(t.recovery_codes)
        .where(codes.user_id == user_id, codes.used_at.is_(None))
        .scalar_subquery()
        .label("recovery_codes"),
    )


_SECOND_FACTORS = _second_factors()  # read at every password sign-in: built once (see repos.py)


class SqlFactorRepo(SqlRepo):
    # passkeys

    async def list_passkeys(self, user_id: str) -> Sequence[Passkey]:
        p = t.passkeys.c
        rows = await self._rows(select(t.passkeys).where(p.user_id == user_id).order_by(p.created_at))
        return [_passkey(row) for row in rows]

    async def second_factors(self, user_id: str) -> SecondFactors:
        row = await self._statements.first(_SECOND_FACTORS, {"user_id": user_id})
        assert row is not None  # a SELECT without FROM has its one row
        return SecondFactors(
            passkey=bool(row["passkey"]), totp=bool(row["totp"]), recovery_codes=int(row["recovery_codes"])
        )

    async def get_passkey_by_credential(self, credential_id: str) -> Passkey | None:
        rows = await self._rows(select(t.passkeys).where(t.passkeys.c.credential_id == credential_id))
        return _passkey(rows[0]) if rows else None

    async def add_passkey(self, passkey: Passkey) -> None:
        await self._write(
            t.passkeys.insert().values(
                id=passkey.id,
                user_id=passkey.user_id,
                credential_id=passkey.credential_id,
                public_key=passkey.public_key,
                sign_count=passkey.sign_count,
                transports=json.dumps(list(passkey.transports)),
                backup_eligible=passkey.backup_eligible,
                backup_state=passkey.backup_state,
                aaguid=passkey.aaguid,
                name=passkey.name,
                flagged=passkey.flagged,
                created_at=passkey.created_at,
                last_used_at=passkey.last_used_at,
            )
        )

    async def update_passkey_use(
        self, passkey_id: str, *, sign_count: int, backup_state: bool, at: float
    ) -> None:
        await self._write(
            update(t.passkeys)
            .where(t.passkeys.c.id == passkey_id)
            .values(sign_count=sign_count, backup_state=backup_state, last_used_at=at)
        )

    async def flag_passkey(self, passkey_id: str) -> None:
        await self._write(update(t.passkeys).where(t.passkeys.c.id == passkey_id).values(flagged=True))

    async def rename_passkey(self, user_id: str, passkey_id: str, name: str) -> bool:
        p = t.passkeys.c
        return bool(
            await self._write(
                update(t.passkeys).where(p.id == passkey_id, p.user_id == user_id).values(name=name)
            )
        )

    async def delete_passkey(self, user_id: str, passkey_id: str) -> bool:
        p = t.passkeys.c
        return bool(await self._write(delete(t.passkeys).where(p.id == passkey_id, p.user_id == user_id)))

    # TOTP

    async def get_totp(self, user_id: str) -> TotpCredential | None:
        rows = await self._rows(select(t.totp_credentials).where(t.totp_credentials.c.user_id == user_id))
        if not rows:
            return None
        row = rows[0]
        return TotpCredential(
            user_id=row.user_id,
            secret=row.secret,
            confirmed=bool(row.confirmed),
            last_used_step=int(row.last_used_step),
            created_at=row.created_at,
        )

    async def put_totp(self, credential: TotpCredential) -> None:
        values = {
            "secret": credential.secret,
            "confirmed": credential.confirmed,
            "last_used_step": credential.last_used_step,
            "created_at": credential.created_at,
        }
        statement = (
            _insert(self._engine, t.totp_credentials)
            .values(user_id=credential.user_id, **values)
            .on_conflict_do_update(index_elements=["user_id"], set_=values)
        )
        await self._write(statement)

    async def confirm_totp(self, user_id: str) -> None:
        await self._write(
            update(t.totp_credentials).where(t.totp_credentials.c.user_id == user_id).values(confirmed=True)
        )

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        c = t.totp_credentials.c
        statement = update(t.totp_credentials).where(c.user_id == user_id, c.last_used_step < step)
        return bool(await self._write(statement.values(last_used_step=step)))

    async def delete_totp(self, user_id: str) -> bool:
        return bool(
            await self._write(delete(t.totp_credentials).where(t.totp_credentials.c.user_id == user_id))
        )

    # recovery codes

    async def replace_recovery_codes(self, user_id: str, digests: Sequence[str], *, at: float) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(delete(t.recovery_codes).where(t.recovery_codes.c.user_id == user_id))
                await conn.execute(
                    t.recovery_codes.insert(),
                    [{"user_id": user_id, "digest": d, "used_at": None, "created_at": at} for d in digests],
                )

    async def use_recovery_code(self, user_id: str, digest: str, *, at: float) -> bool:
        c = t.recovery_codes.c
        statement = update(t.recovery_codes).where(
            c.user_id == user_id, c.digest == digest, c.used_at.is_(None)
        )
        return bool(await self._write(statement.values(used_at=at)))

    async def count_recovery_codes(self, user_id: str) -> int:
        c = t.recovery_codes.c
        rows = await self._rows(
            select(func.count())
            .select_from(t.recovery_codes)
            .where(c.user_id == user_id, c.used_at.is_(None))
        )
        return int(rows[0][0])

    async def delete_all_factors(self, user_id: str) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                for table in (t.passkeys, t.totp_credentials, t.recovery_codes):
                    await conn.execute(delete(table).where(table.c.user_id == user_id))

    # operator-approved recovery

    async def add_recovery_request(self, request: RecoveryRequest) -> None:
        await self._write(
            t.recovery_requests.insert().values(
                id=request.id,
                user_id=request.user_id,
                requested_by=request.requested_by,
                requested_at=request.requested_at,
                execute_after=request.execute_after,
            )
        )

    async def pending_recovery_requests(self, *, user_id: str | None = None) -> Sequence[RecoveryRequest]:
        c = t.recovery_requests.c
        statement = select(t.recovery_requests).where(c.executed_at.is_(None), c.cancelled_at.is_(None))
        if user_id is not None:
            statement = statement.where(c.user_id == user_id)
        return [_request(row) for row in await self._rows(statement.order_by(c.execute_after))]

    async def finish_recovery_request(self, request_id: str, *, at: float, cancelled: bool) -> bool:
        c = t.recovery_requests.c
        values = {"cancelled_at": at} if cancelled else {"executed_at": at}
        statement = update(t.recovery_requests).where(
            c.id == request_id, c.executed_at.is_(None), c.cancelled_at.is_(None)
        )
        return bool(await self._write(statement.values(**values)))


class SqlEphemeralStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def put(self, key: str, value: str, *, expires_at: float) -> None:
        statement = (
            _insert(self._engine, t.ephemeral)
            .values(key=key, value=value, expires_at=expires_at)
            .on_conflict_do_update(index_elements=["key"], set_={"value": value, "expires_at": expires_at})
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(statement)

    async def get(self, key: str, *, now: float) -> str | None:
        c = t.ephemeral.c
        with translate_errors():
            async with reading(self._engine) as conn:
                value = (await conn.execute(select(c.value).where(c.key == key, c.expires_at > now))).scalar()
        return str(value) if value is not None else None

    async def take(self, key: str, *, now: float) -> str | None:
        """DELETE ... RETURNING: of concurrent takers exactly one gets the row (SQLite and PostgreSQL)."""
        c = t.ephemeral.c
        with translate_errors():
            async with writing(self._engine) as conn:
                value = (
                    await conn.execute(
                        delete(t.ephemeral).where(c.key == key, c.expires_at > now).returning(c.value)
                    )
                ).scalar()
        return str(value) if value is not None else None

    async def add(self, key: str, value: str, *, expires_at: float, now: float) -> bool:
        """An expired value is cleared first; then INSERT ... ON CONFLICT DO NOTHING lets one writer in."""
        c = t.ephemeral.c
        insert = (
            _insert(self._engine, t.ephemeral)
            .values(key=key, value=value, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(delete(t.ephemeral).where(c.key == key, c.expires_at <= now))
                result = await conn.execute(insert)
        return bool(result.rowcount == 1)

    async def delete(self, key: str) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(delete(t.ephemeral).where(t.ephemeral.c.key == key))

    async def purge_expired(self, *, now: float, batch: int = 1000) -> int:
        c = t.ephemeral.c
        expired = select(c.key).where(c.expires_at <= now).limit(batch)
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(delete(t.ephemeral).where(c.key.in_(expired)))
        return int(result.rowcount)
