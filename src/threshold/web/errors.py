"""The ONE mapping from errors to HTTP: problem+json for the APIs, an HTML page for the hosted UI.

Looked up along the exception's MRO, so one entry for a base class covers its subclasses. A 5xx
reveals nothing about its cause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from threshold.core import errors as e
from threshold.core.email import ConfirmationRequired, TokenInvalid
from threshold.oidc.errors import BearerTokenMissing, InsufficientScope, InvalidToken, OAuthError
from threshold.web.i18n import request_language

log = logging.getLogger(__name__)

STATUS: dict[type[e.ThresholdError], int] = {
    e.ThresholdError: 400,
    e.InvalidRequest: 400,
    e.InvalidCredentials: 401,
    e.NotAuthenticated: 401,
    e.CurrentPasswordWrong: 403,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.EmailUnavailable: 409,
    e.ReauthenticationRequired: 401,
    e.PendingLoginMissing: 401,
    e.LastSignInMethod: 409,
    e.Conflict: 409,
    e.TotpNotStarted: 409,
    TokenInvalid: 400,
    ConfirmationRequired: 409,
    e.PasswordRejected: 422,
    e.RateLimited: 429,
    e.DependencyUnavailable: 503,
}

HTTP_CODES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

PROBLEM_TYPE = "application/problem+json"


def status_for(error: e.ThresholdError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def headers_for(error: e.ThresholdError) -> dict[str, str]:
    retry_after = getattr(error, "retry_after", None)
    return {"Retry-After": str(retry_after)} if retry_after else {}


def problem_response(
    status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:threshold:error:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/admin/v1/", "/oauth2/", "/.well-known/")):
        return False
    if path in ("/healthz", "/readyz"):
        return False
    return "text/html" in request.headers.get("accept", "")


def _public_details(error: e.ThresholdError) -> dict[str, Any]:
    allowed = {"min_length", "max_length", "retry_after", "methods", "reason", "redirect"}
    return {k: v for k, v in error.details.items() if k in allowed}


# One warning per cause and path every OUTAGE_LOG_SECONDS: an outage answers thousands of requests 503.
OUTAGE_LOG_SECONDS = 10.0
_outage_logged: dict[tuple[str, str], float] = {}


def _cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def log_outage(request: Request, exc: e.DependencyUnavailable) -> None:
    """Tell the operator what a 503 met (the client is told nothing about it): the innermost cause's type
    and the first line of its message. A driver's message names a host and port at most; the lines after
    the first are where SQLAlchemy puts the statement and its parameters (an address, a digest), which
    never go to the log."""
    cause = _cause(exc)
    key = (type(cause).__qualname__, request.url.path)
    now = time.monotonic()
    if now - _outage_logged.get(key, -OUTAGE_LOG_SECONDS) < OUTAGE_LOG_SECONDS:
        return
    if len(_outage_logged) > 1000:
        _outage_logged.clear()
    _outage_logged[key] = now
    log.warning(
        "503 on %s %s: %s.%s: %s",
        request.method,
        request.url.path,
        type(cause).__module__,
        type(cause).__qualname__,
        (str(cause).splitlines() or [""])[0][:200],
    )


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    """RFC 6749 section 5.2 form; RFC 6750 section 3 WWW-Authenticate for bearer-token errors."""
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if isinstance(exc, BearerTokenMissing):
        headers["WWW-Authenticate"] = 'Bearer realm="threshold"'
    elif isinstance(exc, InvalidToken | InsufficientScope):
        headers["WWW-Authenticate"] = f'Bearer realm="threshold", error="{exc.code}"'
    elif exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="threshold"'
    return JSONResponse(
        {"error": exc.code, "error_description": exc.detail}, status_code=exc.status, headers=headers
    )


async def handle_threshold_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.ThresholdError)
    if isinstance(exc, OAuthError):
        if _wants_html(request) or request.url.path in ("/oauth2/authorize", "/consent", "/oauth2/logout"):
            from threshold.web.pages.render import error_page

            return await error_page(request, exc.status, exc.detail)
        return oauth_error_response(exc)
    if isinstance(exc, e.DependencyUnavailable):
        log_outage(request, exc)
    status = status_for(exc)
    if _wants_html(request):
        from threshold.web.pages.render import error_page

        message = exc.page_detail  # for a person
        return await error_page(request, status, message, headers=headers_for(exc))
    language = request_language(request)  # `detail` is for a person: in their language; `code` is stable
    headers = {**headers_for(exc), "Content-Language": language.tag}
    return problem_response(
        status, exc.code, language.gettext(exc.detail), headers=headers, **_public_details(exc)
    )


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {"location": [str(part) for part in err.get("loc", ())], "type": err.get("type", "invalid")}
        for err in exc.errors()[:20]
    ]
    return problem_response(
        400, "invalid_request", "The request body or parameters are invalid.", errors=fields
    )


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    detail = HTTPStatus(exc.status_code).description or HTTPStatus(exc.status_code).phrase
    if _wants_html(request):
        from threshold.web.pages.render import error_page

        return await error_page(
            request, exc.status_code, HTTPStatus(exc.status_code).phrase, headers=exc.headers
        )
    return problem_response(exc.status_code, code, detail, headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "server_error", "Something went wrong on our side.")


def install(app: Any) -> None:
    app.add_exception_handler(e.ThresholdError, handle_threshold_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(HTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected)
