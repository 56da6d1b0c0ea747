"""The account page and its actions: sessions, apps, password, the organization switcher; step-up
redirects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from threshold.core.clock import iso
from threshold.core.devices import device_label
from threshold.core.errors import (
    InvalidRequest,
    NotAuthenticated,
    ReauthenticationRequired,
    ThresholdError,
)
from threshold.core.flows.factors import LOW_RECOVERY_CODES
from threshold.core.i18n import N_
from threshold.core.models import AuditKind, Method
from threshold.services import Services
from threshold.web.api.v1 import export_file
from threshold.web.deps import (
    Authenticated,
    ContextDep,
    MaybeAuth,
    ServicesDep,
    get_services,
)
from threshold.web.errors import headers_for, status_for
from threshold.web.pages.common import field, read_form, redirect, redirect_with_session
from threshold.web.pages.render import render
from threshold.web.security import (
    clear_session_cookie,
)

router = APIRouter(include_in_schema=False)


async def account_view(
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
    organizations = [
        {
            "id": org.id,
            "slug": org.slug,
            "name": org.name,
            "role": membership.role.value,
            "selected": org.id == auth.session.org_id,
        }
        for membership, org in await services.orgs.memberships_with_orgs(auth.user)
    ]
    return await render(
        request,
        "account.html",
        organizations=organizations,
        selected_org=next((o for o in organizations if o["selected"]), None),
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
                "device": device_label(s.user_agent),  # a Phrase: the page translates it
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
        console=await services.console.is_operator(auth.user),
        deletion_grace_days=round(services.settings.account.deletion_grace / 86400),
        min_length=services.settings.password.min_length_with_mfa
        if factors.has_second_factor
        else services.settings.password.min_length,
        **context,
    )


async def account_error(
    request: Request, services: Services, auth: Authenticated, error: ThresholdError, *, slot: str
) -> Response:
    """The account page again, with the error's status and headers and its message in `slot` (the
    section of the form that failed)."""
    return await account_view(
        request,
        services,
        auth,
        status=status_for(error),
        headers=headers_for(error),
        **{slot: error.page_detail},
    )


AccountStep = Callable[[Authenticated, FormData], Awaitable[object]]


def reauth_redirect(needed: ReauthenticationRequired, target: str = "/account") -> RedirectResponse:
    """To the step-up page, and back to `target` afterwards; `factor=1` when the password alone will not
    do (changing the second factors of an account that has one)."""
    query = {"next": target}
    if Method.PASSWORD not in needed.methods:
        query["factor"] = "1"
    return redirect("/reauthenticate?" + urlencode(query))


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
        return redirect("/login?next=/account")
    services = get_services(request)
    try:
        form = await read_form(request)
        await step(auth, form)
    except ReauthenticationRequired as needed:
        return reauth_redirect(needed)
    except ThresholdError as error:
        return await account_error(request, services, auth, error, slot=error_slot)
    return redirect(f"/account?done={done}")


@router.get("/account")
async def account_page(request: Request, services: ServicesDep, auth: MaybeAuth) -> Response:
    if auth is None:
        return redirect("/login?next=/account")
    notice = {
        "password": N_("Your password was changed. Other sessions were signed out."),
        "revoked": N_("The session was signed out."),
        "others": N_("Every other session was signed out."),
        "app": N_("The application's access was withdrawn."),
        "passkey": N_("Your passkey was added."),
        "passkey_removed": N_("The passkey was removed."),
        "passkey_renamed": N_("The passkey was renamed."),
        "totp": N_("Your authenticator app is set up."),
        "totp_removed": N_("The authenticator app was removed."),
        "recovery_cancelled": N_("The recovery request was cancelled."),
        "verification_sent": N_("We sent the confirmation link again."),
        "password_removed": N_("Your password was removed: sign in with your passkeys."),
        "email_change": N_("Check your new address for a confirmation link."),
        "organization": N_(
            "The organization was switched. Applications see it the next time they sign you in."
        ),
    }.get(request.query_params.get("done", ""))
    return await account_view(request, services, auth, notice=notice)


@router.post("/account/export")
async def account_export(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    """The "Download your data" button (a form with the CSRF token: a download is audited and counted
    against a daily budget, so no other site may start one): the same document as the API's, as a file."""
    if auth is None:
        return redirect("/login?next=/account")
    try:
        await read_form(request)
        document = await services.export.export(auth.user, auth.session, context=context)
    except ReauthenticationRequired as needed:
        return reauth_redirect(needed, "/account#your-data")
    except ThresholdError as error:
        return await account_error(request, services, auth, error, slot="export_error")
    return export_file(document)


@router.post("/account/delete")
async def account_delete(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    """The "Delete my account" form: after the step-up page when the last proof is not recent enough;
    then signed out, with the date the data goes."""
    if auth is None:
        return redirect("/login?next=/account")
    try:
        form = await read_form(request)
        if field(form, "confirm") != "yes":
            raise InvalidRequest(N_("Tick the box to confirm that you want to delete your account."))
        await services.deletions.request(auth.user, auth.session, context=context)
    except ReauthenticationRequired as needed:
        return reauth_redirect(needed, "/account#delete-account")
    except ThresholdError as error:
        return await account_error(request, services, auth, error, slot="delete_error")
    response = redirect("/login?deleted=1")
    clear_session_cookie(response)
    return response


@router.post("/account/sessions/{session_id}/revoke")
async def account_revoke(
    session_id: str, request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    if auth is None:
        return redirect("/login?next=/account")
    try:
        await read_form(request)
        record = await services.accounts.revoke_session(auth.user, session_id[:64], context=context)
    except ThresholdError as error:
        return await account_view(
            request, services, auth, status=status_for(error), session_error=error.page_detail
        )
    if record.digest == auth.session.digest:
        response = redirect("/login")
        clear_session_cookie(response)
        return response
    return redirect("/account?done=revoked")


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
        return redirect("/login?next=/account")
    try:
        form = await read_form(request)
        issued = await services.accounts.change_password(
            user=auth.user,
            current_session=auth.session,
            current_password=field(form, "current_password"),
            new_password=field(form, "new_password"),
            context=context,
        )
    except ReauthenticationRequired as needed:
        return reauth_redirect(needed)
    except ThresholdError as error:
        return await account_error(request, services, auth, error, slot="password_error")
    return redirect_with_session("/account?done=password", issued, services)


@router.post("/account/organization")
async def account_organization(request: Request, services: ServicesDep, auth: MaybeAuth) -> Response:
    """The organization switcher: the session under a new id with the chosen organization selected."""
    if auth is None:
        return redirect("/login?next=/account")
    try:
        form = await read_form(request)
        issued, _, _ = await services.orgs.select(auth.session, user=auth.user, org=field(form, "org"))
    except NotAuthenticated:
        return redirect("/account")  # switched meanwhile (another tab): its cookie, if this browser's, stands
    except ThresholdError as error:
        return await account_error(request, services, auth, error, slot="organization_error")
    return redirect_with_session("/account?done=organization", issued, services)
