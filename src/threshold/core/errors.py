"""The ThresholdError hierarchy. Each class has a stable public `code`; web/errors.py maps it to HTTP."""

from __future__ import annotations

from enum import StrEnum

from threshold.core.i18n import N_, Phrase


class ThresholdError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"
    message = N_("The request could not be completed.")

    def __init__(self, message: str | None = None, **details: object) -> None:
        super().__init__(message or self.message)
        self.details = details

    @property
    def detail(self) -> str:
        return str(self.args[0])

    @property
    def page_detail(self) -> str:
        """What a hosted page tells a person; `detail` unless an error has words of its own for it."""
        return self.detail


class InvalidRequest(ThresholdError):
    code = "invalid_request"
    message = N_("The request is malformed.")


class InvalidCredentials(ThresholdError):
    """Unknown account, wrong password and disabled account all end here (no enumeration)."""

    code = "invalid_credentials"
    message = N_("The email address or password is incorrect.")


class NotAuthenticated(ThresholdError):
    code = "not_authenticated"
    message = N_("Sign in to continue.")


class NotFound(ThresholdError):
    code = "not_found"
    message = N_("Not found.")


class Forbidden(ThresholdError):
    code = "forbidden"
    message = N_("This action is not allowed.")


class Conflict(ThresholdError):
    code = "conflict"
    message = N_("The record changed meanwhile: read it again and retry.")


class LastOperator(Conflict):
    code = "last_operator"
    message = N_("This is the last account with access to the console: grant another one first.")


class CsrfReason(StrEnum):
    """Which part of the cross-site request check failed: the `reason` of a `csrf_failed` problem."""

    ORIGIN = "origin"  # the Origin header names another origin
    CROSS_SITE = "cross_site"  # no Origin, and Sec-Fetch-Site names another site
    MISSING_TOKEN = "missing_token"  # a token was owed and none came
    MISSING_COOKIE = "missing_cookie"  # a token came, but not the cookie it is checked against
    TOKEN_MISMATCH = "token_mismatch"  # token and cookie differ


_CSRF_PAGE_DETAILS = {
    CsrfReason.ORIGIN: N_(
        "This form was sent from another website, so it was not accepted. "
        "Open this site directly and try again."
    ),
    CsrfReason.CROSS_SITE: N_(
        "This form was sent from another website, so it was not accepted. "
        "Open this site directly and try again."
    ),
    CsrfReason.MISSING_TOKEN: N_("This form was out of date. Reload the page and try again."),
    CsrfReason.TOKEN_MISMATCH: N_(
        "This form was out of date (it may have been open in another tab). Reload the page and try again."
    ),
    CsrfReason.MISSING_COOKIE: N_(
        "Your browser did not send this site's cookies with the form. "
        "Allow cookies for this site, reload the page and try again."
    ),
}


class CsrfFailed(Forbidden):
    """A state-changing request failed the same-origin or CSRF-token check.

    `detail` is for the developer of an API client (what to send); `page_detail` is for a person
    looking at a hosted page, who can only reload and retry.
    """

    code = "csrf_failed"
    message = N_("The request did not pass the cross-site request check.")

    def __init__(self, message: str | None = None, *, reason: CsrfReason | None = None) -> None:
        if reason is None:
            super().__init__(message)
        else:
            super().__init__(message, reason=reason)
        self.reason = reason

    @property
    def page_detail(self) -> str:
        if self.reason is None:
            return N_("This form could not be accepted. Reload the page and try again.")
        return _CSRF_PAGE_DETAILS[self.reason]


class RateLimited(ThresholdError):
    code = "rate_limited"
    message = N_("Too many attempts. Try again later.")

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = max(1, int(retry_after))

    @property
    def page_detail(self) -> str:
        minutes = max(1, round(self.retry_after / 60))
        if minutes == 1:
            return N_("Too many attempts. Try again in about 1 minute.")
        return Phrase(N_("Too many attempts. Try again in about {minutes} minutes."), minutes=minutes)


