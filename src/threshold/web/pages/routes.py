"""Hosted pages. Each handler reads a form, calls the same core flow as the JSON API, and renders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Depends
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from threshold.core.clock import iso
from threshold.core.errors import (
    InvalidRequest,
    PasswordRejected,
    ReauthenticationRequired,
    ThresholdError,
)
from threshold.core.flows.factors import LOW_RECOVERY_CODES
from threshold.core.flows.outcome import MfaRequired, SignInOutcome, VerificationPending
from threshold.core.models import AuditKind, RequestContext
from threshold.services import Services
from threshold.web.deps import Authenticated, get_services, optional_session, request_context
from threshold.web.errors import headers_for, status_for
from threshold.web.pages.render import render
from threshold.web.security import (
    RETURN_COOKIE,
    RETURN_COOKIE_MAX_AGE,
    check_csrf_token,
    check_same_origin,
    clear_pending_cookie,
    clear_session_cookie,
    set_pending_cookie,
    set_session_cookie,
)

router = APIRouter(include_in_schema=False)

ServicesDep = Annotated[Services, Depends(get_services)]
ContextDep = Annotated[RequestContext, Depends(request_context)]
MaybeAuth = Annotated[Authenticated | None, Depends(optional_session)]

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
    return form


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _redirect(target: str) -> RedirectResponse:
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


@router.get("/")
async def home(auth: MaybeAuth) -> Response:
    return _redirect("/account" if auth else "/login")


@router.get("/login")
async def login_page(
    request: Request, auth: MaybeAuth, next: str | None = None, reauth: str | None = None, email: str = ""
) -> Response:
    target = safe_next(next)
    if auth is not None and not reauth:
        return _redirect(target)
    return await render(
        request,
        "login.html",
        next=target,
        email=email[:254],
        reauth=bool(auth),
        expired=request.query_params.get("expired") == "1",
        reset_done=request.query_params.get("reset") == "1",
    )


@router.post("/login")
async def login_submit(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    try:
        form = await read_form(request)
    except ThresholdError as error:
        return await form_error(request, "login.html", error, next="/account", email="")
    target, email = safe_next(field(form, "next")), field(form, "email")
    try:
        outcome = await services.signin.with_password(
            email=email,
            password=field(form, "password"),
            context=context,
            replacing=auth.session if auth else None,
        )
    except ThresholdError as error:
        return await form_error(request, "login.html", error, next=target, email=email)
    return await apply_outcome(services, outcome, target)


async def apply_outcome(services: Services, outcome: SignInOutcome, target: str) -> Response:
    """The hosted pages' surface of a sign-in flow's end (the flow already ended the browser's previous
    session): on to the second step with the pending cookie, or the new session cookie and onward,
    offering a passkey after a sign-in without one (unless snoozed)."""
    if isinstance(outcome, MfaRequired):
        pending = _redirect("/login/mfa?" + urlencode({"next": target}))
        set_pending_cookie(pending, outcome.token, max_age=services.settings.session.pending_login_lifetime)
        return pending
    user, issued = outcome.user, outcome.session
    if await services.factors.needs_enrollment(user):
        response = _redirect("/account")
    elif await services.factors.should_offer_passkey(user):
        response = _redirect("/account/passkey-upgrade?" + urlencode({"next": target}))
    else:
        response = _redirect(target)
    set_session_cookie(response, issued.token, max_age=services.settings.session.absolute_lifetime)
    clear_pending_cookie(response)
    forget_return(response)  # a sign-in ends the trip through the mailbox, if there was one
    return response


@router.get("/signup")
async def signup_page(
    request: Request, services: ServicesDep, auth: MaybeAuth, next: str | None = None
) -> Response:
    target = safe_next(next)
    if auth is not None:
        return _redirect(target)
    return await render(
        request,
        "signup.html",
        next=target,
        email="",
        enabled=services.settings.signup_enabled,
        min_length=services.settings.password.min_length,
    )


@router.post("/signup")
async def signup_submit(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    min_length = services.settings.password.min_length
    try:
        form = await read_form(request)
    except ThresholdError as error:
        return await form_error(
            request, "signup.html", error, next="/account", email="", enabled=True, min_length=min_length
        )
    target, email = safe_next(field(form, "next")), field(form, "email")
    try:
        signed_in = await services.accounts.sign_up(
            email=email,
            password=field(form, "password"),
            context=context,
            replacing=auth.session if auth else None,
        )
    except ThresholdError as error:
        return await form_error(
            request,
            "signup.html",
            error,
            next=target,
            email=email,
            enabled=services.settings.signup_enabled,
            min_length=min_length,
            password_error=isinstance(error, PasswordRejected),
        )
    if isinstance(signed_in, VerificationPending):
        response = await render(request, "check_email.html", reason="verify", email=email)
        remember_return(response, target)
        return response
    redirect = _redirect(target)
    set_session_cookie(redirect, signed_in.session.token, max_age=services.settings.session.absolute_lifetime)
    return redirect


@router.get("/logout")
async def logout_page(request: Request, auth: MaybeAuth) -> Response:
    if auth is None:
        return _redirect("/login")
    return await render(request, "logout.html", user=auth.user)


@router.post("/logout")
async def logout_submit(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    try:
        await read_form(request)
    except ThresholdError as error:
        return await form_error(request, "logout.html", error, user=auth.user if auth else None)
    if auth is not None:
        await services.accounts.log_out(auth.user, auth.session, context=context)
    response = _redirect("/login?logged_out=1")
    clear_session_cookie(response)
    return response


async def _account(
    request: Request,
    services: Services,
    auth: Authenticated,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    sessions = await services.sessions.list_sessions(auth.user.id)
    events = await services.accounts.security_events(auth.user, limit=15)
    consents = await services.provider.list_consents(auth.user)
    factors = await services.factors.status(auth.user)
    recoveries = await services.recovery.pending_recovery(auth.user)
    return await render(
        request,
        "account.html",
        factors=factors,
        passkeys=[
            {
                "id": p.id,
                "name": p.name,
                "created_at": iso(p.created_at),
                "last_used_at": iso(p.last_used_at) if p.last_used_at else None,
                "synced": p.backup_eligible,
                "flagged": p.flagged,
            }
            for p in factors.passkeys
        ],
        low_recovery_codes=factors.has_second_factor and factors.recovery_codes_left <= LOW_RECOVERY_CODES,
        enrollment_required=factors.mfa_required and not factors.has_second_factor,
        recoveries=[
            {"id": r.id, "execute_after": iso(r.execute_after), "by": r.requested_by} for r in recoveries
        ],
        status=status,
        headers=headers,
        user=auth.user,
        sessions=[
            {
                "id": s.public_id,
                "device": s.device_label,
                "ip": s.ip,
                "created_at": iso(s.created_at),
                "last_seen_at": iso(s.last_seen_at),
                "current": s.digest == auth.session.digest,
            }
            for s in sessions
        ],
        events=[{"kind": e.kind.value.replace("_", " "), "at": iso(e.at), "ip": e.ip or ""} for e in events],
        apps=[
            {
                "client_id": consent.client_id,
                "name": client.name if client else consent.client_id,
                "scopes": " ".join(sorted(consent.scopes)),
                "granted_at": iso(consent.granted_at),
            }
            for consent, client in consents
        ],
        token_theft=any(e.kind is AuditKind.REFRESH_TOKEN_REUSE for e in events),
        min_length=services.settings.password.min_length_with_mfa
        if factors.has_second_factor
        else services.settings.password.min_length,
        **context,
    )


AccountStep = Callable[[Authenticated, FormData], Awaitable[object]]


def reauth_redirect(target: str = "/account") -> RedirectResponse:
    """To the step-up page, and back to `target` afterwards."""
    return _redirect("/reauthenticate?" + urlencode({"next": target}))


async def account_action(
    request: Request,
    auth: Authenticated | None,
    step: AccountStep,
    *,
    done: str,
    error_slot: str = "security_error",
) -> Response:
    """A form posted from the account page: a session and the CSRF check are required, then the flow
    call, then back to /account with a notice; on error the page again with the message, or the
    step-up page when a fresh proof is needed."""
    if auth is None:
        return _redirect("/login?next=/account")
    services = get_services(request)
    try:
        form = await read_form(request)
        await step(auth, form)
    except ReauthenticationRequired:
        return reauth_redirect()
    except ThresholdError as error:
        return await _account(
            request,
            services,
            auth,
            status=status_for(error),
            headers=headers_for(error),
            **{error_slot: error.page_detail},
        )
    return _redirect(f"/account?done={done}")


@router.get("/account")
async def account_page(request: Request, services: ServicesDep, auth: MaybeAuth) -> Response:
    if auth is None:
        return _redirect("/login?next=/account")
    notice = {
        "password": "Your password was changed. Other sessions were signed out.",
        "revoked": "The session was signed out.",
        "others": "Every other session was signed out.",
        "app": "The application's access was withdrawn.",
        "passkey": "Your passkey was added.",
        "passkey_removed": "The passkey was removed.",
        "passkey_renamed": "The passkey was renamed.",
        "totp": "Your authenticator app is set up.",
        "totp_removed": "The authenticator app was removed.",
        "recovery_cancelled": "The recovery request was cancelled.",
        "verification_sent": "We sent the confirmation link again.",
        "password_removed": "Your password was removed: sign in with your passkeys.",
        "email_change": "Check your new address for a confirmation link.",
    }.get(request.query_params.get("done", ""))
    return await _account(request, services, auth, notice=notice)


@router.post("/account/sessions/{session_id}/revoke")
async def account_revoke(
    session_id: str, request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    if auth is None:
        return _redirect("/login?next=/account")
    try:
        await read_form(request)
        record = await services.accounts.revoke_session(auth.user, session_id[:64], context=context)
    except ThresholdError as error:
        return await _account(
            request, services, auth, status=status_for(error), session_error=error.page_detail
        )
    if record.digest == auth.session.digest:
        response = _redirect("/login")
        clear_session_cookie(response)
        return response
    return _redirect("/account?done=revoked")


@router.post("/account/sessions/revoke-others")
async def account_revoke_others(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    async def step(a: Authenticated, _: FormData) -> None:
        await services.accounts.revoke_other_sessions(a.user, a.session, context=context)

    return await account_action(request, auth, step, done="others", error_slot="session_error")


@router.post("/account/apps/{client_id}/revoke")
async def account_revoke_app(
    client_id: str, request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    async def step(a: Authenticated, _: FormData) -> None:
        await services.provider.revoke_consent(a.user, client_id[:64], context=context)

    return await account_action(request, auth, step, done="app", error_slot="session_error")


@router.post("/account/password")
async def account_password(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    if auth is None:
        return _redirect("/login?next=/account")
    try:
        form = await read_form(request)
        issued = await services.accounts.change_password(
            user=auth.user,
            current_session=auth.session,
            current_password=field(form, "current_password"),
            new_password=field(form, "new_password"),
            context=context,
        )
    except ReauthenticationRequired:
        return reauth_redirect()
    except ThresholdError as error:
        return await _account(
            request,
            services,
            auth,
            status=status_for(error),
            headers=headers_for(error),
            password_error=error.page_detail,
        )
    response = _redirect("/account?done=password")
    set_session_cookie(response, issued.token, max_age=services.settings.session.absolute_lifetime)
    return response
