"""Hosted pages. Each handler reads a form, calls the same core flow as the JSON API, and renders."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.errors import (
    InvalidRequest,
    PasswordRejected,
    ThresholdError,
)
from threshold.core.flows.outcome import VerificationPending
from threshold.core.i18n import N_
from threshold.core.sso.errors import ConnectionNotFound, SsoRequired
from threshold.web.deps import (
    ContextDep,
    MaybeAuth,
    ServicesDep,
)
from threshold.web.errors import headers_for, status_for
from threshold.web.i18n import remember_language
from threshold.web.pages.common import (
    apply_outcome,
    field,
    form_error,
    read_form,
    redirect,
    remember_return,
    safe_next,
)
from threshold.web.pages.render import error_page, render
from threshold.web.security import (
    clear_session_cookie,
    set_session_cookie,
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(auth: MaybeAuth) -> Response:
    return redirect("/account" if auth else "/login")


def _same_origin_path(request: Request, issuer: str) -> str:
    """The Referer's path and query when it is this service's own origin; `/` otherwise."""
    try:
        ours, theirs = urlsplit(issuer), urlsplit(request.headers.get("referer", "")[:2048])
    except ValueError:  # not a URL ("https://[")
        return "/"
    if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
        return "/"
    return f"{theirs.path}?{theirs.query}" if theirs.query else theirs.path


@router.post("/language")
async def choose_language(request: Request, services: ServicesDep) -> Response:
    """The language picker: remembers the choice in `threshold_lang` and goes back to the page it was
    on (the Referer, which the pages' same-origin referrer policy sends to their own origin; the form
    carries no path of its own, so a page shows nothing of where it is)."""
    try:
        form = await read_form(request)
        chosen = services.catalogues.choose([field(form, "lang")])
        if chosen is None:
            raise InvalidRequest(N_("This language is not offered."))
    except ThresholdError as error:
        return await error_page(request, status_for(error), error.page_detail, headers=headers_for(error))
    response = redirect(safe_next(_same_origin_path(request, services.settings.issuer), "/"))
    remember_language(response, chosen)
    return response


@router.get("/login")
async def login_page(
    request: Request, auth: MaybeAuth, next: str | None = None, reauth: str | None = None, email: str = ""
) -> Response:
    target = safe_next(next)
    if auth is not None and not reauth:
        return redirect(target)
    return await render(
        request,
        "login.html",
        next=target,
        email=email[:254],
        reauth=bool(auth),
        expired=request.query_params.get("expired") == "1",
        reset_done=request.query_params.get("reset") == "1",
        deleted=request.query_params.get("deleted") == "1",
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
    password = "" if field(form, "sso") else field(form, "password")
    try:
        sso = await services.sso.connections.redirect_for(
            email, password_given=bool(password), next_url=target
        )
        if sso is not None:  # home-realm discovery, before (and instead of) any password check
            return await continue_to_idp(request, sso)
        if field(form, "sso"):
            raise ConnectionNotFound(N_("No organization signs in this address with single sign-on."))
        outcome = await services.signin.with_password(
            email=email,
            password=password,
            context=context,
            replacing=auth.session if auth else None,
        )
    except SsoRequired as required:
        return await continue_to_idp(request, required.redirect)
    except ThresholdError as error:
        return await form_error(request, "login.html", error, next=target, email=email)
    return await apply_outcome(services, outcome, target)


async def continue_to_idp(request: Request, start: str) -> Response:
    """On to the organization's IdP from the sign-in form: a page that moves on by itself, not a 303.

    The form's page allows `form-action 'self'` only, and browsers hold every redirect that follows a
    form submission to it: a 303 chain ending at the IdP's origin would be blocked. Loading this page
    ends the submission; its refresh (or its link, where refreshes are turned off) is a new navigation."""
    return await render(request, "sso_continue.html", target=start)


@router.get("/signup")
async def signup_page(
    request: Request, services: ServicesDep, auth: MaybeAuth, next: str | None = None
) -> Response:
    target = safe_next(next)
    if auth is not None:
        return redirect(target)
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
        check = await render(request, "check_email.html", reason="verify", email=email)
        remember_return(check, target)
        return check
    response = redirect(target)
    set_session_cookie(response, signed_in.session.token, max_age=services.settings.session.absolute_lifetime)
    return response


@router.get("/logout")
async def logout_page(request: Request, auth: MaybeAuth) -> Response:
    if auth is None:
        return redirect("/login")
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
    response = redirect("/login?logged_out=1")
    clear_session_cookie(response)
    return response