class ConsecutiveFailuresCapped(RateLimited):
    """Too many failures in a row on one account (SP 800-63B-4: at most 100): the password and codes
    wait for a success by another way (a passkey, an emailed link, a password reset)."""

    CAP_RETRY_AFTER = 3600

    def __init__(self) -> None:
        super().__init__(
            self.CAP_RETRY_AFTER,
            N_(
                "Too many wrong attempts on this account. Sign in with a passkey or an emailed link, "
                "or reset the password."
            ),
        )

    @property
    def page_detail(self) -> str:
        return self.detail


class EmailInvalid(InvalidRequest):
    code = "email_invalid"
    message = N_("Enter a valid email address.")


class EmailUnavailable(ThresholdError):
    code = "email_unavailable"
    message = N_("An account with this email address cannot be created.")


class SignupDisabled(Forbidden):
    code = "signup_disabled"
    message = N_("Sign-up is disabled on this service.")


class PasswordRejected(ThresholdError):
    """A new password fails the policy. Subclasses say which rule."""

    code = "password_rejected"
    message = N_("This password cannot be used.")


class PasswordTooShort(PasswordRejected):
    code = "password_too_short"
    message = N_("The password is too short.")


class PasswordTooLong(PasswordRejected):
    code = "password_too_long"
    message = N_("The password is too long.")


class PasswordCompromised(PasswordRejected):
    code = "password_compromised"
    message = N_("This password is too common or has appeared in a data breach. Choose another.")


class PasswordContextual(PasswordRejected):
    code = "password_contextual"
    message = N_("The password must not contain your email address or the service name.")


class PasswordRepetitive(PasswordRejected):
    code = "password_repetitive"
    message = N_("The password must not be a single repeated character or pattern.")


class CurrentPasswordWrong(ThresholdError):
    code = "current_password_incorrect"
    message = N_("The current password is incorrect.")


class SessionNotFound(NotFound):
    code = "session_not_found"
    message = N_("No such session.")


class UserNotFound(NotFound):
    code = "user_not_found"
    message = N_("No such user.")


class DependencyUnavailable(ThresholdError):
    """A database or Redis outage: answered with 503 and Retry-After, never a false answer."""

    code = "temporarily_unavailable"
    message = N_("The service is temporarily unavailable. Try again shortly.")

    def __init__(self, message: str | None = None, retry_after: int = 2) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class ReauthenticationRequired(ThresholdError):
    """A sensitive action needs a fresh proof; `methods` says which ones the user can use."""

    code = "reauthentication_required"
    message = N_("Confirm it's you to continue.")

    def __init__(self, methods: list[str]) -> None:
        super().__init__(None, methods=methods)
        self.methods = methods


class MfaCodeInvalid(ThresholdError):
    code = "invalid_code"
    message = N_("The code is not valid or was already used.")


class PendingLoginMissing(ThresholdError):
    code = "flow_expired"
    message = N_("The sign-in has expired. Start again.")


class PasskeyRejected(ThresholdError):
    code = "passkey_invalid"
    message = N_("The passkey response could not be verified.")


class ChallengeExpired(PasskeyRejected):
    code = "challenge_expired"
    message = N_("The passkey challenge expired or was already used. Try again.")


class LastSignInMethod(ThresholdError):
    code = "last_sign_in_method"
    message = N_("This is your last way to sign in; add another before removing it.")


class FactorNotFound(NotFound):
    code = "factor_not_found"
    message = N_("No such passkey or factor.")


class TotpNotStarted(ThresholdError):
    code = "totp_not_started"
    message = N_("Start the authenticator-app setup first.")


class MfaEnrollmentRequired(Forbidden):
    code = "mfa_enrollment_required"
    message = N_("Your account must use two-step verification. Add a passkey or an authenticator app first.")


class EmailNotVerified(Forbidden):
    code = "email_not_verified"
    message = N_("Confirm your email address first: we sent you a new link.")
