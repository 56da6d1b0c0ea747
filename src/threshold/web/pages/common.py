"""What every hosted page shares: reading forms, safe return targets (and the return cookie across a
trip to the mailbox), form errors, and applying a sign-in flow's outcome (the pages' one surface)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from threshold.core.errors import (
    InvalidRequest,
    ThresholdError,
)
from threshold.core.flows.outcome import MfaRequired, RestoreOffered, SignInOutcome
from threshold.core.sessions import IssuedSession
from threshold.services import Services
from threshold.web.errors import headers_for, status_for
from threshold.web.i18n import request_language
from threshold.web.pages.render import render
from threshold.web.security import (
    RETURN_COOKIE,
    RETURN_COOKIE_MAX_AGE,
    check_csrf_token,
    check_same_origin,
    clear_pending_cookie,
    set_pending_cookie,
    set_session_cookie,
)

MAX_FIELD = 4096


def safe_next(target: str | None, default: str = "/account") -> str:
    """Only same-site relative paths are followed (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 2048:
        return default
    if any(ch in target for ch in "\r\n\t") or "\\" in target:
        return default
    return target


MAX_RETURN_COOKIE = 3800  # browsers keep a cookie of up to 4096 bytes, name included


def remember_return(response: Response, target: str) -> None:
    """Keep where a person was going (e.g. an authorization) across a trip to their mailbox.

    Set when a flow sends mail (sign-up verification, password reset, emailed sign-in); read by
    `recall_return` on the page the mailed link opens in the same browser. Only a same-site path
    (`safe_next`) is ever stored or followed.
    """
    target = safe_next(target)
    value = quote(target, safe="")
    if target == "/account" or len(value) > MAX_RETURN_COOKIE:
        forget_return(response)  # a value the browser would drop silently is not kept either
        return
    response.set_cookie(
        RETURN_COOKIE,
        value,
        max_age=RETURN_COOKIE_MAX_AGE,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


def forget_return(response: Response) -> None:
    response.delete_cookie(RETURN_COOKIE, path="/", secure=True, httponly=True, samesite="lax")


def recall_return(request: Request) -> str:
    """Where this browser was going before it went to its mailbox (see `remember_return`)."""
    return safe_next(unquote(request.cookies.get(RETURN_COOKIE, "")))


async def read_form(request: Request) -> FormData:
    """Parse a form and pass the same-origin and CSRF checks; raises CsrfFailed or InvalidRequest."""
    check_same_origin(request, request.app.state.services.settings)
    form = await request.form(max_files=0, max_fields=20)
    for value in form.values():
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            raise InvalidRequest()
    token = form.get("csrf_token")
    check_csrf_token(request, token if isinstance(token, str) else None)
    target = form.get("next")
    if isinstance(target, str) and target:  # an authorization's ui_locales ride in the form's next
        request_language(request, next_target=target)  # (and with it the mail this request queues)
    return form


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


async def form_error(request: Request, template: str, error: ThresholdError, **context: Any) -> Response:
    """The form's page again, with the error's words for a person and its status and headers."""
    return await render(
        request,
        template,
        status=status_for(error),
        headers=headers_for(error),
        error=error.page_detail,
        **context,
    )


def redirect_with_session(target: str, issued: IssuedSession, services: Services) -> Response:
    """On to `target` under a session just issued (a new id after every change of privilege)."""
    response = redirect(target)
    set_session_cookie(response, issued.token, max_age=services.settings.session.absolute_lifetime)
    return response


async def apply_outcome(services: Services, outcome: SignInOutcome, target: str) -> Response:
    """The hosted pages' surface of a sign-in flow's end (the flow already ended the browser's previous
    session): on to the second step with the pending cookie, or the new session cookie and onward,
    offering a passkey after a sign-in without one (unless snoozed)."""
    if isinstance(outcome, MfaRequired):
        pending = redirect("/login/mfa?" + urlencode({"next": target}))
        set_pending_cookie(pending, outcome.token, max_age=services.settings.session.pending_login_lifetime)
        return pending
    if isinstance(outcome, RestoreOffered):  # the account is being deleted: keep it?
        offer = redirect("/login/restore?" + urlencode({"next": target}))
        set_pending_cookie(offer, outcome.token, max_age=services.settings.session.pending_login_lifetime)
        return offer
    user, issued = outcome.user, outcome.session
    if await services.factors.needs_enrollment(user):
        response = redirect("/account")
    elif await services.factors.should_offer_passkey(user):
        response = redirect("/account/passkey-upgrade?" + urlencode({"next": target}))
    else:
        response = redirect(target)
    set_session_cookie(response, issued.token, max_age=services.settings.session.absolute_lifetime)
    clear_pending_cookie(response)
    forget_return(response)  # a sign-in ends the trip through the mailbox, if there was one
    return response
