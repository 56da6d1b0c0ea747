"""What an authorization request needs next (OIDC Core 3.1.2.3 to 3.1.2.6), decided in one place.

GET and POST /oauth2/authorize and the consent form's submit all ask `decide_authorization`, so a code is
issued only when every rule holds at the moment it is issued: a live session, no second factor owed,
`prompt=login` and `max_age` met, and consent (remembered, just given, or not needed by a first-party
client). Each rule is one small function; none does I/O.

A sign-in the request asked for (`prompt=login`, an expired `max_age`) is recognised by when the provider
first sent the request to sign in (its `started_at`): sealed to the request, carried through the sign-in
and the consent page, so a sign-in since then meets the request while the parameters stay in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from threshold.core.crypto import DecryptionFailed, SecretBox
from threshold.core.models import SessionRecord, User
from threshold.core.secrets import digest
from threshold.oidc.authorize import AuthorizationRequest
from threshold.oidc.errors import ConsentRequired, InteractionRequired, LoginRequired, OAuthError
from threshold.oidc.models import Consent

STARTED_PARAM = "started"
"""The request's sealed start time, added by the provider to its own sign-in and consent hops."""
STARTED_LIFETIME = 3600  # seconds: an authorization left longer than this starts again (and signs in again)
_STARTED_PURPOSE = "authorization-started"


@dataclass(frozen=True, slots=True)
class SignInFirst:
    """Authenticate the End-User (OIDC Core 3.1.2.3); `force` when a session exists but is not enough."""

    force: bool


@dataclass(frozen=True, slots=True)
class EnrollFirst:
    """The account must enrol a second factor (Settings mfa.required or an operator) before any client."""


@dataclass(frozen=True, slots=True)
class AskConsent:
    """Obtain the End-User's consent for this client and these scopes (OIDC Core 3.1.2.4)."""


@dataclass(frozen=True, slots=True)
class IssueCode:
    """Every rule holds: issue the code (OIDC Core 3.1.2.5); `record_consent` when it was just given."""

    record_consent: bool


@dataclass(frozen=True, slots=True)
class ErrorToClient:
    """Answer the client at its redirect_uri with this error (OIDC Core 3.1.2.6)."""

    error: OAuthError


AuthorizeDecision = SignInFirst | EnrollFirst | AskConsent | IssueCode | ErrorToClient


def decide_authorization(
    request: AuthorizationRequest,
    *,
    session: SessionRecord | None,
    user: User | None,
    enrollment_owed: bool,
    consent: Consent | None,
    consenting: bool,
    now: float,
) -> AuthorizeDecision:
    """Decide what an authorization request needs next.

    Args:
        request: the validated request; `started_at` set when its sealed start came back with it.
        session: the browser's session, or None.
        user: the session's user, or None.
        enrollment_owed: the user must enrol a second factor and has none (`Factors.needs_enrollment`).
        consent: the user's remembered consent for this client, if any.
        consenting: the End-User is giving consent now (the consent form's allow).
        now: the current time.

    Returns:
        The first step the request still needs, or IssueCode when it needs none.
    """
    if session is None or user is None or not session_is_live(session, user, now=now):
        return interaction(request, SignInFirst(force=session is not None))
    if not prompt_login_met(request, session) or not max_age_met(request, session, now=now):
        return interaction(request, SignInFirst(force=True))
    if enrollment_owed:
        return interaction(request, EnrollFirst())
    if not consent_met(request, consent, consenting=consenting):
        return interaction(request, AskConsent())
    return IssueCode(record_consent=consenting and not request.client.first_party)


def session_is_live(session: SessionRecord, user: User, *, now: float) -> bool:
    """OIDC Core 3.1.2.3: an End-User who is not authenticated must be authenticated first."""
    return session.user_id == user.id and not user.disabled and session.expires_at > now


def signed_in_since_start(request: AuthorizationRequest, session: SessionRecord) -> bool:
    return request.started_at is not None and session.auth_time >= request.started_at


def prompt_login_met(request: AuthorizationRequest, session: SessionRecord) -> bool:
    """OIDC Core 3.1.2.1, prompt=login: "The Authorization Server SHOULD prompt the End-User for
    reauthentication." Met only by a sign-in made after this request started."""
    return "login" not in request.prompt or signed_in_since_start(request, session)


def max_age_met(request: AuthorizationRequest, session: SessionRecord, *, now: float) -> bool:
    """OIDC Core 3.1.2.1, max_age: "If the elapsed time is greater than this value, the OP MUST attempt to
    actively re-authenticate the End-User." A sign-in after the request started is that re-authentication."""
    if request.max_age is None:
        return True
    return now - session.auth_time <= request.max_age or signed_in_since_start(request, session)


def consent_met(request: AuthorizationRequest, consent: Consent | None, *, consenting: bool) -> bool:
    """OIDC Core 3.1.2.4: consent is given now, remembered for every requested scope (and prompt=consent
    does not ask for it again), or not asked of a first-party client (registered `--first-party`)."""
    if request.client.first_party or consenting:
        return True
    if "consent" in request.prompt:
        return False
    return consent is not None and set(request.scopes) <= consent.scopes


PROMPT_NONE_ERRORS: dict[type[SignInFirst | EnrollFirst | AskConsent], type[OAuthError]] = {
    SignInFirst: LoginRequired,
    EnrollFirst: InteractionRequired,
    AskConsent: ConsentRequired,
}


def interaction(
    request: AuthorizationRequest, step: SignInFirst | EnrollFirst | AskConsent
) -> AuthorizeDecision:
    """OIDC Core 3.1.2.1, prompt=none: "The Authorization Server MUST NOT display any authentication or
    consent user interface pages"; 3.1.2.6 names the error instead (login_required, consent_required,
    interaction_required for any other interaction, here enrolling a second factor)."""
    if "none" not in request.prompt:
        return step
    return ErrorToClient(PROMPT_NONE_ERRORS[type(step)]())


# --- the request's start, carried through the sign-in and the consent page ----------------------------


def _started_purpose(request: AuthorizationRequest) -> str:
    """Binds a sealed start to one request: another request (another PKCE challenge) cannot use it."""
    bound = "\n".join(
        (
            request.client.client_id,
            request.redirect_uri,
            request.scope,
            request.state or "",
            request.nonce or "",
            request.code_challenge,
        )
    )
    return f"{_STARTED_PURPOSE}:{digest(bound)}"


def seal_started(box: SecretBox, request: AuthorizationRequest, *, started_at: float) -> str:
    """The value of STARTED_PARAM for this request."""
    return box.seal(repr(started_at).encode(), purpose=_started_purpose(request))


def open_started(
    box: SecretBox, request: AuthorizationRequest, sealed: str | None, *, now: float
) -> float | None:
    """When this request started, from its sealed STARTED_PARAM; None when absent, forged, sealed for
    another request, in the future or older than STARTED_LIFETIME."""
    if not sealed or len(sealed) > 200:
        return None
    try:
        started_at = float(box.open(sealed, purpose=_started_purpose(request)).decode())
    except (DecryptionFailed, ValueError):
        return None
    if not math.isfinite(started_at) or not now - STARTED_LIFETIME <= started_at <= now:
        return None
    return started_at
