"""Hosted pages for email: verification, password reset, sign-in by link or code, email change, and
the development outbox. Links in mail open a page with a button (POST), so a mail scanner that fetches
the link consumes nothing; a sign-in link opened in the browser that asked for it signs in directly.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.clock import iso
from threshold.core.email import ConfirmationRequired
from threshold.core.errors import ThresholdError
from threshold.core.flows.outcome import MfaRequired
from threshold.core.models import RequestContext
from threshold.services import Services
from threshold.web.api.email import set_email_login_cookie
from threshold.web.deps import (
    Authenticated,
    ContextDep,
    MaybeAuth,
    ServicesDep,
)
from threshold.web.pages.account import account_action
from threshold.web.pages.common import (
    apply_outcome,
    field,
    form_error,
    read_form,
    recall_return,
    redirect,
    remember_return,
    safe_next,
)
from threshold.web.pages.render import render
from threshold.web.security import EMAIL_LOGIN_COOKIE

router = APIRouter(include_in_schema=False)


# --- verification and email change ----------------------------------------------------------------


@router.get("/verify-email")
async def verify_page(request: Request, token: str = "", change: str = "") -> Response:
    return await render(request, "verify_email.html", token=token[:128], change=change == "1")


@router.post("/verify-email")
async def verify_submit(request: Request, services: ServicesDep, context: ContextDep) -> Response:
    change = False
    try:
        form = await read_form(request)
        change = field(form, "change") == "1"
        if change:
            await services.email.confirm_email_change(field(form, "token"), context=context)
        else:
            await services.email.verify_email(field(form, "token"), context=context)
    except ThresholdError as error:
        return await form_error(request, "verify_email.html", error, token="", change=change)
    target = recall_return(request)
    return await render(request, "verify_email.html", done=True, change=change, token="", return_to=target)


@router.post("/account/email/resend")
async def resend(request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth) -> Response:
    async def step(a: Authenticated, _: FormData) -> None:
        await services.email.resend_verification(a.user, context=context)

    return await account_action(request, auth, step, done="verification_sent", error_slot="email_error")


@router.post("/account/email")
async def change_email(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    async def step(a: Authenticated, form: FormData) -> None:
        await services.stepup.require_recent_auth(a.user, a.session)
        await services.email.request_email_change(a.user, field(form, "email"), context=context)

    return await account_action(request, auth, step, done="email_change", error_slot="email_error")


@router.get("/reset-password")
async def reset_page(
    request: Request, services: ServicesDep, token: str = "", next: str | None = None
) -> Response:
    if token:
        valid = await services.email.check_reset_token(token[:128])
        return await render(
            request,
            "reset_password.html",
            stage="choose",
            token=token[:128],
            valid=valid,
            min_length=services.settings.password.min_length,
        )
    return await render(request, "reset_password.html", stage="request", email="", next=safe_next(next))


@router.post("/reset-password")
async def reset_request(request: Request, services: ServicesDep, context: ContextDep) -> Response:
    email, target = "", "/account"
    try:
        form = await read_form(request)
        email, target = field(form, "email"), safe_next(field(form, "next"))
        await services.email.request_password_reset(email, context=context)
    except ThresholdError as error:
        return await form_error(
            request, "reset_password.html", error, stage="request", email=email, next=target
        )
    response = await render(request, "check_email.html", reason="reset", email=email)
    remember_return(response, target)
    return response


@router.post("/reset-password/confirm")
async def reset_confirm(request: Request, services: ServicesDep, context: ContextDep) -> Response:
    token = ""
    try:
        form = await read_form(request)
        token = field(form, "token")
        await services.email.reset_password(
            token=token, new_password=field(form, "new_password"), context=context
        )
    except ThresholdError as error:
        return await form_error(
            request,
            "reset_password.html",
            error,
            stage="choose",
            token=token,
            valid=True,
            min_length=services.settings.password.min_length,
        )
    target = recall_return(request)
    return redirect(
        "/login?" + urlencode({"reset": "1", **({"next": target} if target != "/account" else {})})
    )


# --- sign-in by email -----------------------------------------------------------------------------


def _enabled(services: Services) -> None:
    if not services.settings.email.login_enabled:
        raise HTTPException(404)


@router.get("/login/email")
async def email_login_page(request: Request, services: ServicesDep, next: str | None = None) -> Response:
    _enabled(services)
    return await render(request, "login_email.html", stage="request", next=safe_next(next), email="")


@router.post("/login/email")
async def email_login_request(request: Request, services: ServicesDep, context: ContextDep) -> Response:
    _enabled(services)
    target, email = "/account", ""
    try:
        form = await read_form(request)
        target, email = safe_next(field(form, "next")), field(form, "email")
        started = await services.email.request_email_login(email, context=context)
    except ThresholdError as error:
        return await form_error(request, "login_email.html", error, stage="request", next=target, email=email)
    response = await render(request, "login_email.html", stage="code", next=target, email=email)
    remember_return(response, target)
    set_email_login_cookie(response, started.binding, max_age=services.settings.email.login_lifetime)
    return response


async def _finish(
    request: Request,
    services: Services,
    auth: Authenticated | None,
    *,
    token: str | None,
    code: str | None,
    confirmed: bool,
    target: str,
    context: RequestContext,
) -> Response:
    _, outcome = await services.email.complete_email_login(
        token=token,
        code=code,
        binding=request.cookies.get(EMAIL_LOGIN_COOKIE),
        confirmed=confirmed,
        context=context,
        replacing=auth.session if auth else None,
    )
    response = await apply_outcome(services, outcome, target)
    if isinstance(outcome, MfaRequired):
        return response
    response.delete_cookie(EMAIL_LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


@router.post("/login/email/code")
async def email_login_code(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    _enabled(services)
    target = "/account"
    try:
        form = await read_form(request)
        target = safe_next(field(form, "next"))
        return await _finish(
            request,
            services,
            auth,
            token=None,
            code=field(form, "code"),
            confirmed=False,
            target=target,
            context=context,
        )
    except ThresholdError as error:
        return await form_error(request, "login_email.html", error, stage="code", next=target, email="")


@router.get("/login/email/verify")
async def email_login_link(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth, token: str = ""
) -> Response:
    """The emailed link: signs in here if this browser asked for it, else asks for confirmation."""
    _enabled(services)
    try:
        return await _finish(
            request,
            services,
            auth,
            token=token[:128],
            code=None,
            confirmed=False,
            target=recall_return(request),
            context=context,
        )
    except ConfirmationRequired:
        return await render(
            request, "login_email.html", stage="confirm", token=token[:128], next="/account", email=""
        )
    except ThresholdError as error:
        return await form_error(
            request, "login_email.html", error, stage="request", next=recall_return(request), email=""
        )


@router.post("/login/email/verify")
async def email_login_confirm(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    _enabled(services)
    try:
        form = await read_form(request)
        return await _finish(
            request,
            services,
            auth,
            token=field(form, "token"),
            code=None,
            confirmed=True,
            # a link confirmed here was asked for elsewhere, maybe by someone else for their own account:
            # it must never carry this browser into an authorization it started (login CSRF)
            target="/account",
            context=context,
        )
    except ThresholdError as error:
        return await form_error(
            request, "login_email.html", error, stage="request", next="/account", email=""
        )


# --- the development outbox -----------------------------------------------------------------------


@router.get("/dev/outbox")
async def outbox(request: Request, services: ServicesDep) -> Response:
    """Mail kept locally, for development only (404 otherwise: it holds live sign-in links)."""
    if not services.settings.development:
        raise HTTPException(404)
    messages = await services.mail_queue.recent(limit=50)
    return await render(
        request,
        "outbox.html",
        messages=[
            {
                "to": m.to_address,
                "subject": m.subject,
                "at": iso(m.created_at),
                "text": m.text_body,
                "state": "sent"
                if m.sent_at
                else "failed"
                if m.failed_at
                else f"queued ({m.attempts} attempts)",
            }
            for m in messages
        ],
    )
