"""Hosted pages for second factors: the MFA step of sign-in, step-up, TOTP, recovery codes, passkeys.

Everything but the WebAuthn ceremonies works without JavaScript; the ceremonies use
static/passkeys.js, which talks to the same /api/v1 endpoints as any front end.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.clock import iso
from threshold.core.errors import PendingLoginMissing, ReauthenticationRequired, ThresholdError
from threshold.core.models import Method
from threshold.services import Services
from threshold.web.api.factors import qr_svg
from threshold.web.deps import (
    Authenticated,
    ContextDep,
    MaybeAuth,
    ServicesDep,
)
from threshold.web.errors import headers_for, status_for
from threshold.web.pages.account import account_action, account_error, reauth_redirect
from threshold.web.pages.common import (
    apply_outcome,
    field,
    read_form,
    redirect,
    redirect_with_session,
    safe_next,
)
from threshold.web.pages.render import render
from threshold.web.security import PENDING_COOKIE

router = APIRouter(include_in_schema=False)

LOGIN = "/login?next=/account"


async def _account_error(
    request: Request, services: Services, auth: Authenticated, error: ThresholdError
) -> Response:
    if isinstance(error, ReauthenticationRequired):
        return reauth_redirect(error)
    return await account_error(request, services, auth, error, slot="security_error")


# --- second step of sign-in -------------------------------------------------------------------------


async def _mfa_page(
    request: Request, services: Services, target: str, *, error: ThresholdError | None = None
) -> Response:
    try:
        pending = await services.signin.pending.load(request.cookies.get(PENDING_COOKIE))
    except PendingLoginMissing:
        return redirect("/login?" + urlencode({"next": target, "expired": "1"}))
    user = await services.users.get(pending.user_id)
    if user is None:
        return redirect("/login")
    methods = await services.factors.second_factors(user)
    return await render(
        request,
        "login_mfa.html",
        next=target,
        methods=methods,
        status=status_for(error) if error else 200,
        headers=headers_for(error) if error else None,
        error=error.page_detail if error else None,
    )


@router.get("/login/restore")
async def login_restore_page(request: Request, services: ServicesDep, next: str | None = None) -> Response:
    """The offer to keep an account being deleted, after a sign-in of it (core.flows.signin); the date is
    the deletion's own (never one a link could put on the page)."""
    try:
        erase_at = await services.signin.restore_offer(request.cookies.get(PENDING_COOKIE))
    except PendingLoginMissing:
        return redirect("/login?" + urlencode({"next": safe_next(next), "expired": "1"}))
    return await render(request, "restore.html", next=safe_next(next), erase_at=iso(erase_at))


