"""SCIM tokens and resources in SQL (SQLite and PostgreSQL alike). Every read and write of a resource
names its organization: a token of one organization never reaches another's rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import FreshStatistics, reading, translate_errors, writing
from threshold.core.orgs.models import Organization
from threshold.core.scim.resources import Narrowing, ScimNameTaken, ScimRecord
from threshold.core.scim.tokens import ScimToken

MAX_IN = 500
"""At most this many values in one IN list (a filter with more `or` terms is not narrowed)."""


def _token(row: Row[Any]) -> ScimToken:
    return ScimToken(
        id=row.id,
        org_id=row.org_id,
        digest=row.digest,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class SqlScimTokenRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, token: ScimToken) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    t.scim_tokens.insert().values(
                        id=token.id,
                        org_id=token.org_id,
                        digest=token.digest,
                        name=token.name,
                        created_at=token.created_at,
                    )
                )

    async def for_org(self, org_id: str) -> Sequence[ScimToken]:
        statement = (
            select(t.scim_tokens)
            .where(t.scim_tokens.c.org_id == org_id)
            .order_by(t.scim_tokens.c.created_at, t.scim_tokens.c.id)
        )
        with translate_errors():
            async with reading(self._engine) as conn:
                return [_token(r) for r in (await conn.execute(statement)).all()]

    async def by_digest(self, token_digest: str) -> tuple[ScimToken, Organization] | None:
        o = t.organizations
        statement = (
            select(
                t.scim_tokens, o.c.slug, o.c.name.label("org_name"), o.c.created_at.label("org_created_at")
            )
            .join(o, o.c.id == t.scim_tokens.c.org_id)
            .where(t.scim_tokens.c.digest == token_digest)
        )
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (await conn.execute(statement)).first()
        if row is None:
            return None
        org = Organization(id=row.org_id, slug=row.slug, name=row.org_name, created_at=row.org_created_at)
        return _token(row), org

    async def revoke(self, org_id: str, token_id: str, *, at: float) -> bool:
        statement = (
            update(t.scim_tokens)
            .where(
                t.scim_tokens.c.id == token_id,
                t.scim_tokens.c.org_id == org_id,
                t.scim_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=at)
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(statement)
        return bool(result.rowcount)

    async def touch(self, token_id: str, *, at: float) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.scim_tokens).where(t.scim_tokens.c.id == token_id).values(last_used_at=at)
                )


def _record(row: Row[Any]) -> ScimRecord:
    return ScimRecord(
        id=row.id,
        org_id=row.org_id,
        resource_type=row.resource_type,
        name_key=row.name_key,
        document=row.document,
        version=row.version,
        created=row.created,
        last_modified=row.last_modified,
        user_id=row.user_id,
        external_id=row.external_id,
        active=row.active,
    )


def _values(record: ScimRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "org_id": record.org_id,
        "resource_type": record.resource_type,
        "user_id": record.user_id,
        "external_id": record.external_id,
        "name_key": record.name_key,
        "active": record.active,
        "document": record.document,
        "version": record.version,
        "created": record.created,
        "last_modified": record.last_modified,
    }


def find_statement(org_id: str, resource_type: str, narrowing: Narrowing) -> Select[Any] | None:
    """The resources of a type that may match a filter (`narrowing`), oldest first; None when none can."""
    r = t.scim_resources
    conditions = [r.c.org_id == org_id, r.c.resource_type == resource_type]
    for column, values in (
        (r.c.id, narrowing.ids),
        (r.c.name_key, narrowing.name_keys),
        (r.c.external_id, narrowing.external_ids),
    ):
        if values is None:
            continue
        if not values:
            return None
        if len(values) <= MAX_IN:
            conditions.append(column.in_(sorted(values)))
    return select(r).where(*conditions).order_by(r.c.created, r.c.id)


class SqlScimResourceRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._statistics = FreshStatistics(engine, t.scim_resources.name)

    def _of(self, org_id: str, resource_type: str) -> Any:
        r = t.scim_resources
        return and_(r.c.org_id == org_id, r.c.resource_type == resource_type)

    async def _rows(self, statement: Any) -> Sequence[ScimRecord]:
        with translate_errors():
            async with reading(self._engine) as conn:
                return [_record(r) for r in (await conn.execute(statement)).all()]

    async def add(self, record: ScimRecord) -> None:
        with translate_errors():
            try:
                async with writing(self._engine) as conn:
                    await conn.execute(t.scim_resources.insert().values(**_values(record)))
            except IntegrityError as error:
                raise ScimNameTaken() from error
        await self._statistics.added()

    async def get(self, org_id: str, resource_type: str, resource_id: str) -> ScimRecord | None:
        r = t.scim_resources
        rows = await self._rows(select(r).where(self._of(org_id, resource_type), r.c.id == resource_id))
        return rows[0] if rows else None

    async def get_many(self, org_id: str, resource_type: str, ids: Sequence[str]) -> Sequence[ScimRecord]:
        r = t.scim_resources
        found: list[ScimRecord] = []
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), MAX_IN):
            chunk = unique[start : start + MAX_IN]
            found.extend(
                await self._rows(select(r).where(self._of(org_id, resource_type), r.c.id.in_(chunk)))
            )
        return found

    async def find(self, org_id: str, resource_type: str, narrowing: Narrowing) -> Sequence[ScimRecord]:
        statement = find_statement(org_id, resource_type, narrowing)
        return [] if statement is None else await self._rows(statement)

    async def page(
        self, org_id: str, resource_type: str, *, offset: int, limit: int
    ) -> tuple[int, Sequence[ScimRecord]]:
        r = t.scim_resources
        with translate_errors():
            async with reading(self._engine) as conn:
                total = (
                    await conn.execute(
                        select(func.count()).select_from(r).where(self._of(org_id, resource_type))
                    )
                ).scalar_one()
                rows = (
                    await conn.execute(
                        select(r)
                        .where(self._of(org_id, resource_type))
                        .order_by(r.c.created, r.c.id)
                        .offset(offset)
                        .limit(limit)
                    )
                ).all()
        return int(total), [_record(row) for row in rows]

    async def replace(self, record: ScimRecord, *, expected_version: int | None) -> bool:
        r = t.scim_resources
        conditions = [self._of(record.org_id, record.resource_type), r.c.id == record.id]
        if expected_version is not None:
            conditions.append(r.c.version == expected_version)
        values = _values(record)
        for fixed in ("id", "org_id", "resource_type", "created"):
            values.pop(fixed)
        with translate_errors():
            try:
                async with writing(self._engine) as conn:
                    result = await conn.execute(update(r).where(*conditions).values(**values))
            except IntegrityError as error:
                raise ScimNameTaken() from error
        return bool(result.rowcount)

    async def delete(
        self, org_id: str, resource_type: str, resource_id: str, *, expected_version: int | None
    ) -> bool:
        r = t.scim_resources
        conditions = [self._of(org_id, resource_type), r.c.id == resource_id]
        if expected_version is not None:
            conditions.append(r.c.version == expected_version)
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(delete(r).where(*conditions))
        return bool(result.rowcount)
