"""The refresh_token grant (RFC 6749 section 6), rotated on every use (RFC 9700 section 4.14.2).

A refresh token that comes back after it was rotated is theft: its whole family is revoked and its
session ended, unless it is the legitimate client's double submit within `refresh_reuse_grace`, which
gets the same successor again. The session behind the token must still be live (oidc.live_grant), and
for a token issued for an organization its user still a member there: a refresh after the membership
ended is refused and revokes the family. The organization's claims carry the role as it is at the refresh.
"""

from __future__ import annotations

from collections.abc import Mapping

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.crypto import DecryptionFailed, SecretBox
from threshold.core.models import AuditKind
from threshold.core.ports import SessionStore
from threshold.core.revocation import AccessRevoker, Cause, Family, Reach
from threshold.core.secrets import digest, new_token
from threshold.oidc.errors import InvalidGrant, InvalidRequest, InvalidScope
from threshold.oidc.grants.policy import AccessTokenPolicy
from threshold.oidc.live_grant import GrantCheck, LiveGrant
from threshold.oidc.models import Client, RefreshToken, TokenResponse
from threshold.oidc.organization import ORGANIZATION_SCOPE
from threshold.oidc.ports import RefreshTokenRepo
from threshold.oidc.tokens import TokenMinter
from threshold.settings import OidcSettings

SUCCESSOR_PURPOSE = "refresh-successor"


def narrowed_scope(granted: str, requested: str | None) -> str:
    """RFC 6749 section 6: a refresh may ask for less, never more.

    Raises:
        InvalidScope: a scope that was not granted.
    """
    if not requested:
        return granted
    allowed = set(granted.split())
    wanted = list(dict.fromkeys(requested.split()))
    if not set(wanted) <= allowed:
        raise InvalidScope("A refresh cannot widen the scope.")
    return " ".join(wanted)