@router.post("/login/restore")
async def login_restore_submit(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    target = "/account"
    try:
        form = await read_form(request)
        target = safe_next(field(form, "next"))
        outcome = await services.signin.restore(
            token=request.cookies.get(PENDING_COOKIE),
            context=context,
            replacing=auth.session if auth else None,
        )
    except PendingLoginMissing:
        return redirect("/login?" + urlencode({"next": target, "expired": "1"}))
    except ThresholdError as error:
        return await render(
            request,
            "restore.html",
            next=target,
            erase_at="",
            status=status_for(error),
            error=error.page_detail,
        )
    return await apply_outcome(services, outcome, target)


@router.get("/login/mfa")
async def login_mfa_page(request: Request, services: ServicesDep, next: str | None = None) -> Response:
    return await _mfa_page(request, services, safe_next(next))


@router.post("/login/mfa")
async def login_mfa_submit(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    target = "/account"
    try:
        form = await read_form(request)
        target = safe_next(field(form, "next"))
        outcome = await services.signin.with_code(
            pending_token=request.cookies.get(PENDING_COOKIE),
            method=field(form, "method"),
            code=field(form, "code"),
            context=context,
            replacing=auth.session if auth else None,
        )
    except ThresholdError as error:
        return await _mfa_page(request, services, target, error=error)
    return await apply_outcome(services, outcome, target)


# --- the passkey upgrade prompt -----------------------------------------------------------------------


@router.get("/account/passkey-upgrade")
async def passkey_upgrade(request: Request, auth: MaybeAuth, next: str | None = None) -> Response:
    if auth is None:
        return redirect(LOGIN)
    return await render(request, "passkey_upgrade.html", next=safe_next(next), user=auth.user)


@router.post("/account/passkey-upgrade/dismiss")
async def passkey_upgrade_dismiss(request: Request, services: ServicesDep, auth: MaybeAuth) -> Response:
    if auth is None:
        return redirect(LOGIN)
    form = await read_form(request)
    await services.factors.snooze_passkey_prompt(auth.user)
    return redirect(safe_next(field(form, "next")))


# --- step-up ---------------------------------------------------------------------------------------------


async def _reauth_page(
    request: Request,
    services: Services,
    auth: Authenticated,
    target: str,
    error: ThresholdError | None = None,
    *,
    second_factor: bool = False,
) -> Response:
    methods = await services.stepup.available_methods(auth.user, second_factor=second_factor)
    return await render(
        request,
        "reauthenticate.html",
        next=target,
        methods=methods,
        factor=second_factor,
        user=auth.user,
        status=status_for(error) if error else 200,
        headers=headers_for(error) if error else None,
        error=error.page_detail if error else None,
    )


@router.get("/reauthenticate")
async def reauthenticate_page(
    request: Request,
    services: ServicesDep,
    auth: MaybeAuth,
    next: str | None = None,
    factor: str | None = None,
) -> Response:
    if auth is None:
        return redirect(LOGIN)
    return await _reauth_page(request, services, auth, safe_next(next), second_factor=factor == "1")


@router.post("/reauthenticate")
async def reauthenticate_submit(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    if auth is None:
        return redirect(LOGIN)
    target, second_factor = "/account", False
    try:
        form = await read_form(request)
        target, second_factor = safe_next(field(form, "next")), field(form, "factor") == "1"
        method = field(form, "method")
        secret = field(form, "password") if method == Method.PASSWORD else field(form, "code")
        issued = await services.stepup.reauthenticate(
            auth.user, auth.session, method=method, secret=secret, context=context
        )
    except ThresholdError as error:
        return await _reauth_page(request, services, auth, target, error, second_factor=second_factor)
    return redirect_with_session(target, issued, services)  # a re-authentication gets a new session id


# --- TOTP and recovery codes -------------------------------------------------------------------------------


@router.post("/account/totp/setup")
async def totp_setup(request: Request, services: ServicesDep, auth: MaybeAuth) -> Response:
    if auth is None:
        return redirect(LOGIN)
    try:
        await read_form(request)
        enrollment = await services.factors.start_totp(
            auth.user, auth.session, issuer=services.settings.theme.product_name
        )
    except ThresholdError as error:
        return await _account_error(request, services, auth, error)
    return await render(
        request, "totp_setup.html", secret=enrollment.secret, qr=qr_svg(enrollment.uri), uri=enrollment.uri
    )


@router.post("/account/totp/confirm")
async def totp_confirm(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    if auth is None:
        return redirect(LOGIN)
    try:
        form = await read_form(request)
        added = await services.factors.confirm_totp(
            auth.user, auth.session, code=field(form, "code"), context=context
        )
    except ThresholdError as error:
        if isinstance(error, ReauthenticationRequired):
            return reauth_redirect(error)
        enrollment = await services.factors.unconfirmed_totp(
            auth.user, issuer=services.settings.theme.product_name
        )
        if enrollment is None:
            return await _account_error(request, services, auth, error)
        return await render(
            request,
            "totp_setup.html",
            status=status_for(error),
            headers=headers_for(error),
            error=error.page_detail,
            secret=enrollment.secret,
            qr=qr_svg(enrollment.uri),
            uri=enrollment.uri,
        )
    if added.recovery_codes:
        return await render(request, "recovery_codes.html", codes=added.recovery_codes, first=True)
    return redirect("/account?done=totp")


@router.post("/account/totp/delete")
async def totp_delete(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    async def step(a: Authenticated, _: FormData) -> None:
        await services.factors.remove_totp(a.user, a.session, context=context)

    return await account_action(request, auth, step, done="totp_removed")


@router.post("/account/recovery-codes")
async def recovery_codes(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    if auth is None:
        return redirect(LOGIN)
    try:
        await read_form(request)
        codes = await services.factors.regenerate_recovery_codes(auth.user, auth.session, context=context)
    except ThresholdError as error:
        return await _account_error(request, services, auth, error)
    return await render(request, "recovery_codes.html", codes=codes, first=False)


@router.post("/account/recovery/{request_id}/cancel")
async def recovery_cancel(
    request_id: str, request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    async def step(a: Authenticated, _: FormData) -> None:
        await services.recovery.cancel_recovery(a.user, request_id[:64], context=context)

    return await account_action(request, auth, step, done="recovery_cancelled")


@router.post("/account/passkeys/{passkey_id}/rename")
async def passkey_rename(
    passkey_id: str, request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    async def step(a: Authenticated, form: FormData) -> None:
        await services.factors.rename_passkey(a.user, passkey_id[:64], field(form, "name"), context=context)

    return await account_action(request, auth, step, done="passkey_renamed")


@router.post("/account/passkeys/{passkey_id}/delete")
async def passkey_delete(
    passkey_id: str, request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    async def step(a: Authenticated, _: FormData) -> None:
        await services.factors.remove_passkey(a.user, a.session, passkey_id[:64], context=context)

    return await account_action(request, auth, step, done="passkey_removed")


@router.post("/account/password/remove")
async def password_remove(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    async def step(a: Authenticated, _: FormData) -> None:
        await services.factors.remove_password(a.user, a.session, context=context)

    return await account_action(request, auth, step, done="password_removed")
