"""Organizations, members and domains in SQL (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import Columns, SqlRepo, translate_errors, writing
from threshold.adapters.sql.repos import _insert
from threshold.core.orgs.errors import DomainTaken, SlugTaken
from threshold.core.orgs.models import Invitation, Membership, Organization, OrgDomain, OrgRole


def _org(row: Row[Any]) -> Organization:
    return Organization(id=row.id, slug=row.slug, name=row.name, created_at=row.created_at)


def _member(row: Columns) -> Membership:
    return Membership(
        org_id=row["org_id"], user_id=row["user_id"], role=OrgRole(row["role"]), created_at=row["created_at"]
    )


def _domain(row: Columns) -> OrgDomain:
    return OrgDomain(
        domain=row["domain"],
        org_id=row["org_id"],
        txt_value=row["txt_value"],
        created_at=row["created_at"],
        verified_at=row["verified_at"],
        trusted=bool(row["trusted"]),
    )


# Read at every password sign-in (home-realm discovery, the SSO gate, the session's organization): built
# once, as the statements in repos.py are.
_DOMAIN_CLAIM = select(t.org_domains).where(t.org_domains.c.domain == bindparam("domain"))
_MEMBERSHIPS_OF = (
    select(t.org_members)
    .where(t.org_members.c.user_id == bindparam("user_id"))
    .order_by(t.org_members.c.created_at)
)


class SqlOrgRepo(SqlRepo):
    async def add(self, org: Organization) -> None:
        with translate_errors():
            try:
                async with writing(self._engine) as conn:
                    await conn.execute(
                        t.organizations.insert().values(
                            id=org.id, slug=org.slug, name=org.name, created_at=org.created_at
                        )
                    )
            except IntegrityError as error:
                raise SlugTaken() from error

    async def get(self, org_id: str) -> Organization | None:
        rows = await self._rows(select(t.organizations).where(t.organizations.c.id == org_id))
        return _org(rows[0]) if rows else None

    async def get_by_slug(self, slug: str) -> Organization | None:
        rows = await self._rows(select(t.organizations).where(t.organizations.c.slug == slug))
        return _org(rows[0]) if rows else None

    async def list(self) -> Sequence[Organization]:
        rows = await self._rows(
            select(t.organizations).order_by(t.organizations.c.created_at, t.organizations.c.id)
        )
        return [_org(r) for r in rows]

    async def put_member(self, membership: Membership) -> None:
        statement = _insert(self._engine, t.org_members).values(
            org_id=membership.org_id,
            user_id=membership.user_id,
            role=membership.role.value,
            created_at=membership.created_at,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["org_id", "user_id"], set_={"role": membership.role.value}
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(statement)

    async def remove_member(self, org_id: str, user_id: str) -> bool:
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    delete(t.org_members).where(
                        t.org_members.c.org_id == org_id, t.org_members.c.user_id == user_id
                    )
                )
        return bool(result.rowcount)

    async def members(self, org_id: str) -> Sequence[Membership]:
        rows = await self._rows(
            select(t.org_members).where(t.org_members.c.org_id == org_id).order_by(t.org_members.c.created_at)
        )
        return [_member(r._mapping) for r in rows]

    async def memberships_of(self, user_id: str) -> Sequence[Membership]:
        rows = await self._statements.all(_MEMBERSHIPS_OF, {"user_id": user_id})
        return [_member(r) for r in rows]

    async def add_domain(self, domain: OrgDomain) -> OrgDomain:
        statement = (
            _insert(self._engine, t.org_domains)
            .values(
                domain=domain.domain,
                org_id=domain.org_id,
                txt_value=domain.txt_value,
                created_at=domain.created_at,
                verified_at=domain.verified_at,
                trusted=domain.trusted,
            )
            .on_conflict_do_nothing(index_elements=["domain"])
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(statement)
                row = (
                    await conn.execute(select(t.org_domains).where(t.org_domains.c.domain == domain.domain))
                ).one()
        stored = _domain(row._mapping)
        if stored.org_id != domain.org_id:
            raise DomainTaken()
        return stored

    async def get_domain(self, domain: str) -> OrgDomain | None:
        row = await self._statements.first(_DOMAIN_CLAIM, {"domain": domain})
        return _domain(row) if row else None

    async def domains(self, org_id: str) -> Sequence[OrgDomain]:
        rows = await self._rows(
            select(t.org_domains).where(t.org_domains.c.org_id == org_id).order_by(t.org_domains.c.domain)
        )
        return [_domain(r._mapping) for r in rows]

    async def mark_verified(self, domain: str, *, at: float, trusted: bool) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.org_domains)
                    .where(t.org_domains.c.domain == domain)
                    .values(verified_at=at, trusted=trusted)
                )

    async def add_invitation(self, invitation: Invitation) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    t.org_invitations.insert().values(
                        id=invitation.id,
                        org_id=invitation.org_id,
                        email_normalized=invitation.email_normalized,
                        role=invitation.role.value,
                        digest=invitation.digest,
                        invited_by=invitation.invited_by,
                        created_at=invitation.created_at,
                        expires_at=invitation.expires_at,
                    )
                )

    async def invitation_by_digest(self, digest: str) -> Invitation | None:
        rows = await self._rows(select(t.org_invitations).where(t.org_invitations.c.digest == digest))
        if not rows:
            return None
        row = rows[0]
        return Invitation(
            id=row.id,
            org_id=row.org_id,
            email_normalized=row.email_normalized,
            role=OrgRole(row.role),
            digest=row.digest,
            invited_by=row.invited_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            accepted_at=row.accepted_at,
        )

    async def accept_invitation(self, invitation_id: str, *, at: float) -> bool:
        statement = (
            update(t.org_invitations)
            .where(
                t.org_invitations.c.id == invitation_id,
                t.org_invitations.c.accepted_at.is_(None),
                t.org_invitations.c.expires_at > at,
            )
            .values(accepted_at=at)
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(statement)
        return bool(result.rowcount)
