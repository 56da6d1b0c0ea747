"""OAuth errors (RFC 6749 section 5.2 and 4.1.2.1, RFC 6750 section 3.1, OIDC Core 3.1.2.6).

`code` is the `error` value of the protocol; web/errors.py renders these in RFC 6749 form.
"""

from __future__ import annotations

from threshold.core.errors import ThresholdError


class OAuthError(ThresholdError):
    code = "invalid_request"
    message = "The request is missing a parameter or is otherwise malformed."
    status = 400


class InvalidRequest(OAuthError):
    pass


class InvalidClient(OAuthError):
    code = "invalid_client"
    message = "Client authentication failed."
    status = 401


class InvalidGrant(OAuthError):
    code = "invalid_grant"
    message = "The grant is invalid, expired, revoked or was issued to another client."


class UnauthorizedClient(OAuthError):
    code = "unauthorized_client"
    message = "The client is not allowed to use this grant type."


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"
    message = "The grant type is not supported."


class UnsupportedResponseType(OAuthError):
    code = "unsupported_response_type"
    message = "Only the authorization code flow (response_type=code) is supported."


class InvalidScope(OAuthError):
    code = "invalid_scope"
    message = "The requested scope is invalid or not allowed for this client."


class AccessDenied(OAuthError):
    code = "access_denied"
    message = "The user or the server denied the request."


class LoginRequired(OAuthError):
    code = "login_required"
    message = "The user is not signed in."


class ConsentRequired(OAuthError):
    code = "consent_required"
    message = "The user has not consented to this client."


class InteractionRequired(OAuthError):
    code = "interaction_required"
    message = "The user must interact with the server first (enrol a second factor)."


class InvalidToken(OAuthError):
    code = "invalid_token"
    message = "The access token is invalid or expired."
    status = 401


class BearerTokenMissing(InvalidToken):
    """RFC 6750 section 3.1: a request with no credentials gets a challenge without an error code."""

    message = "A bearer access token is required: send it as 'Authorization: Bearer <token>'."


class InsufficientScope(OAuthError):
    code = "insufficient_scope"
    message = "The access token does not carry the required scope."
    status = 403


class InvalidRedirectUri(OAuthError):
    """Never redirected: an unregistered redirect_uri gets an error page (RFC 6749 section 4.1.2.1)."""

    code = "invalid_redirect_uri"
    message = "The redirect_uri is not registered for this client."


class UnknownClient(OAuthError):
    """Never redirected either: without a valid client there is no trusted place to send the error."""

    code = "invalid_client"
    message = "Unknown client."
