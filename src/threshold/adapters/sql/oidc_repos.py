"""SQL implementations of the provider's ports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import SqlRepo, reading, translate_errors, writing
from threshold.adapters.sql.repos import _insert
from threshold.adapters.sql.rows import (
    CLAIM_PARENT,
    GRANT,
    REFRESH_TOKEN,
    grant_of,
    grant_values,
    new_refresh_token_values,
    record_of,
    record_values,
)
from threshold.oidc.models import (
    AuthMethod,
    AuthorizationCode,
    Client,
    Consent,
    Grant,
    GrantType,
    KeyState,
    RefreshToken,
    SigningKey,
)


def _client(row: Row[Any]) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        secret_digest=row.secret_digest,
        public=bool(row.public),
        first_party=bool(row.first_party),
        redirect_uris=tuple(json.loads(row.redirect_uris)),
        post_logout_redirect_uris=tuple(json.loads(row.post_logout_redirect_uris)),
        grant_types=tuple(GrantType(g) for g in json.loads(row.grant_types)),
        scopes=tuple(json.loads(row.scopes)),
        token_endpoint_auth_method=AuthMethod(row.token_endpoint_auth_method),
        jwks=json.loads(row.jwks) if row.jwks else None,
        access_token_lifetime=row.access_token_lifetime,
        signing_alg=row.signing_alg,
        created_at=row.created_at,
        id_token_alg=row.id_token_alg,
        logo_uri=row.logo_uri,
        backchannel_logout_uri=row.backchannel_logout_uri,
        backchannel_logout_session_required=bool(row.backchannel_logout_session_required),
        deletion_event_uri=row.deletion_event_uri,
    )


def _client_values(client: Client) -> dict[str, Any]:
    """The row of a client but its primary key (the same for insert and update)."""
    return {
        "name": client.name,
        "secret_digest": client.secret_digest,
        "public": client.public,
        "first_party": client.first_party,
        "redirect_uris": json.dumps(list(client.redirect_uris)),
        "post_logout_redirect_uris": json.dumps(list(client.post_logout_redirect_uris)),
        "grant_types": json.dumps([g.value for g in client.grant_types]),
        "scopes": json.dumps(list(client.scopes)),
        "token_endpoint_auth_method": client.token_endpoint_auth_method.value,
        "jwks": json.dumps(client.jwks) if client.jwks else None,
        "access_token_lifetime": client.access_token_lifetime,
        "signing_alg": client.signing_alg,
        "created_at": client.created_at,
        "id_token_alg": client.id_token_alg,
        "logo_uri": client.logo_uri,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "deletion_event_uri": client.deletion_event_uri,
    }


class SqlClientRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, client: Client) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    t.oauth_clients.insert().values(client_id=client.client_id, **_client_values(client))
                )

    async def update(self, client: Client, *, expected: Client) -> bool:
        unchanged = [
            t.oauth_clients.c[name].is_(None) if value is None else t.oauth_clients.c[name] == value
            for name, value in _client_values(expected).items()
        ]
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    update(t.oauth_clients)
                    .where(t.oauth_clients.c.client_id == client.client_id, *unchanged)
                    .values(**_client_values(client))
                )
        return bool(result.rowcount)

    async def get(self, client_id: str) -> Client | None:
        if "\x00" in client_id:
            return None
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (
                    await conn.execute(
                        select(t.oauth_clients).where(t.oauth_clients.c.client_id == client_id)
                    )
                ).first()
        return _client(row) if row else None

    async def list(self) -> Sequence[Client]:
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (
                    await conn.execute(select(t.oauth_clients).order_by(t.oauth_clients.c.created_at))
                ).all()
        return [_client(row) for row in rows]

    async def delete(self, client_id: str) -> bool:
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    delete(t.oauth_clients).where(t.oauth_clients.c.client_id == client_id)
                )
                for table in (t.oauth_grants, t.refresh_tokens):
                    await conn.execute(
                        update(table)
                        .where(table.c.client_id == client_id, table.c.revoked_at.is_(None))
                        .values(revoked_at=0.0)
                    )
                await conn.execute(delete(t.consents).where(t.consents.c.client_id == client_id))
        return bool(result.rowcount)


def _key(row: Row[Any]) -> SigningKey:
    return SigningKey(
        kid=row.kid,
        alg=row.alg,
        state=KeyState(row.state),
        public_jwk=json.loads(row.public_jwk),
        private_jwk=row.private_jwk,
        created_at=row.created_at,
        activated_at=row.activated_at,
        retired_at=row.retired_at,
        expires_at=row.expires_at,
    )


class SqlSigningKeyRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, key: SigningKey) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    t.signing_keys.insert().values(
                        kid=key.kid,
                        alg=key.alg,
                        state=key.state.value,
                        public_jwk=json.dumps(key.public_jwk),
                        private_jwk=key.private_jwk,
                        created_at=key.created_at,
                        activated_at=key.activated_at,
                        retired_at=key.retired_at,
                        expires_at=key.expires_at,
                    )
                )

    async def list(self) -> Sequence[SigningKey]:
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (
                    await conn.execute(select(t.signing_keys).order_by(t.signing_keys.c.created_at))
                ).all()
        return [_key(row) for row in rows]

    async def transition(
        self,
        kid: str,
        *,
        from_state: KeyState,
        to_state: KeyState,
        at: float,
        expires_at: float | None = None,
    ) -> bool:
        values: dict[str, Any] = {"state": to_state.value}
        if to_state is KeyState.ACTIVE:
            values["activated_at"] = at
        if to_state is KeyState.RETIRED:
            values["retired_at"] = at
            values["expires_at"] = expires_at
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    update(t.signing_keys)
                    .where(t.signing_keys.c.kid == kid, t.signing_keys.c.state == from_state.value)
                    .values(**values)
                )
        return bool(result.rowcount)

    async def delete_expired(self, *, now: float) -> int:
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    delete(t.signing_keys).where(
                        t.signing_keys.c.state == KeyState.RETIRED.value, t.signing_keys.c.expires_at <= now
                    )
                )
        return int(result.rowcount)


class SqlCodeRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, code: AuthorizationCode) -> None:
        values = record_values(code)
        for issued_later in ("used_at", "access_token_jti", "refresh_family"):
            values.pop(issued_later)
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(t.authorization_codes.insert().values(**values))

    async def consume(self, digest: str, *, now: float) -> tuple[AuthorizationCode | None, bool]:
        c = t.authorization_codes.c
        with translate_errors():
            async with writing(self._engine) as conn:
                won = await conn.execute(
                    update(t.authorization_codes)
                    .where(c.digest == digest, c.used_at.is_(None))
                    .values(used_at=now)
                )
                row = (await conn.execute(select(t.authorization_codes).where(c.digest == digest))).first()
        return (record_of(AuthorizationCode, row._mapping) if row else None), bool(won.rowcount)

    async def get(self, digest: str) -> AuthorizationCode | None:
        c = t.authorization_codes.c
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (await conn.execute(select(t.authorization_codes).where(c.digest == digest))).first()
        return record_of(AuthorizationCode, row._mapping) if row else None

    async def record_issued(self, digest: str, *, access_token_jti: str, refresh_family: str | None) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.authorization_codes)
                    .where(t.authorization_codes.c.digest == digest)
                    .values(access_token_jti=access_token_jti, refresh_family=refresh_family)
                )

    async def purge_expired(self, *, now: float, batch: int = 500) -> int:
        c = t.authorization_codes.c
        # Kept a while after expiry so that a late replay is still recognised and revokes its tokens.
        expired = select(c.digest).where(c.expires_at <= now - 3600).limit(batch)
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(delete(t.authorization_codes).where(c.digest.in_(expired)))
        return int(result.rowcount)


class SqlRefreshTokenRepo(SqlRepo):
    """Refresh tokens and their grants: every revocation revokes both, in one transaction."""

    async def add_grant(self, grant: Grant, *, first_token: RefreshToken | None = None) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(t.oauth_grants.insert().values(**grant_values(grant)))
                if first_token is not None:
                    await conn.execute(
                        t.refresh_tokens.insert().values(**new_refresh_token_values(first_token))
                    )

    async def get_grant(self, grant_id: str) -> Grant | None:
        if "\x00" in grant_id:
            return None
        row = await self._statements.first(GRANT, {"grant_id": grant_id})
        return grant_of(row) if row else None

    async def add(self, token: RefreshToken) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(t.refresh_tokens.insert().values(**new_refresh_token_values(token)))

    async def get(self, digest: str) -> RefreshToken | None:
        row = await self._statements.first(REFRESH_TOKEN, {"digest": digest})
        return record_of(RefreshToken, row) if row else None

    async def rotate(
        self, parent_digest: str, successor: RefreshToken, *, now: float, sealed: str | None
    ) -> bool:
        claim = {"claimed_digest": parent_digest, "now": now, "sealed": sealed}
        with translate_errors():
            async with writing(self._engine) as conn:
                marked = await conn.execute(CLAIM_PARENT, claim)
                if not marked.rowcount:
                    return False
                await conn.execute(t.refresh_tokens.insert().values(**new_refresh_token_values(successor)))
        return True

    async def _revoke(self, now: float, *, grants: Any, tokens: Any) -> int:
        """Revoke the grants and the refresh tokens matching; the grants first, always in this order."""
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.oauth_grants)
                    .where(grants, t.oauth_grants.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                result = await conn.execute(
                    update(t.refresh_tokens)
                    .where(tokens, t.refresh_tokens.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
        return int(result.rowcount)

    async def revoke_family(self, family_id: str, *, now: float) -> int:
        g, r = t.oauth_grants.c, t.refresh_tokens.c
        return await self._revoke(now, grants=g.id == family_id, tokens=r.family_id == family_id)

    async def revoke_for_session(self, session_digest: str, *, now: float) -> int:
        g, r = t.oauth_grants.c, t.refresh_tokens.c
        return await self._revoke(
            now, grants=g.session_digest == session_digest, tokens=r.session_digest == session_digest
        )

    async def revoke_for_sessions(self, session_digests: Sequence[str], *, now: float) -> int:
        g, r = t.oauth_grants.c, t.refresh_tokens.c
        digests = list(session_digests)
        return await self._revoke(
            now, grants=g.session_digest.in_(digests), tokens=r.session_digest.in_(digests)
        )

    async def clients_for_sessions(
        self, user_id: str, session_digests: Sequence[str], *, now: float
    ) -> list[tuple[str, str]]:
        g = t.oauth_grants.c
        query = (
            select(g.client_id, g.session_digest)
            .where(g.user_id == user_id, g.session_digest.in_(list(session_digests)), g.expires_at > now)
            .distinct()
        )
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (await conn.execute(query)).all()
        return [(row.client_id, row.session_digest) for row in rows]

    async def revoke_for_user(self, user_id: str, *, now: float, client_id: str | None = None) -> int:
        g, r = t.oauth_grants.c, t.refresh_tokens.c
        grants, tokens = g.user_id == user_id, r.user_id == user_id
        if client_id is not None:
            grants, tokens = grants & (g.client_id == client_id), tokens & (r.client_id == client_id)
        return await self._revoke(now, grants=grants, tokens=tokens)

    async def revoke_for_org(self, user_id: str, org_id: str, *, now: float) -> int:
        g, r = t.oauth_grants.c, t.refresh_tokens.c
        return await self._revoke(
            now,
            grants=(g.user_id == user_id) & (g.org_id == org_id),
            tokens=(r.user_id == user_id) & (r.org_id == org_id),
        )

    async def purge_expired(self, *, now: float, batch: int = 500) -> int:
        c, g = t.refresh_tokens.c, t.oauth_grants.c
        # A family lives on (revoked or used) until its newest member expires: reuse must stay detectable.
        # A grant lives until its session's absolute expiry, which no token issued under it outlives.
        expired = select(c.digest).where(c.expires_at <= now).limit(batch)
        ended = select(g.id).where(g.expires_at <= now).limit(batch)
        with translate_errors():
            async with writing(self._engine) as conn:
                tokens = await conn.execute(delete(t.refresh_tokens).where(c.digest.in_(expired)))
                grants = await conn.execute(delete(t.oauth_grants).where(g.id.in_(ended)))
        return int(tokens.rowcount) + int(grants.rowcount)


class SqlConsentRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, user_id: str, client_id: str) -> Consent | None:
        c = t.consents.c
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (
                    await conn.execute(
                        select(t.consents).where(c.user_id == user_id, c.client_id == client_id)
                    )
                ).first()
        return (
            Consent(row.user_id, row.client_id, frozenset(row.scope.split()), row.granted_at) if row else None
        )

    async def put(self, consent: Consent) -> None:
        scope = " ".join(sorted(consent.scopes))
        statement = (
            _insert(self._engine, t.consents)
            .values(
                user_id=consent.user_id,
                client_id=consent.client_id,
                scope=scope,
                granted_at=consent.granted_at,
            )
            .on_conflict_do_update(
                index_elements=["user_id", "client_id"],
                set_={"scope": scope, "granted_at": consent.granted_at},
            )
        )
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(statement)

    async def delete(self, user_id: str, client_id: str) -> bool:
        c = t.consents.c
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    delete(t.consents).where(c.user_id == user_id, c.client_id == client_id)
                )
        return bool(result.rowcount)

    async def list_for_user(self, user_id: str) -> Sequence[Consent]:
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (
                    await conn.execute(
                        select(t.consents)
                        .where(t.consents.c.user_id == user_id)
                        .order_by(t.consents.c.granted_at)
                    )
                ).all()
        return [Consent(r.user_id, r.client_id, frozenset(r.scope.split()), r.granted_at) for r in rows]


class SqlMarkStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, key: str, *, expires_at: float) -> bool:
        import time

        now = time.time()
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(delete(t.marks).where(t.marks.c.key == key, t.marks.c.expires_at <= now))
                try:
                    async with conn.begin_nested():
                        await conn.execute(t.marks.insert().values(key=key, expires_at=expires_at))
                except IntegrityError:
                    return False
        return True

    async def exists(self, key: str, *, now: float) -> bool:
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (
                    await conn.execute(
                        select(t.marks.c.key).where(t.marks.c.key == key, t.marks.c.expires_at > now)
                    )
                ).first()
        return row is not None

    async def purge_expired(self, *, now: float, batch: int = 1000) -> int:
        expired = select(t.marks.c.key).where(t.marks.c.expires_at <= now).limit(batch)
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(delete(t.marks).where(t.marks.c.key.in_(expired)))
        return int(result.rowcount)
