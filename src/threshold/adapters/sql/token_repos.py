"""SQL TokenRepo: emailed one-time tokens, single use through conditional updates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import reading, translate_errors, writing
from threshold.core.models import OneTimeToken, TokenPurpose


def _token(row: Row[Any]) -> OneTimeToken:
    return OneTimeToken(
        digest=row.digest,
        purpose=TokenPurpose(row.purpose),
        user_id=row.user_id,
        email=row.email,
        created_at=row.created_at,
        expires_at=row.expires_at,
        code_digest=row.code_digest,
        binding=row.binding,
        used_at=row.used_at,
        attempts=int(row.attempts),
    )


class SqlTokenRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, token: OneTimeToken) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    t.one_time_tokens.insert().values(
                        digest=token.digest,
                        purpose=token.purpose.value,
                        user_id=token.user_id,
                        email=token.email,
                        code_digest=token.code_digest,
                        binding=token.binding,
                        created_at=token.created_at,
                        expires_at=token.expires_at,
                        attempts=0,
                    )
                )

    def _live(self, purpose: TokenPurpose, now: float) -> Any:
        c = t.one_time_tokens.c
        return (c.purpose == purpose.value) & c.used_at.is_(None) & (c.expires_at > now)

    async def consume(self, digest: str, *, purpose: TokenPurpose, now: float) -> OneTimeToken | None:
        c = t.one_time_tokens.c
        with translate_errors():
            async with writing(self._engine) as conn:
                won = await conn.execute(
                    update(t.one_time_tokens)
                    .where(c.digest == digest, self._live(purpose, now))
                    .values(used_at=now)
                )
                if not won.rowcount:
                    return None
                row = (await conn.execute(select(t.one_time_tokens).where(c.digest == digest))).first()
        return _token(row) if row else None

    async def peek(self, digest: str, *, purpose: TokenPurpose, now: float) -> OneTimeToken | None:
        c = t.one_time_tokens.c
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (
                    await conn.execute(
                        select(t.one_time_tokens).where(c.digest == digest, self._live(purpose, now))
                    )
                ).first()
        return _token(row) if row else None

    async def latest_for_binding(
        self, binding: str, *, purpose: TokenPurpose, now: float
    ) -> OneTimeToken | None:
        c = t.one_time_tokens.c
        statement = (
            select(t.one_time_tokens)
            .where(c.binding == binding, self._live(purpose, now))
            .order_by(c.created_at.desc())
            .limit(1)
        )
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (await conn.execute(statement)).first()
        return _token(row) if row else None

    async def record_failed_code(self, digest: str) -> int:
        c = t.one_time_tokens.c
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.one_time_tokens).where(c.digest == digest).values(attempts=c.attempts + 1)
                )
                attempts = (await conn.execute(select(c.attempts).where(c.digest == digest))).scalar()
        return int(attempts or 0)

    async def invalidate(self, user_id: str, purpose: TokenPurpose, *, now: float) -> int:
        c = t.one_time_tokens.c
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    update(t.one_time_tokens)
                    .where(c.user_id == user_id, c.purpose == purpose.value, c.used_at.is_(None))
                    .values(used_at=now)
                )
        return int(result.rowcount)
