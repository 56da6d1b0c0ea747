"""The OpenID Connect provider: authorization, token grants, userinfo, revocation, introspection, logout.

Flows take plain values (parameters, the signed-in session), never a request object.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import Any
from urllib.parse import urlencode, urlsplit

from joserfc import jws, jwt
from joserfc.errors import JoseError

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.crypto import DecryptionFailed, SecretBox
from threshold.core.errors import Conflict
from threshold.core.models import AuditKind, RequestContext, SessionRecord, User
from threshold.core.ports import SessionStore, UserRepo
from threshold.core.secrets import digest, new_id, new_token
from threshold.oidc.authorize import (
    AuthorizationRequest,
    RedirectableError,
    check_client,
    check_redirect_uri,
    parse_authorization_request,
)
from threshold.oidc.authorize_decision import (
    STARTED_PARAM,
    AskConsent,
    EnrollFirst,
    ErrorToClient,
    IssueCode,
    SignInFirst,
    decide_authorization,
    open_started,
    seal_started,
)
from threshold.oidc.client_auth import ClientCredentials, authenticate_client
from threshold.oidc.errors import (
    AccessDenied,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from threshold.oidc.keys import KeyRing
from threshold.oidc.live_grant import GrantCheck, LiveGrant, SessionLookup
from threshold.oidc.models import (
    ACCESS_TOKEN_DEFAULT_ALG,
    ID_TOKEN_DEFAULT_ALG,
    NOT_APP_SCHEMES,
    SECRET_METHODS,
    SIGNING_ALGORITHMS,
    AuthMethod,
    AuthorizationCode,
    Client,
    Consent,
    Grant,
    GrantType,
    RefreshToken,
    TokenResponse,
)
from threshold.oidc.pkce import check_code_verifier
from threshold.oidc.ports import ClientRepo, CodeRepo, ConsentRepo, MarkStore, RefreshTokenRepo
from threshold.oidc.tokens import MAX_ACCESS_TOKEN_LIFETIME, TokenMinter
from threshold.settings import OidcSettings

CODE_LIFETIME = 60  # seconds: single use, short-lived (RFC 6749 section 4.1.2 recommends at most 10 minutes)
ADMIN_SCOPE = "threshold:admin"
SUCCESSOR_PURPOSE = "refresh-successor"
CODE_REPLAY_MARK_LIFETIME = 600  # seconds: far longer than any exchange still in flight when a replay comes


def _replay_mark(code_digest: str) -> str:
    return f"code-replayed:{code_digest}"


@dataclass(frozen=True, slots=True)
class VerifiedAccessToken:
    """An access token we issued, with a valid signature, unexpired, not revoked, and its grant live."""

    claims: dict[str, Any]
    grant: LiveGrant | None = None
    """What the token rests on, as checked just now (see oidc.live_grant)."""

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.claims.get("scope", "")).split())


@dataclass(frozen=True, slots=True)
class NeedsLogin:
    """Send the browser through the hosted login, then back to the authorization endpoint."""

    force: bool
    started: str
    """The request's sealed start (when a sign-in was first asked of it), to carry back as
    authorize_decision.STARTED_PARAM: a sign-in since then meets prompt=login and max_age."""


@dataclass(frozen=True, slots=True)
class NeedsEnrollment:
    """The user must enrol a second factor before any application gets a code."""


@dataclass(frozen=True, slots=True)
class NeedsConsent:
    request: AuthorizationRequest
    started: str | None
    """The request's sealed start if it came with one, for the consent form to carry on."""


@dataclass(frozen=True, slots=True)
class RedirectTo:
    url: str


AuthorizeOutcome = NeedsLogin | NeedsEnrollment | NeedsConsent | RedirectTo


@dataclass(frozen=True, slots=True)
class IssuedClient:
    client: Client
    secret: str | None


