"""/api/v1: thin views. Each one is an input model, a flow call and a response."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from threshold.core.clock import iso
from threshold.core.errors import Forbidden, MfaEnrollmentRequired
from threshold.core.flows.outcome import MfaRequired, RestoreOffered, SignInOutcome, VerificationPending
from threshold.core.i18n import N_
from threshold.core.models import SessionRecord, User
from threshold.core.sessions import IssuedSession
from threshold.core.sso.errors import SsoRequired
from threshold.services import Services
from threshold.web.deps import (
    AuthDep,
    Authenticated,
    ContextDep,
    ServicesDep,
    csrf_protect,
    optional_session,
)
from threshold.web.hotpath import FastLane
from threshold.web.security import (
    PENDING_COOKIE,
    clear_pending_cookie,
    clear_session_cookie,
    csrf_token_for,
    set_csrf_cookie,
    set_pending_cookie,
    set_session_cookie,
)

router = APIRouter(prefix="/api/v1", dependencies=[Depends(csrf_protect)], tags=["api v1"])
fast_lane = FastLane(router)  # the session check and forward-auth, answered without the router too


PROBLEM = {"content": {"application/problem+json": {}}, "description": "Problem details (RFC 9457)"}


class Credentials(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"email": "ada@example.com", "password": "…"}})

    email: StrictStr = Field(min_length=1, max_length=1024)
    password: StrictStr = Field(min_length=1, max_length=4096)


class LoginCredentials(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"email": "ada@example.com", "password": "…"}})

    email: StrictStr = Field(min_length=1, max_length=1024)
    password: StrictStr = Field(
        "",
        max_length=4096,
        description=(
            "Empty for the email-first step: an address whose organization signs in with its identity "
            "provider is then answered `sso_required`."
        ),
    )
    next: StrictStr = Field("", max_length=2048, description="Where the SSO sign-in returns (a local path).")


class SsoRequiredAnswer(BaseModel):
    status: Literal["sso_required"]
    redirect: str = Field(description="Where to send the browser: the organization's identity provider.")


class PasswordChange(BaseModel):
    current_password: StrictStr = Field("", max_length=4096, description="Empty for a passkey-only account.")
    new_password: StrictStr = Field(min_length=1, max_length=4096)


class UserOut(BaseModel):
    id: str
    email: str
    email_verified: bool


class SessionOut(BaseModel):
    id: str
    created_at: str
    last_seen_at: str
    expires_at: str
    aal: str
    amr: list[str]


class SessionInfo(BaseModel):
    user: UserOut
    session: SessionOut


class DeviceSession(SessionOut):
    device: str
    ip: str
    user_agent: str
    current: bool


class SessionList(BaseModel):
    sessions: list[DeviceSession]


class CsrfOut(BaseModel):
    token: str


class RevokedOut(BaseModel):
    revoked: int


def user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, email_verified=user.email_verified)


def session_out(record: SessionRecord) -> SessionOut:
    return SessionOut(
        id=record.public_id,
        created_at=iso(record.created_at),
        last_seen_at=iso(record.last_seen_at),
        expires_at=iso(record.expires_at),
        aal=record.aal.value,
        amr=[m.value for m in record.amr],
    )


def signed_in_response(
    services: Services, user: User, issued: IssuedSession, status: int = 200
) -> JSONResponse:
    body = SessionInfo(user=user_out(user), session=session_out(issued.record))
    response = JSONResponse(body.model_dump(), status_code=status)
    set_session_cookie(response, issued.token, max_age=services.settings.session.absolute_lifetime)
    return response


def apply_outcome(services: Services, outcome: SignInOutcome, status: int = 200) -> JSONResponse:
    """The JSON surface of a sign-in flow's end: the new session's cookie (the flow already ended the
    browser's previous session), or the methods to continue with and the pending-login cookie."""
    if isinstance(outcome, MfaRequired):  # no session until the second factor
        response = JSONResponse({"status": "mfa_required", "methods": outcome.methods})
        set_pending_cookie(response, outcome.token, max_age=services.settings.session.pending_login_lifetime)
        return response
    if isinstance(outcome, RestoreOffered):  # no session: the account is being deleted
        response = JSONResponse({"status": "deletion_scheduled", "erase_at": iso(outcome.erase_at)})
        set_pending_cookie(response, outcome.token, max_age=services.settings.session.pending_login_lifetime)
        return response
    response = signed_in_response(services, outcome.user, outcome.session, status=status)
    clear_pending_cookie(response)
    return response


@router.get("/csrf", response_model=CsrfOut, summary="Get the CSRF token (also set as a cookie)")
async def get_csrf(request: Request) -> Response:
    token, is_new = csrf_token_for(request)
    response = JSONResponse({"token": token})
    if is_new:
        set_csrf_cookie(response, token)
    return response


@router.post(
    "/signup",
    status_code=201,
    response_model=SessionInfo,
    summary="Create an account and sign in",
    responses={409: PROBLEM, 422: PROBLEM, 429: PROBLEM},
)
async def signup(
    body: Credentials,
    services: ServicesDep,
    context: ContextDep,
    current: Annotated[Authenticated | None, Depends(optional_session)],
) -> Response:
    result = await services.accounts.sign_up(
        email=body.email,
        password=body.password,
        context=context,
        replacing=current.session if current else None,
    )
    if isinstance(result, VerificationPending):  # the same answer whether or not the address had an account
        return JSONResponse({"status": "verification_required"}, status_code=202)
    return apply_outcome(services, result, status=201)


@router.post(
    "/login",
    response_model=SessionInfo,
    summary="Sign in with email and password (a NEW session id)",
    responses={
        200: {
            "description": "The session; or `mfa_required`; or `sso_required` for an address whose "
            "organization signs in at its identity provider (no password is checked)",
            "content": {"application/json": {"schema": SsoRequiredAnswer.model_json_schema()}},
        },
        401: PROBLEM,
        429: PROBLEM,
    },
)
async def login(
    body: LoginCredentials,
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    current: Annotated[Authenticated | None, Depends(optional_session)],
) -> Response:
    target = body.next if body.next.startswith("/") and not body.next.startswith("//") else ""
    sso = await services.sso.connections.redirect_for(
        body.email, password_given=bool(body.password), next_url=target
    )
    if sso is not None:  # home-realm discovery: nothing about the password is checked or revealed
        return JSONResponse({"status": "sso_required", "redirect": sso})
    try:
        outcome = await services.signin.with_password(
            email=body.email,
            password=body.password,
            context=context,
            replacing=current.session if current else None,
        )
    except SsoRequired as required:  # the right password of an address that must use SSO
        return JSONResponse({"status": "sso_required", "redirect": required.redirect})
    return apply_outcome(services, outcome)


@fast_lane.signed_in_view
@router.get("/session", response_model=SessionInfo, summary="The current session", responses={401: PROBLEM})
async def get_session(auth: AuthDep) -> SessionInfo:
    return SessionInfo(user=user_out(auth.user), session=session_out(auth.session))


def export_file(document: dict[str, Any]) -> Response:
    """The account's data export as a JSON download (the API and the account page answer the same)."""
    return JSONResponse(
        document,
        headers={
            "Content-Disposition": 'attachment; filename="threshold-account-data.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/account/export",
    summary="Everything Threshold holds about the signed-in person, as JSON",
    description="Needs a recent proof with the account's strongest factor (else 401 "
    "`reauthentication_required`, see POST /api/v1/reauthenticate); a few downloads per day (429).",
    responses={
        200: {"description": "The document (format `threshold.account-export/1`)"},
        401: PROBLEM,
        429: PROBLEM,
    },
)
async def export_account(
    request: Request, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> Response:
    if request.headers.get("sec-fetch-site") == "cross-site":  # a GET that is audited and counted
        raise Forbidden(N_("The export is not started from another site."))
    return export_file(await services.export.export(auth.user, auth.session, context=context))


@router.post(
    "/account/delete",
    status_code=202,
    summary="Delete the signed-in person's account (after a grace period)",
    description="Needs a recent proof with the account's strongest factor (else 401 "
    "`reauthentication_required`). Every session and token ends at once and the account is locked; its data "
    "is erased at `erase_at` unless the person signs in again before then and keeps it "
    "(`deletion_scheduled` at sign-in, then POST /api/v1/account/restore).",
    responses={401: PROBLEM, 409: PROBLEM},
)
async def delete_account(auth: AuthDep, services: ServicesDep, context: ContextDep) -> Response:
    scheduled = await services.deletions.request(auth.user, auth.session, context=context)
    status = "erased" if scheduled.erased else "scheduled"
    response = JSONResponse({"status": status, "erase_at": iso(scheduled.erase_at)}, status_code=202)
    clear_session_cookie(response)
    return response


@router.post(
    "/account/restore",
    response_model=SessionInfo,
    summary="Keep an account whose deletion is pending (after a sign-in answered `deletion_scheduled`)",
    responses={401: PROBLEM},
)
async def restore_account(
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    current: Annotated[Authenticated | None, Depends(optional_session)],
) -> Response:
    outcome = await services.signin.restore(
        token=request.cookies.get(PENDING_COOKIE),
        context=context,
        replacing=current.session if current else None,
    )
    return apply_outcome(services, outcome)


@router.get("/sessions", response_model=SessionList, summary="The user's active sessions")
async def list_sessions(auth: AuthDep, services: ServicesDep) -> SessionList:
    records = await services.sessions.list_sessions(auth.user.id)
    return SessionList(
        sessions=[
            DeviceSession(
                **session_out(record).model_dump(),
                device=record.device_label,
                ip=record.ip,
                user_agent=record.user_agent,
                current=record.digest == auth.session.digest,
            )
            for record in records
        ]
    )


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    summary="Revoke one of the user's sessions",
    responses={404: PROBLEM},
)
async def revoke_session(
    session_id: str, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> Response:
    record = await services.accounts.revoke_session(auth.user, session_id[:64], context=context)
    response = Response(status_code=204)
    if record.digest == auth.session.digest:
        clear_session_cookie(response)
    return response


@router.post("/sessions/revoke-others", response_model=RevokedOut, summary="Revoke every other session")
async def revoke_others(auth: AuthDep, services: ServicesDep, context: ContextDep) -> RevokedOut:
    count = await services.accounts.revoke_other_sessions(auth.user, auth.session, context=context)
    return RevokedOut(revoked=count)


@router.post("/logout", status_code=204, summary="End the current session and clear the cookie")
async def logout(
    services: ServicesDep,
    context: ContextDep,
    current: Annotated[Authenticated | None, Depends(optional_session)],
) -> Response:
    if current is not None:
        await services.accounts.log_out(current.user, current.session, context=context)
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response


@router.post(
    "/password/change",
    response_model=SessionInfo,
    summary="Change the password; every session ends and this browser gets a new one",
    responses={403: PROBLEM, 422: PROBLEM, 429: PROBLEM},
)
async def change_password(
    body: PasswordChange, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> Response:
    issued = await services.accounts.change_password(
        user=auth.user,
        current_session=auth.session,
        current_password=body.current_password,
        new_password=body.new_password,
        context=context,
    )
    return signed_in_response(services, auth.user, issued)


@router.delete(
    "/password",
    status_code=204,
    summary="Remove the password: the account signs in with passkeys only (needs a recent sign-in)",
    responses={401: PROBLEM, 409: PROBLEM},
)
async def remove_password(auth: AuthDep, services: ServicesDep, context: ContextDep) -> Response:
    await services.factors.remove_password(auth.user, auth.session, context=context)
    return Response(status_code=204)


@fast_lane.signed_in
@router.get(
    "/forward-auth",
    summary="For reverse proxies: 200 with user headers, or 401",
    responses={
        200: {
            "description": "Signed in; the user in headers",
            "headers": {
                "X-Threshold-User-Id": {"description": "The account id.", "schema": {"type": "string"}},
                "X-Threshold-User-Email-Encoded": {
                    "description": "The address, UTF-8 percent-encoded (RFC 3986 section 2.1); always sent.",
                    "schema": {"type": "string"},
                },
                "X-Threshold-User-Email": {
                    "description": "The address as it is; only when it is printable ASCII.",
                    "schema": {"type": "string"},
                },
                "X-Threshold-Aal": {"description": "aal1 or aal2.", "schema": {"type": "string"}},
            },
        },
        401: PROBLEM,
    },
)
async def forward_auth(auth: AuthDep, services: ServicesDep) -> Response:
    if await services.factors.needs_enrollment(auth.user):
        raise MfaEnrollmentRequired()
    headers: dict[str, Any] = {
        "X-Threshold-User": auth.user.id,
        "X-Threshold-User-Id": auth.user.id,
        "X-Threshold-Aal": auth.session.aal.value,
        **dict(email_headers(auth.user.email)),
    }
    return Response(status_code=200, headers=headers)


@functools.lru_cache(maxsize=4096)  # forward-auth answers every request of the apps behind the proxy
def email_headers(email: str) -> tuple[tuple[str, str], ...]:
    """The address for the application behind the proxy, as header values every proxy passes on.

    A header value is a sequence of bytes with no agreed charset (RFC 9110 section 5.5), so an address
    outside ASCII (`иван@example.com`) cannot be sent as it is. `X-Threshold-User-Email-Encoded` always
    carries the address as UTF-8 percent-encoded (RFC 3986 section 2.1: every octet except ASCII
    letters, digits, `-._~` and `@` as `%XX`), which decodes losslessly with `decodeURIComponent` or
    `urllib.parse.unquote`; `X-Threshold-User-Email` carries it as it is when it is printable ASCII,
    and is empty otherwise (never a lossy or ambiguous stand-in, and never absent: a proxy that copies
    only the headers of this answer must still overwrite one the client sent).
    """
    plain = email if email.isascii() and email.isprintable() and email == email.strip() else ""
    return (("X-Threshold-User-Email-Encoded", quote(email, safe="@")), ("X-Threshold-User-Email", plain))


class InvitationToken(BaseModel):
    token: StrictStr = Field(min_length=1, max_length=128)


@router.post(
    "/invitations/accept",
    summary="Accept an emailed invitation to an organization (signed in with the invited address)",
    responses={400: PROBLEM, 401: PROBLEM},
)
async def accept_invitation(
    body: InvitationToken, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> dict[str, str]:
    membership = await services.orgs.accept(body.token, user=auth.user, context=context)
    return {"org_id": membership.org_id, "role": membership.role.value}