class RefreshTokenGrant:
    def __init__(
        self,
        *,
        refresh_tokens: RefreshTokenRepo,
        revoker: AccessRevoker,
        sessions: SessionStore,
        minter: TokenMinter,
        grants: GrantCheck,
        policy: AccessTokenPolicy,
        auditor: Auditor,
        clock: Clock,
        box: SecretBox,
        settings: OidcSettings,
    ) -> None:
        self._refresh = refresh_tokens
        self._revoker = revoker
        self._sessions = sessions
        self._minter = minter
        self._grants = grants
        self._policy = policy
        self._audit = auditor
        self._clock = clock
        self._box = box
        self._settings = settings

    async def exchange(self, client: Client, form: Mapping[str, str]) -> TokenResponse:
        """Rotate on every use (OAuth 2.0 Security BCP, RFC 9700 section 4.14.2); reuse revokes the family.

        Raises:
            InvalidRequest: no refresh token.
            InvalidGrant: the token is unknown, another client's, revoked, expired, reused, its
                session has ended, or (a token for an organization) its user is no longer a member.
            InvalidScope: a wider scope than granted.
        """
        value = form.get("refresh_token")
        if not value or len(value) > 128:
            raise InvalidRequest("refresh_token is required.")
        now = self._clock.now()
        token = await self._refresh.get(digest(value))
        if token is None or token.client_id != client.client_id:
            raise InvalidGrant()
        if token.revoked_at is not None:
            raise InvalidGrant("The refresh token was revoked.")
        if token.used_at is not None:
            return await self._reused(client, token, form)
        if token.expires_at <= now:
            raise InvalidGrant("The refresh token expired.")
        scopes = narrowed_scope(token.scope, form.get("scope"))
        live = await self._grants.user_grant(
            client_id=client.client_id,
            user_id=token.user_id,
            session_digest=token.session_digest,
            org_id=token.org_id,
        )
        if live is None or live.session is None:
            await self._refresh.revoke_family(token.family_id, now=now)
            raise InvalidGrant("The session or membership behind this refresh token has ended.")
        session = live.session
        successor = new_token()
        sealed = (
            self._box.seal(successor.encode(), purpose=SUCCESSOR_PURPOSE)
            if self._settings.refresh_reuse_grace
            else None
        )
        # The parent is marked used and its successor stored in one transaction: a concurrent double
        # submit within the grace finds both or neither, never a used parent without its successor.
        successor_record = RefreshToken(
            digest=digest(successor),
            family_id=token.family_id,
            parent_digest=token.digest,
            client_id=client.client_id,
            user_id=token.user_id,
            session_digest=token.session_digest,
            sid=token.sid,
            scope=token.scope,
            auth_time=token.auth_time,
            acr=token.acr,
            amr=token.amr,
            created_at=now,
            expires_at=min(now + self._settings.refresh_token_lifetime, session.absolute_expires_at),
            org_id=token.org_id,
        )
        if not await self._refresh.rotate(token.digest, successor_record, now=now, sealed=sealed):
            latest = await self._refresh.get(token.digest)
            return await self._reused(client, latest or token, form)
        return await self._refreshed(client, token, scopes, successor, form, live)

    async def _refreshed(
        self,
        client: Client,
        token: RefreshToken,
        scopes: str,
        successor: str,
        form: Mapping[str, str],
        live: LiveGrant,
    ) -> TokenResponse:
        """RFC 6749 section 5.1 with OIDC Core 12.2: the new access token, an ID token for openid, and
        the successor refresh token; the organization's claims with the role as it is now."""
        split = scopes.split()
        org_claims = live.org.claims() if live.org and ORGANIZATION_SCOPE in split else {}
        access = await self._minter.access_token(
            alg=client.signing_alg,
            subject=token.user_id,
            client_id=client.client_id,
            audience=self._policy.audience(form, split),
            scope=scopes,
            lifetime=self._policy.lifetime(client),
            auth_time=token.auth_time,
            acr=token.acr,
            grant_id=token.family_id,
            extra=org_claims,
        )
        id_token = None
        if "openid" in split:
            id_token = await self._minter.id_token(
                alg=client.id_token_alg,
                subject=token.user_id,
                client_id=client.client_id,
                auth_time=token.auth_time,
                acr=token.acr,
                amr=token.amr,
                sid=token.sid,
                nonce=None,
                access_token=access.token,
                extra=org_claims,
            )
        return TokenResponse(
            access_token=access.token,
            expires_in=access.expires_in,
            scope=scopes,
            id_token=id_token,
            refresh_token=successor,
            subject=token.user_id,
        )

    async def _reused(self, client: Client, token: RefreshToken, form: Mapping[str, str]) -> TokenResponse:
        """A rotated token came back: theft unless it is the legitimate client's double submit in grace."""
        now = self._clock.now()
        grace = self._settings.refresh_reuse_grace
        if grace and token.used_at is not None and now - token.used_at <= grace and token.successor:
            try:
                successor = self._box.open(token.successor, purpose=SUCCESSOR_PURPOSE).decode()
            except DecryptionFailed:
                successor = ""
            current = await self._refresh.get(digest(successor)) if successor else None
            if current is not None and current.revoked_at is None and current.used_at is None:
                live = await self._grants.user_grant(
                    client_id=client.client_id,
                    user_id=token.user_id,
                    session_digest=token.session_digest,
                    org_id=token.org_id,
                )
                if live is None:  # the double submit of a grant that has ended since: no theft, no tokens
                    await self._refresh.revoke_family(token.family_id, now=now)
                    raise InvalidGrant("The grant behind this refresh token has ended.")
                return await self._refreshed(client, token, token.scope, successor, form, live)
        # Theft: the family, its grant and the session it was issued under end, and every application
        # that held that session hears of it (core.revocation).
        session = await self._sessions.get(token.session_digest)
        family = Family(
            family_id=token.family_id, user_id=token.user_id, client_id=token.client_id, sid=token.sid
        )
        ended = await self._revoker.end_access(
            Reach.of_family(
                family, session=session if session and session.user_id == token.user_id else None
            ),
            cause=Cause.REFRESH_TOKEN_REUSE,
            client=client.client_id,
        )
        await self._audit.record(
            AuditKind.REFRESH_TOKEN_REUSE,
            user_id=token.user_id,
            client=client.client_id,
            family=token.family_id,
            tokens_revoked=str(ended.refresh_tokens),
            session_ended=str(bool(ended.sessions)).lower(),
        )
        raise InvalidGrant("The refresh token was already used; the grant was revoked.")