def add_query(url: str, params: Mapping[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


class Provider:
    def __init__(
        self,
        *,
        issuer: str,
        settings: OidcSettings,
        clients: ClientRepo,
        keys: KeyRing,
        codes: CodeRepo,
        refresh_tokens: RefreshTokenRepo,
        consents: ConsentRepo,
        marks: MarkStore,
        sessions: SessionStore,
        users: UserRepo,
        auditor: Auditor,
        clock: Clock,
        box: SecretBox,
        session_lookup: SessionLookup | None = None,
    ) -> None:
        self.issuer = issuer
        self._settings = settings
        self._clients = clients
        self.keys = keys
        self._minter = TokenMinter(keys, clock, issuer=issuer)
        self._codes = codes
        self._refresh = refresh_tokens
        self._consents = consents
        self._marks = marks
        self._sessions = sessions
        self._users = users
        self._audit = auditor
        self._clock = clock
        self._box = box
        self._grants = GrantCheck(
            clients=clients, grants=refresh_tokens, sessions=session_lookup or self._stored_session
        )

    # --- endpoints' own identities ---------------------------------------------------------------

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth2/token"

    def error_redirect(self, error: RedirectableError) -> str:
        return add_query(
            error.redirect_uri,
            {
                "error": error.error.code,
                "error_description": error.error.detail,
                "state": error.state,
                "iss": self.issuer,
            },
        )

    # --- authorization endpoint ------------------------------------------------------------------

    async def parse_authorization(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """Validate an authorization request (see threshold.oidc.authorize), with when it started when
        the provider's own sign-in or consent hop sealed that into it (see authorize_decision)."""
        request = await parse_authorization_request(params, self._clients)
        started_at = open_started(self._box, request, params.get(STARTED_PARAM), now=self._clock.now())
        return replace(request, started_at=started_at)

    async def authorization_client(self, params: Mapping[str, str]) -> tuple[Client, str]:
        """The client of an authorization request and its registered redirect URI (the two checks
        that come before any error may be redirected, RFC 6749 section 4.1.2.1).

        Raises:
            OAuthError: an unknown client or a redirect URI not registered for it.
        """
        client = await check_client(params, self._clients)
        return client, check_redirect_uri(client, params.get("redirect_uri"))

    async def authorize(
        self,
        request: AuthorizationRequest,
        *,
        session: SessionRecord | None,
        user: User | None,
        enrollment_owed: bool,
    ) -> AuthorizeOutcome:
        """What an authorization request needs next, or its code when it needs nothing more (see
        threshold.oidc.authorize_decision).

        Args:
            enrollment_owed: the user must enrol a second factor first (core.mfa.Factors.needs_enrollment).
        """
        return await self._decide(
            request, session=session, user=user, enrollment_owed=enrollment_owed, consenting=False
        )

    async def grant_consent(
        self,
        request: AuthorizationRequest,
        *,
        session: SessionRecord,
        user: User,
        enrollment_owed: bool,
        context: RequestContext,
    ) -> AuthorizeOutcome:
        """The consent form's allow: the whole authorize decision again, with the consent given now.

        A submitted form proves none of the other rules (live session, no second factor owed, max_age,
        prompt=login, first-party): the consent is remembered and the code issued only when they hold.
        """
        return await self._decide(
            request,
            session=session,
            user=user,
            enrollment_owed=enrollment_owed,
            consenting=True,
            context=context,
        )

    async def _decide(
        self,
        request: AuthorizationRequest,
        *,
        session: SessionRecord | None,
        user: User | None,
        enrollment_owed: bool,
        consenting: bool,
        context: RequestContext | None = None,
    ) -> AuthorizeOutcome:
        now = self._clock.now()
        consent = await self._consents.get(user.id, request.client.client_id) if user is not None else None
        decided = decide_authorization(
            request,
            session=session,
            user=user,
            enrollment_owed=enrollment_owed,
            consent=consent,
            consenting=consenting,
            now=now,
        )
        if isinstance(decided, ErrorToClient):
            return RedirectTo(
                self.error_redirect(
                    RedirectableError(decided.error, redirect_uri=request.redirect_uri, state=request.state)
                )
            )
        if isinstance(decided, EnrollFirst):
            return NeedsEnrollment()
        started_at = request.started_at
        if isinstance(decided, AskConsent):
            kept = None if started_at is None else seal_started(self._box, request, started_at=started_at)
            return NeedsConsent(request, kept)
        if isinstance(decided, IssueCode) and session is not None and user is not None:
            if decided.record_consent:
                await self._remember_consent(request, user=user, previous=consent, context=context)
            return RedirectTo(await self._issue_code(request, session=session))
        # A sign-in first (IssueCode never comes without a session): one asked for now answers this
        # request from now on, one asked for earlier from then.
        force = isinstance(decided, SignInFirst) and decided.force
        started_at = now if started_at is None else started_at
        return NeedsLogin(force, seal_started(self._box, request, started_at=started_at))

    async def _remember_consent(
        self,
        request: AuthorizationRequest,
        *,
        user: User,
        previous: Consent | None,
        context: RequestContext | None,
    ) -> None:
        scopes = frozenset(request.scopes) | (previous.scopes if previous else frozenset())
        await self._consents.put(Consent(user.id, request.client.client_id, scopes, self._clock.now()))
        await self._audit.record(
            AuditKind.CONSENT_GRANTED,
            user_id=user.id,
            context=context,
            client=request.client.client_id,
            scope=" ".join(sorted(scopes)),
        )

    def deny(self, request: AuthorizationRequest) -> str:
        return self.error_redirect(
            RedirectableError(AccessDenied(), redirect_uri=request.redirect_uri, state=request.state)
        )

    async def _issue_code(self, request: AuthorizationRequest, *, session: SessionRecord) -> str:
        """Only through _decide: a code is issued when the authorize decision says so."""
        code = new_token()
        now = self._clock.now()
        await self._codes.add(
            AuthorizationCode(
                digest=digest(code),
                client_id=request.client.client_id,
                user_id=session.user_id,
                session_digest=session.digest,
                sid=session.public_id,
                redirect_uri=request.redirect_uri,
                scope=request.scope,
                nonce=request.nonce,
                code_challenge=request.code_challenge,
                auth_time=session.auth_time,
                acr=session.aal.value,
                amr=tuple(session.amr),
                created_at=now,
                expires_at=now + CODE_LIFETIME,
            )
        )
        return add_query(request.redirect_uri, {"code": code, "state": request.state, "iss": self.issuer})

    # --- token endpoint --------------------------------------------------------------------------

    async def authenticate(self, credentials: ClientCredentials) -> Client:
        return await authenticate_client(
            credentials,
            clients=self._clients,
            marks=self._marks,
            clock=self._clock,
            expected_audience=self.issuer,
            legacy_audience=self.token_endpoint,
        )

    async def token(self, form: Mapping[str, str], credentials: ClientCredentials) -> TokenResponse:
        """RFC 6749 section 3.2: dispatch on grant_type after authenticating the client."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required.")
        if grant_type not in {g.value for g in GrantType}:
            raise UnsupportedGrantType()
        client = await self.authenticate(credentials)
        if GrantType(grant_type) not in client.grant_types:
            raise UnauthorizedClient()
        if grant_type == GrantType.AUTHORIZATION_CODE:
            return await self._authorization_code_grant(client, form)
        if grant_type == GrantType.REFRESH_TOKEN:
            return await self._refresh_token_grant(client, form)
        return await self._client_credentials_grant(client, form)

    def _audience(self, client: Client, form: Mapping[str, str], scopes: Sequence[str]) -> list[str]:
        """RFC 8707 `resource`, restricted to the configured resource indicators."""
        resource = form.get("resource")
        default = self._settings.default_audience or self.issuer
        if resource:
            if resource not in self._settings.audiences:
                error = InvalidRequest("Unknown resource.")
                error.code = "invalid_target"
                raise error
            audience = [resource]
        else:
            audience = [default]
        if "openid" in scopes and self.issuer not in audience:
            audience.append(self.issuer)  # so the same token reaches /oauth2/userinfo
        return audience

    def _lifetime(self, client: Client) -> int:
        return min(
            client.access_token_lifetime or self._settings.access_token_lifetime, MAX_ACCESS_TOKEN_LIFETIME
        )

    async def _stored_session(self, session_digest: str) -> tuple[SessionRecord, User] | None:
        """The live session and its enabled user read from the stores (without a session cache)."""
        record = await self._sessions.get(session_digest)
        if record is None or record.expires_at <= self._clock.now():
            return None
        user = await self._users.get(record.user_id)
        return (record, user) if user is not None and not user.disabled else None

    async def _authorization_code_grant(self, client: Client, form: Mapping[str, str]) -> TokenResponse:
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
        grant = Grant(
            id=new_id(),
            client_id=client.client_id,
            user_id=code.user_id,
            session_digest=session.digest,
            created_at=now,
            expires_at=session.absolute_expires_at,
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
            )
        await self._refresh.add_grant(grant, first_token=first)
        access = await self._minter.access_token(
            alg=client.signing_alg,
            subject=code.user_id,
            client_id=client.client_id,
            audience=self._audience(client, form, scopes),
            scope=code.scope,
            lifetime=self._lifetime(client),
            auth_time=code.auth_time,
            acr=code.acr,
            grant_id=grant.id,
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
            await self._marks.add(
                f"revoked-at:{access_token_jti}", expires_at=now + MAX_ACCESS_TOKEN_LIFETIME
            )

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
        )
        return token, record

    async def _refresh_token_grant(self, client: Client, form: Mapping[str, str]) -> TokenResponse:
        """Rotate on every use (OAuth 2.0 Security BCP, RFC 9700 section 4.14.2); reuse revokes the family."""
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
        scopes = self._narrowed_scope(token.scope, form.get("scope"))
        live = await self._grants.user_grant(
            client_id=client.client_id, user_id=token.user_id, session_digest=token.session_digest
        )
        if live is None or live.session is None:
            await self._refresh.revoke_family(token.family_id, now=now)
            raise InvalidGrant("The session behind this refresh token has ended.")
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
        )
        if not await self._refresh.rotate(token.digest, successor_record, now=now, sealed=sealed):
            latest = await self._refresh.get(token.digest)
            return await self._reused(client, latest or token, form)
        return await self._refreshed(client, token, scopes, successor, form)

    async def _refreshed(
        self, client: Client, token: RefreshToken, scopes: str, successor: str, form: Mapping[str, str]
    ) -> TokenResponse:
        split = scopes.split()
        access = await self._minter.access_token(
            alg=client.signing_alg,
            subject=token.user_id,
            client_id=client.client_id,
            audience=self._audience(client, form, split),
            scope=scopes,
            lifetime=self._lifetime(client),
            auth_time=token.auth_time,
            acr=token.acr,
            grant_id=token.family_id,
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
            )
        return TokenResponse(
            access_token=access.token,
            expires_in=access.expires_in,
            scope=scopes,
            id_token=id_token,
            refresh_token=successor,
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
                    client_id=client.client_id, user_id=token.user_id, session_digest=token.session_digest
                )
                if live is None:  # the double submit of a grant that has ended since: no theft, no tokens
                    await self._refresh.revoke_family(token.family_id, now=now)
                    raise InvalidGrant("The grant behind this refresh token has ended.")
                return await self._refreshed(client, token, token.scope, successor, form)
        revoked = await self._refresh.revoke_family(token.family_id, now=now)
        ended = await self._sessions.delete(token.session_digest)
        await self._audit.record(
            AuditKind.REFRESH_TOKEN_REUSE,
            user_id=token.user_id,
            client=client.client_id,
            family=token.family_id,
            tokens_revoked=str(revoked),
            session_ended=str(ended).lower(),
        )
        raise InvalidGrant("The refresh token was already used; the grant was revoked.")

    @staticmethod
    def _narrowed_scope(granted: str, requested: str | None) -> str:
        """RFC 6749 section 6: a refresh may ask for less, never more."""
        if not requested:
            return granted
        allowed = set(granted.split())
        wanted = list(dict.fromkeys(requested.split()))
        if not set(wanted) <= allowed:
            raise InvalidScope("A refresh cannot widen the scope.")
        return " ".join(wanted)

    async def _client_credentials_grant(self, client: Client, form: Mapping[str, str]) -> TokenResponse:
        """RFC 6749 section 4.4: confidential clients only, no user, no refresh token."""
        if client.public:
            raise UnauthorizedClient()
        requested = form.get("scope")
        allowed = [s for s in client.scopes if s not in ("openid", "offline_access", "email", "profile")]
        scopes = list(dict.fromkeys(requested.split())) if requested else allowed
        if not set(scopes) <= set(allowed):
            raise InvalidScope()
        scope = " ".join(scopes)
        if await self._grants.client_grant(client.client_id) is None:  # deleted since it authenticated
            raise InvalidClient()
        access = await self._minter.access_token(
            alg=client.signing_alg,
            subject=client.client_id,
            client_id=client.client_id,
            audience=self._audience(client, form, scopes),
            scope=scope,
            lifetime=self._lifetime(client),
        )
        return TokenResponse(access_token=access.token, expires_in=access.expires_in, scope=scope)

    # --- resource side: our own access tokens ----------------------------------------------------

    def _issued_audiences(self) -> frozenset[str]:
        """Every audience this provider issues access tokens for (see _audience)."""
        configured = [self._settings.default_audience] if self._settings.default_audience else []
        return frozenset([self.issuer, *configured, *self._settings.audiences])

    async def verify_access_token(
        self, token: str, *, expected_audiences: Collection[str] | None = None
    ) -> VerifiedAccessToken:
        """Our signature, typ at+jwt, our issuer, an expected audience (by default the issuer itself:
        userinfo, the admin API), unexpired, not revoked, and its grant live now (oidc.live_grant).

        Raises:
            InvalidToken: any of it does not hold.
        """
        if not token or len(token) > 8192:
            raise InvalidToken()
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise InvalidToken() from exc
        alg, kid = header.get("alg"), header.get("kid")
        if (
            alg not in SIGNING_ALGORITHMS
            or not isinstance(kid, str)
            or str(header.get("typ", "")).lower()
            not in (
                "at+jwt",
                "application/at+jwt",
            )
        ):
            raise InvalidToken()
        key = await self.keys.verification_key(kid)
        if key is None:
            raise InvalidToken()
        try:
            claims = dict(jwt.decode(token, key, algorithms=[alg]).claims)
        except (JoseError, ValueError) as exc:
            raise InvalidToken() from exc
        now = self._clock.now()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        expected = {self.issuer} if expected_audiences is None else set(expected_audiences)
        exp = claims.get("exp")
        if (
            claims.get("iss") != self.issuer
            or not any(isinstance(a, str) and a in expected for a in audiences)
            or not isinstance(exp, int | float)
            or exp <= now - 5
            or not isinstance(claims.get("jti"), str)
        ):
            raise InvalidToken()
        if await self._marks.exists(f"revoked-at:{claims['jti']}", now=now):
            raise InvalidToken()
        grant = await self._grants.access_token_grant(claims)
        if grant is None:
            raise InvalidToken()
        return VerifiedAccessToken(claims, grant)

    async def userinfo(self, token: str) -> dict[str, Any]:
        """OIDC Core 5.3: claims about the user, for a token with the openid scope and a live grant."""
        verified = await self.verify_access_token(token)
        if "openid" not in verified.scopes:
            raise InvalidToken("The access token lacks the openid scope.")
        user = verified.grant.user if verified.grant else None
        if user is None or user.disabled:
            raise InvalidToken()
        claims: dict[str, Any] = {"sub": user.id}
        if "email" in verified.scopes:
            claims["email"] = user.email
            claims["email_verified"] = user.email_verified
        return claims

    async def revoke(self, form: Mapping[str, str], credentials: ClientCredentials) -> None:
        """RFC 7009: revoke a refresh token (its whole family) or an access token; unknown tokens are fine."""
        client = await self.authenticate(credentials)
        value = form.get("token")
        if not value:
            raise InvalidRequest("token is required.")
        now = self._clock.now()
        if len(value) <= 128:
            token = await self._refresh.get(digest(value))
            if token is not None:
                if token.client_id == client.client_id:
                    await self._refresh.revoke_family(token.family_id, now=now)
                return
        try:
            verified = await self.verify_access_token(value)
        except InvalidToken:
            return
        if verified.claims.get("client_id") == client.client_id:
            await self._marks.add(
                f"revoked-at:{verified.claims['jti']}", expires_at=float(verified.claims["exp"]) + 5
            )

    async def introspect(self, form: Mapping[str, str], credentials: ClientCredentials) -> dict[str, Any]:
        """RFC 7662, for confidential clients only."""
        client = await self.authenticate(credentials)
        if client.public:
            raise InvalidClient()
        value = form.get("token")
        if not value:
            raise InvalidRequest("token is required.")
        now = self._clock.now()
        if len(value) <= 128:
            token = await self._refresh.get(digest(value))
            if token is not None:
                live = (
                    token.used_at is None
                    and token.expires_at > now
                    and await self._grants.user_grant(
                        client_id=token.client_id,
                        user_id=token.user_id,
                        session_digest=token.session_digest,
                        revoked=token.revoked_at is not None,
                    )
                    is not None
                )
                if not live:
                    return {"active": False}
                return {
                    "active": True,
                    "token_type": "refresh_token",
                    "scope": token.scope,
                    "client_id": token.client_id,
                    "sub": token.user_id,
                    "exp": int(token.expires_at),
                    "iat": int(token.created_at),
                    "iss": self.issuer,
                }
        try:
            verified = await self.verify_access_token(value, expected_audiences=self._issued_audiences())
        except InvalidToken:
            return {"active": False}
        claims = verified.claims
        return {
            "active": True,
            "token_type": "Bearer",
            **{
                k: claims[k]
                for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti")
                if k in claims
            },
        }

    # --- logout ----------------------------------------------------------------------------------

    async def logout_target(
        self,
        *,
        id_token_hint: str | None,
        client_id: str | None,
        post_logout_redirect_uri: str | None,
        state: str | None,
    ) -> tuple[str | None, dict[str, Any] | None]:
        """OIDC RP-Initiated Logout 1.0 section 2-3: where to go afterwards, and the hint's claims.

        Raises:
            InvalidRequest: a post_logout_redirect_uri that is not registered for the client.
        """
        claims = await self._minter.logout_hint_claims(id_token_hint) if id_token_hint else None
        if id_token_hint and claims is None:
            raise InvalidRequest("id_token_hint is not an ID token from this provider.")
        audience = claims.get("aud") if claims else None
        hinted = audience if isinstance(audience, str) else None
        if client_id and hinted and client_id != hinted:
            raise InvalidRequest("client_id does not match the id_token_hint.")
        target_client = client_id or hinted
        if post_logout_redirect_uri is None:
            return None, claims
        client = await self._clients.get(target_client) if target_client else None
        if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
            raise InvalidRequest("post_logout_redirect_uri is not registered for this client.")
        return add_query(post_logout_redirect_uri, {"state": state}), claims

    async def end_session_tokens(self, session: SessionRecord) -> int:
        return await self._refresh.revoke_for_session(session.digest, now=self._clock.now())

    # --- consents --------------------------------------------------------------------------------

    async def list_consents(self, user: User) -> list[tuple[Consent, Client | None]]:
        return [
            (c, await self._clients.get(c.client_id)) for c in await self._consents.list_for_user(user.id)
        ]

    async def revoke_consent(self, user: User, client_id: str, *, context: RequestContext) -> bool:
        removed = await self._consents.delete(user.id, client_id)
        if removed:
            await self._refresh.revoke_for_user(user.id, now=self._clock.now(), client_id=client_id)
            await self._audit.record(
                AuditKind.CONSENT_REVOKED, user_id=user.id, context=context, client=client_id
            )
        return removed

    # --- clients ---------------------------------------------------------------------------------

    async def create_client(
        self,
        *,
        name: str,
        redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] = (),
        public: bool = False,
        first_party: bool = False,
        grant_types: Sequence[str] = (),
        scopes: Sequence[str] = (),
        token_endpoint_auth_method: str | None = None,
        jwks: dict[str, Any] | None = None,
        access_token_lifetime: int | None = None,
        signing_alg: str = ACCESS_TOKEN_DEFAULT_ALG,
        id_token_alg: str = ID_TOKEN_DEFAULT_ALG,
        logo_uri: str | None = None,
    ) -> IssuedClient:
        """Register a client; a confidential client's secret is returned once and stored as a digest."""
        grants = tuple(GrantType(g) for g in (grant_types or ("authorization_code", "refresh_token")))
        method = AuthMethod(
            token_endpoint_auth_method
            or ("none" if public else "private_key_jwt" if jwks else "client_secret_basic")
        )
        secret = new_token() if method in SECRET_METHODS else None
        client = Client(
            client_id=new_id(),
            name=name,
            secret_digest=digest(secret) if secret else None,
            public=public,
            first_party=first_party,
            redirect_uris=tuple(redirect_uris),
            post_logout_redirect_uris=tuple(post_logout_redirect_uris),
            grant_types=grants,
            scopes=tuple(dict.fromkeys(scopes or ("openid", "email", "offline_access"))),
            token_endpoint_auth_method=method,
            jwks=jwks,
            access_token_lifetime=access_token_lifetime or self._settings.access_token_lifetime,
            signing_alg=signing_alg,
            created_at=self._clock.now(),
            id_token_alg=id_token_alg,
            logo_uri=logo_uri or None,
        )
        _check_client(client)
        await self._clients.add(client)
        await self._audit.record(AuditKind.CLIENT_CREATED, user_id=None, client=client.client_id, name=name)
        return IssuedClient(client=client, secret=secret)

    async def update_client(
        self,
        client_id: str,
        *,
        name: str | None = None,
        redirect_uris: Sequence[str] | None = None,
        add_redirect_uris: Sequence[str] = (),
        remove_redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] | None = None,
        add_post_logout_redirect_uris: Sequence[str] = (),
        remove_post_logout_redirect_uris: Sequence[str] = (),
        first_party: bool | None = None,
        id_token_alg: str | None = None,
        logo_uri: str | None = None,
        rotate_secret: bool = False,
        context: RequestContext | None = None,
    ) -> IssuedClient | None:
        """Change a registered client under the rules of registration (None and unchanged values keep it).

        A list of URIs is either replaced or edited (added to, removed from), not both. `logo_uri` ""
        removes the logo. A rotated secret is returned once and replaces the old one at once, on every
        process. Each change is audited (`client_updated`, with the secret rotation named).

        Returns:
            The client as stored now, with the new secret if one was made; None when there is no such client.

        Raises:
            InvalidRequest: the changed client breaks a rule of registration, a URI to remove is not
                registered, or a client that does not authenticate with a secret is asked to rotate one.
        """
        current = await self._clients.get(client_id)
        if current is None:
            return None

        def edited(
            kind: str,
            registered: Sequence[str],
            replaced: Sequence[str] | None,
            added: Sequence[str],
            removed: Sequence[str],
        ) -> tuple[str, ...]:
            if replaced is not None and (added or removed):
                raise InvalidRequest(f"Either replace the {kind}s or add and remove some, not both.")
            base = list(registered if replaced is None else replaced)
            for uri in removed:
                if uri not in base:
                    raise InvalidRequest(f"{uri[:100]} is not a registered {kind} of this client.")
            return tuple(dict.fromkeys([*(u for u in base if u not in removed), *added]))

        redirects = edited(
            "redirect URI", current.redirect_uris, redirect_uris, add_redirect_uris, remove_redirect_uris
        )
        post_logout = edited(
            "post-logout redirect URI",
            current.post_logout_redirect_uris,
            post_logout_redirect_uris,
            add_post_logout_redirect_uris,
            remove_post_logout_redirect_uris,
        )
        if rotate_secret and not current.accepts_secret:
            raise InvalidRequest(
                "Only a client that authenticates with a secret (client_secret_basic or "
                "client_secret_post) has one to rotate."
            )
        secret = new_token() if rotate_secret else None
        changed = replace(
            current,
            name=current.name if name is None else name,
            redirect_uris=redirects,
            post_logout_redirect_uris=post_logout,
            first_party=current.first_party if first_party is None else first_party,
            secret_digest=digest(secret) if secret else current.secret_digest,
            id_token_alg=current.id_token_alg if id_token_alg is None else id_token_alg,
            logo_uri=current.logo_uri if logo_uri is None else (logo_uri or None),
        )
        _check_client(changed)
        if not await self._clients.update(changed, expected=current):
            if await self._clients.get(client_id) is None:
                return None  # deleted meanwhile
            raise Conflict("The client was changed meanwhile (another update): read it and try again.")
        fields = [
            f.name for f in dataclass_fields(Client) if getattr(current, f.name) != getattr(changed, f.name)
        ]
        details = {
            "changed": " ".join("secret" if f == "secret_digest" else f for f in fields),
            **_uri_changes("redirect_uris", current.redirect_uris, changed.redirect_uris),
            **_uri_changes(
                "post_logout_redirect_uris",
                current.post_logout_redirect_uris,
                changed.post_logout_redirect_uris,
            ),
        }
        await self._audit.record(
            AuditKind.CLIENT_UPDATED, user_id=None, context=context, client=client_id, **details
        )
        return IssuedClient(client=changed, secret=secret)

    async def list_clients(self) -> Sequence[Client]:
        return await self._clients.list()

    async def get_client(self, client_id: str) -> Client | None:
        return await self._clients.get(client_id)

    async def delete_client(self, client_id: str) -> bool:
        deleted = await self._clients.delete(client_id)
        if deleted:
            await self._audit.record(AuditKind.CLIENT_DELETED, user_id=None, client=client_id)
        return deleted

    async def revoke_user_tokens(self, user_id: str) -> int:
        return await self._refresh.revoke_for_user(user_id, now=self._clock.now())

    async def sweep(self) -> None:
        await self.keys.rotate_if_due()


MAX_URIS = 20


def _uri_changes(kind: str, before: Sequence[str], after: Sequence[str]) -> dict[str, str]:
    """The URIs an update added and removed, for the audit trail (who can be sent where is security)."""
    added = [u for u in after if u not in before]
    removed = [u for u in before if u not in after]
    return {
        **({f"{kind}_added": " ".join(added)} if added else {}),
        **({f"{kind}_removed": " ".join(removed)} if removed else {}),
    }


def _check_client(client: Client) -> None:
    """The rules of registration, for a new client and for every update of one."""
    if not client.name or len(client.name) > 200:
        raise InvalidRequest("name is required (at most 200 characters).")
    if client.signing_alg not in SIGNING_ALGORITHMS:
        raise InvalidRequest(f"signing_alg must be one of {', '.join(SIGNING_ALGORITHMS)}.")
    if client.id_token_alg not in SIGNING_ALGORITHMS:
        raise InvalidRequest(f"id_token_signed_response_alg must be one of {', '.join(SIGNING_ALGORITHMS)}.")
    if client.logo_uri:
        logo = urlsplit(client.logo_uri)
        if logo.scheme != "https" or not logo.netloc or len(client.logo_uri) > 2048:
            raise InvalidRequest("logo_uri must be an https URL (at most 2048 characters).")
    if not 30 <= client.access_token_lifetime <= MAX_ACCESS_TOKEN_LIFETIME:
        raise InvalidRequest(f"access_token_lifetime must be 30..{MAX_ACCESS_TOKEN_LIFETIME} seconds.")
    if len(client.redirect_uris) > MAX_URIS or len(client.post_logout_redirect_uris) > MAX_URIS:
        raise InvalidRequest(f"A client has at most {MAX_URIS} redirect URIs of each kind.")
    if GrantType.AUTHORIZATION_CODE in client.grant_types and not client.redirect_uris:
        raise InvalidRequest("The authorization_code grant needs at least one redirect URI.")
    for uri in (*client.redirect_uris, *client.post_logout_redirect_uris):
        parts = urlsplit(uri)
        if parts.fragment or not parts.scheme or (parts.scheme in ("http", "https") and not parts.netloc):
            raise InvalidRequest(f"Invalid redirect URI: {uri[:100]}")
        if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            raise InvalidRequest("http redirect URIs are allowed only on loopback; use https.")
        if parts.scheme in NOT_APP_SCHEMES:
            raise InvalidRequest(f"Invalid redirect URI: {uri[:100]}")
    if client.public and client.token_endpoint_auth_method is not AuthMethod.NONE:
        raise InvalidRequest("Public clients do not authenticate (token_endpoint_auth_method none).")
    if not client.public and client.token_endpoint_auth_method is AuthMethod.NONE:
        raise InvalidRequest("Confidential clients must authenticate.")
    if client.public and GrantType.CLIENT_CREDENTIALS in client.grant_types:
        raise InvalidRequest("Public clients cannot use client_credentials.")
    if client.token_endpoint_auth_method is AuthMethod.PRIVATE_KEY_JWT and not client.jwks:
        raise InvalidRequest("private_key_jwt needs the client's public keys (jwks).")
    if client.jwks is not None:
        try:
            from joserfc.jwk import KeySet

            keys = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidRequest("jwks is not a valid JWK set.") from exc
        if any(key.is_private for key in keys):
            raise InvalidRequest("jwks must contain public keys only.")


__all__ = [
    "ADMIN_SCOPE",
    "IssuedClient",
    "NeedsConsent",
    "NeedsEnrollment",
    "NeedsLogin",
    "OAuthError",
    "Provider",
    "RedirectTo",
    "VerifiedAccessToken",
]
