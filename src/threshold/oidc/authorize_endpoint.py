"""The authorization endpoint's steps (RFC 6749 section 4.1.1-4.1.2, OIDC Core 3.1.2): what a validated
request needs next (sign-in, second-factor enrolment, consent) or the code it gets.

The request's rules are in oidc.authorize, the decision in oidc.authorize_decision; this module applies
the decision: it remembers a consent given, issues the code, or says where the browser goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from threshold.core.clock import Clock
from threshold.core.crypto import SecretBox
from threshold.core.models import RequestContext, SessionRecord, User
from threshold.core.secrets import digest, new_token
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
from threshold.oidc.consent import Consents
from threshold.oidc.errors import AccessDenied
from threshold.oidc.models import AuthorizationCode, Client
from threshold.oidc.organization import org_of_authorization
from threshold.oidc.ports import ClientRepo, CodeRepo
from threshold.oidc.redirects import add_query, error_redirect

CODE_LIFETIME = 60  # seconds: single use, short-lived (RFC 6749 section 4.1.2 recommends at most 10 minutes)


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


class AuthorizationEndpoint:
    def __init__(
        self,
        *,
        issuer: str,
        clients: ClientRepo,
        codes: CodeRepo,
        consents: Consents,
        box: SecretBox,
        clock: Clock,
    ) -> None:
        self._issuer = issuer
        self._clients = clients
        self._codes = codes
        self._consents = consents
        self._box = box
        self._clock = clock

    def error_redirect(self, error: RedirectableError) -> str:
        return error_redirect(error, issuer=self._issuer)

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

    def deny(self, request: AuthorizationRequest) -> str:
        """The consent form's deny: access_denied at the client (RFC 6749 section 4.1.2.1)."""
        return self.error_redirect(
            RedirectableError(AccessDenied(), redirect_uri=request.redirect_uri, state=request.state)
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
                await self._consents.remember(request, user=user, previous=consent, context=context)
            return RedirectTo(await self._issue_code(request, session=session))
        # A sign-in first (IssueCode never comes without a session): one asked for now answers this
        # request from now on, one asked for earlier from then.
        force = isinstance(decided, SignInFirst) and decided.force
        started_at = now if started_at is None else started_at
        return NeedsLogin(force, seal_started(self._box, request, started_at=started_at))

    async def _issue_code(self, request: AuthorizationRequest, *, session: SessionRecord) -> str:
        """RFC 6749 section 4.1.2, only through _decide: a code is issued when the decision says so."""
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
                org_id=org_of_authorization(request.scopes, session),
            )
        )
        return add_query(request.redirect_uri, {"code": code, "state": request.state, "iss": self._issuer})
