"""SSO connections and linked upstream identities in SQL (SQLite and PostgreSQL alike).

A connection's protocol settings and policy are one JSON document (`config`); the client secret in it
is already sealed by the domain, so nothing here sees it in clear.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Row, delete, select, update

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import SqlRepo
from threshold.adapters.sql.repos import _insert
from threshold.core.orgs.models import OrgRole
from threshold.core.sso.models import (
    Connection,
    ConnectionType,
    LinkedIdentity,
    OidcConfig,
    Policy,
    SamlConfig,
)


def config_json(connection: Connection) -> str:
    document: dict[str, Any] = {"policy": asdict(connection.policy)}
    if connection.oidc is not None:
        document["oidc"] = asdict(connection.oidc)
    if connection.saml is not None:
        document["saml"] = asdict(connection.saml)
    return json.dumps(document, separators=(",", ":"))


def _policy(data: dict[str, Any]) -> Policy:
    return Policy(
        require_sso=bool(data.get("require_sso", False)),
        break_glass=tuple(data.get("break_glass", ())),
        require_idp_mfa=bool(data.get("require_idp_mfa", False)),
        require_local_mfa=bool(data.get("require_local_mfa", False)),
        default_role=OrgRole(data.get("default_role", OrgRole.MEMBER.value)),
        role_groups={str(k): str(v) for k, v in dict(data.get("role_groups", {})).items()},
    )


def _connection(row: Row[Any]) -> Connection:
    document = json.loads(row.config)
    oidc = document.get("oidc")
    saml = document.get("saml")
    return Connection(
        id=row.id,
        org_id=row.org_id,
        type=ConnectionType(row.type),
        name=row.name,
        created_at=row.created_at,
        oidc=OidcConfig(**{**oidc, "scopes": tuple(oidc["scopes"])}) if oidc else None,
        saml=SamlConfig(**saml) if saml else None,
        policy=_policy(document.get("policy", {})),
    )


def _identity(row: Row[Any]) -> LinkedIdentity:
    return LinkedIdentity(
        connection_id=row.connection_id,
        subject=row.subject,
        user_id=row.user_id,
        email=row.email,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )


class SqlConnectionRepo(SqlRepo):
    async def add(self, connection: Connection) -> None:
        assert connection.org_id is not None, "social connections live in Settings"
        await self._write(
            t.sso_connections.insert().values(
                id=connection.id,
                org_id=connection.org_id,
                type=connection.type.value,
                name=connection.name,
                config=config_json(connection),
                require_sso=connection.policy.require_sso,
                created_at=connection.created_at,
            )
        )

    async def get(self, connection_id: str) -> Connection | None:
        rows = await self._rows(select(t.sso_connections).where(t.sso_connections.c.id == connection_id))
        return _connection(rows[0]) if rows else None

    async def for_org(self, org_id: str) -> Sequence[Connection]:
        c = t.sso_connections.c
        rows = await self._rows(
            select(t.sso_connections).where(c.org_id == org_id).order_by(c.created_at, c.id)
        )
        return [_connection(row) for row in rows]

    async def remove(self, connection_id: str) -> bool:
        removed = await self._write(delete(t.sso_connections).where(t.sso_connections.c.id == connection_id))
        await self._write(delete(t.sso_identities).where(t.sso_identities.c.connection_id == connection_id))
        return removed == 1

    async def link(self, identity: LinkedIdentity) -> LinkedIdentity:
        await self._write(
            _insert(self._engine, t.sso_identities)
            .values(
                connection_id=identity.connection_id,
                subject=identity.subject,
                user_id=identity.user_id,
                email=identity.email,
                created_at=identity.created_at,
                last_seen_at=identity.last_seen_at,
            )
            .on_conflict_do_nothing(index_elements=["connection_id", "subject"])
        )
        stored = await self.linked(identity.connection_id, identity.subject)
        assert stored is not None
        return stored

    async def linked(self, connection_id: str, subject: str) -> LinkedIdentity | None:
        c = t.sso_identities.c
        rows = await self._rows(
            select(t.sso_identities).where(c.connection_id == connection_id, c.subject == subject)
        )
        return _identity(rows[0]) if rows else None

    async def touch_link(self, connection_id: str, subject: str, *, at: float) -> None:
        c = t.sso_identities.c
        await self._write(
            update(t.sso_identities)
            .where(c.connection_id == connection_id, c.subject == subject)
            .values(last_seen_at=at)
        )

    async def links_of(self, user_id: str) -> Sequence[LinkedIdentity]:
        c = t.sso_identities.c
        rows = await self._rows(select(t.sso_identities).where(c.user_id == user_id).order_by(c.created_at))
        return [_identity(row) for row in rows]
