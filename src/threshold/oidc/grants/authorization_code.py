"""The authorization_code grant: a code for tokens (RFC 6749 section 4.1.3, OIDC Core 3.1.3).

The code is single use and bound to its client, its redirect_uri (RFC 6749 section 4.1.3) and its PKCE
challenge (RFC 7636 section 4.6); the session that authorized it must still be live (oidc.live_grant).
A replayed code revokes what it issued (RFC 6749 section 4.1.2), even when the replay races the first
exchange. A code issued for an organization (the `organization` scope) gives a grant for it, with the
organization's claims and the role as it is now, while its user is still a member (oidc.organization).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.models import AuditKind, SessionRecord
from threshold.core.secrets import digest, new_id, new_token
from threshold.oidc.errors import InvalidGrant, InvalidRequest
from threshold.oidc.grants.policy import AccessTokenPolicy
from threshold.oidc.live_grant import GrantCheck
from threshold.oidc.models import (
    AuthorizationCode,
    Client,
    Grant,
    GrantType,
    RefreshToken,
    TokenResponse,
)
from threshold.oidc.organization import Memberships
from threshold.oidc.pkce import check_code_verifier
from threshold.oidc.ports import CodeRepo, MarkStore, RefreshTokenRepo
from threshold.oidc.resource import revoked_mark
from threshold.oidc.tokens import MAX_ACCESS_TOKEN_LIFETIME, TokenMinter
from threshold.settings import OidcSettings

CODE_REPLAY_MARK_LIFETIME = 600  # seconds: far longer than any exchange still in flight when a replay comes


def _replay_mark(code_digest: str) -> str:
    return f"code-replayed:{code_digest}"


class AuthorizationCodeGrant:
    def __init__(
        self,
        *,
        codes: CodeRepo,
        refresh_tokens: RefreshTokenRepo,
        marks: MarkStore,
        minter: TokenMinter,
        grants: GrantCheck,
        policy: AccessTokenPolicy,
        auditor: Auditor,
        clock: Clock,
        settings: OidcSettings,
        memberships: Memberships | None = None,
    ) -> None:
        self._codes = codes
        self._memberships = memberships or Memberships()
        self._refresh = refresh_tokens
        self._marks = marks
        self._minter = minter
        self._grants = grants
        self._policy = policy
        self._audit = auditor
        self._clock = clock
        self._settings = settings

    async def exchange(self, client: Client, form: Mapping[str, str]) -> TokenResponse:
        """RFC 6749 section 4.1.3: an access token, an ID token, and a refresh token when the client
        has that grant type; the grant they rest on is stored first.

        Raises:
            InvalidRequest: no code.
            InvalidGrant: the code is unknown, another client's, used, expired, for another
                redirect_uri, fails PKCE, or its session has ended.
        """
        code_value = form.get("code")
        if not code_value or len(code_value) > 128:
            raise InvalidRequest("code is required.")
        now = self._clock.now()
        code, first_use = await self._codes.consume(digest(code_value), now=now)
        if code is None or code.client_id != client.client_id:
            raise InvalidGrant()
        if not first_use:
            await self._replayed_code(code)
            raise InvalidGrant("The authorization code was already used.")
        if code.expires_at <= now:
            raise InvalidGrant("The authorization code expired.")
        if form.get("redirect_uri") != code.redirect_uri:  # RFC 6749 section 4.1.3
            raise InvalidGrant("redirect_uri does not match the authorization request.")
        check_code_verifier(code_verifier=form.get("code_verifier"), expected_challenge=code.code_challenge)
        live = await self._grants.user_grant(
            client_id=client.client_id, user_id=code.user_id, session_digest=code.session_digest
        )
        if live is None or live.session is None:
            raise InvalidGrant("The session that authorized this code has ended.")
        session = live.session
        scopes = code.scope.split()
        org = (
            await self._memberships.membership(org_id=code.org_id, user_id=code.user_id)
            if code.org_id
            else None
        )  # no longer a member: the tokens are for no organization
        org_claims = org.claims() if org else {}
        grant = Grant(
            id=new_id(),
            client_id=client.client_id,
            user_id=code.user_id,
            session_digest=session.digest,
            created_at=now,
            expires_at=session.absolute_expires_at,
            org_id=org.org_id if org else None,
        )
        refresh: str | None = None
        first: RefreshToken | None = None
        if GrantType.REFRESH_TOKEN in client.grant_types:
            refresh, first = self._new_refresh_token(
                client=client,
                session=session,
                family_id=grant.id,
                scope=code.scope,
                auth_time=code.auth_time,
                acr=code.acr,
                amr=code.amr,
                org_id=grant.org_id,
            )
        await self._refresh.add_grant(grant, first_token=first)
        access = await self._minter.access_token(
            alg=client.signing_alg,
            subject=code.user_id,
            client_id=client.client_id,
            audience=self._policy.audience(form, scopes),
            scope=code.scope,
            lifetime=self._policy.lifetime(client),
            auth_time=code.auth_time,
            acr=code.acr,
            grant_id=grant.id,
            extra=org_claims,
        )
        id_token = await self._minter.id_token(
            alg=client.id_token_alg,
            subject=code.user_id,
            client_id=client.client_id,
            auth_time=code.auth_time,
            acr=code.acr,
            amr=code.amr,
            sid=code.sid,
            nonce=code.nonce,
            access_token=access.token,
            extra=org_claims,
        )
        await self._codes.record_issued(code.digest, access_token_jti=access.jti, refresh_family=grant.id)
        if await self._marks.exists(_replay_mark(code.digest), now=now):
            # A concurrent replay of this code came while these tokens were being minted and found nothing
            # to revoke yet: revoke them here, as a replay just after this exchange would have.
            await self._revoke_issued(access_token_jti=access.jti, refresh_family=grant.id, now=now)
        return TokenResponse(
            access_token=access.token,
            expires_in=access.expires_in,
            scope=code.scope,
            id_token=id_token,
            refresh_token=refresh,
            subject=code.user_id,
        )

    async def _replayed_code(self, code: AuthorizationCode) -> None:
        """RFC 6749 section 4.1.2: a reused code SHOULD revoke the tokens issued from it.

        The replay is flagged before what the code issued is read: a first exchange still in flight (on
        this process or another) records its tokens, then looks for the flag, so either it finds the flag
        and revokes them itself, or they are recorded by the time they are read here.
        """
        now = self._clock.now()
        await self._marks.add(_replay_mark(code.digest), expires_at=now + CODE_REPLAY_MARK_LIFETIME)
        issued = await self._codes.get(code.digest) or code
        await self._revoke_issued(
            access_token_jti=issued.access_token_jti, refresh_family=issued.refresh_family, now=now
        )
        await self._audit.record(
            AuditKind.AUTHORIZATION_CODE_REPLAY, user_id=code.user_id, client=code.client_id
        )

    async def _revoke_issued(
        self, *, access_token_jti: str | None, refresh_family: str | None, now: float
    ) -> None:
        if refresh_family:
            await self._refresh.revoke_family(refresh_family, now=now)
        if access_token_jti:
            await self._marks.add(revoked_mark(access_token_jti), expires_at=now + MAX_ACCESS_TOKEN_LIFETIME)

    def _new_refresh_token(
        self,
        *,
        client: Client,
        session: SessionRecord,
        family_id: str,
        scope: str,
        auth_time: float,
        acr: str,
        amr: Sequence[str],
        org_id: str | None,
    ) -> tuple[str, RefreshToken]:
        """The first refresh token of a family (its value, and the record to store)."""
        token = new_token()
        now = self._clock.now()
        record = RefreshToken(
            digest=digest(token),
            family_id=family_id,
            parent_digest=None,
            client_id=client.client_id,
            user_id=session.user_id,
            session_digest=session.digest,
            sid=session.public_id,
            scope=scope,
            auth_time=auth_time,
            acr=acr,
            amr=tuple(amr),
            created_at=now,
            expires_at=min(now + self._settings.refresh_token_lifetime, session.absolute_expires_at),
            org_id=org_id,
        )
        return token, record
