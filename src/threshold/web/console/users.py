"""The console's start page, accounts (search, detail, and what an operator does to one) and sessions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.clock import iso
from threshold.core.console import PAGE_SIZE, AuditQuery, OperatorAccount
from threshold.core.devices import device_label
from threshold.core.errors import InvalidRequest, ThresholdError, UserNotFound
from threshold.core.i18n import N_
from threshold.core.models import User
from threshold.services import Services
from threshold.web.console.access import Operator, change, done, page, read
from threshold.web.deps import get_services
from threshold.web.errors import headers_for, status_for
from threshold.web.pages.common import field

router = APIRouter(prefix="/admin", include_in_schema=False)

MAX_QUERY = 320
MAX_RECOVERY_WAIT_HOURS = 30 * 24


def user_row(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "verified": user.email_verified,
        "disabled": user.disabled,
        "mfa_required": user.mfa_required,
        "created_at": iso(user.created_at),
    }


def event_row(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind.value,
        "at": iso(event.at),
        "user_id": event.user_id,
        "ip": event.ip or "",
        "detail": " ".join(f"{k}={v}" for k, v in sorted(event.detail.items())),
    }


@router.get("/")
async def overview(request: Request) -> Response:
    async def work(operator: Operator) -> Response:
        services = get_services(request)
        keys = await services.provider.keys.keys()
        recent = await services.console.audit_page(AuditQuery(), limit=10)
        grants = await services.console.grants()
        holders = {g.user_id: await services.users.get(g.user_id) for g in grants}
        return await page(
            request,
            "console/overview.html",
            operator,
            section="overview",
            keys=[{"kid": k.kid, "alg": k.alg, "state": k.state.value} for k in keys],
            events=[event_row(e) for e in recent],
            operators=[
                {
                    "id": g.user_id,
                    "email": (holder.email if (holder := holders[g.user_id]) else g.user_id),
                    "since": iso(g.granted_at),
                    "by": g.granted_by,
                }
                for g in grants
            ],
        )

    return await read(request, work)


@router.get("")
async def no_slash() -> Response:
    from threshold.web.pages.common import redirect

    return redirect("/admin/")


@router.get("/users")
async def users(request: Request, q: str = "", after: str | None = None) -> Response:
    async def work(operator: Operator) -> Response:
        services = get_services(request)
        query = q.strip()[:MAX_QUERY]
        rows: list[User] = []
        by_id = await services.users.get(query) if query and len(query) <= 64 else None
        if by_id is not None:
            rows, more = [by_id], False
        else:
            found = list(await services.console.users_page(prefix=query.lower(), after=after))
            more = len(found) > PAGE_SIZE
            rows = found[:PAGE_SIZE]
        next_page = (
            "/admin/users?"
            + urlencode({**({"q": query} if query else {}), "after": rows[-1].email_normalized})
            if more
            else None
        )
        # htmx swaps in the results alone; restoring history (Back) it swaps the answer into <body>
        partial = (
            request.headers.get("hx-request") == "true"
            and "hx-history-restore-request" not in request.headers
        )
        return await page(
            request,
            "console/users_results.html" if partial else "console/users.html",
            operator,
            section="users",
            q=query,
            users=[user_row(u) for u in rows],
            next_page=next_page,
            paged=after is not None,
            headers={"Vary": "HX-Request"},
        )

    return await read(request, work)


async def _account(services: Services, user_id: str) -> User:
    user = await services.users.get(user_id[:64])
    if user is None:
        raise UserNotFound()
    return user


async def _user_view(request: Request, operator: Operator, user: User, **extra: Any) -> Response:
    services = get_services(request)
    factors = await services.factors.status(user)
    sessions = await services.sessions.list_sessions(user.id)
    events = await services.console.audit_page(AuditQuery(user_id=user.id), limit=20)
    memberships = await services.orgs.memberships_with_orgs(user)
    recoveries = await services.recovery.pending_recovery(user)
    return await page(
        request,
        "console/user.html",
        operator,
        section="users",
        user=user_row(user),
        is_operator=await services.console.is_operator(user),
        factors={
            "password": factors.has_password,
            "totp": factors.totp,
            "passkeys": [
                {"name": p.name, "created_at": iso(p.created_at), "synced": p.backup_eligible}
                for p in factors.passkeys
            ],
            "recovery_codes_left": factors.recovery_codes_left,
        },
        sessions=[
            {
                "id": s.public_id,
                "device": device_label(s.user_agent),  # a Phrase: the page translates it
                "ip": s.ip,
                "aal": s.aal.value,
                "created_at": iso(s.created_at),
                "last_seen_at": iso(s.last_seen_at),
                "current": s.digest == operator.session.digest,
            }
            for s in sessions
        ],
        organizations=[
            {"id": org.id, "slug": org.slug, "name": org.name, "role": m.role.value} for m, org in memberships
        ],
        recoveries=[
            {"id": r.id, "execute_after": iso(r.execute_after), "by": r.requested_by} for r in recoveries
        ],
        recovery_wait_hours=round(services.settings.mfa.recovery_wait / 3600, 1),
        events=[event_row(e) for e in events],
        **extra,
    )


@router.get("/users/{user_id}")
async def user_detail(request: Request, user_id: str) -> Response:
    async def work(operator: Operator) -> Response:
        return await _user_view(request, operator, await _account(get_services(request), user_id))

    return await read(request, work)


UserAct = Callable[[Services, Operator, User, FormData], Awaitable[str]]


def _user_change(request: Request, user_id: str, act: UserAct) -> Awaitable[Response]:
    """A POST on an account's page: `act(services, operator, user, form)` names its notice."""
    target = f"/admin/users/{user_id[:64]}"

    async def work(operator: Operator, form: FormData) -> Response:
        services = get_services(request)
        user = await _account(services, user_id)
        what: str = await act(services, operator, user, form)
        return done(target, what)

    async def on_error(operator: Operator, error: ThresholdError) -> Response:
        services = get_services(request)
        user = await _account(services, user_id)
        return await _user_view(
            request,
            operator,
            user,
            error=error.page_detail,
            status=status_for(error),
            headers=headers_for(error),
        )

    return change(request, work, back=target, on_error=on_error)


@router.post("/users/{user_id}/disable")
async def disable(request: Request, user_id: str) -> Response:
    async def act(services: Services, operator: Operator, user: User, form: FormData) -> str:
        if user.id == operator.user.id:
            raise InvalidRequest(N_("You can't disable your own account from the console."))
        if await services.console.is_operator(user):
            raise OperatorAccount()
        await services.accounts.set_disabled(user, disabled=True, context=operator.context)
        return "disabled"

    return await _user_change(request, user_id, act)


@router.post("/users/{user_id}/enable")
async def enable(request: Request, user_id: str) -> Response:
    async def act(services: Services, operator: Operator, user: User, form: FormData) -> str:
        await services.accounts.set_disabled(user, disabled=False, context=operator.context)
        return "enabled"

    return await _user_change(request, user_id, act)


@router.post("/users/{user_id}/sessions/end-all")
async def end_all_sessions(request: Request, user_id: str) -> Response:
    async def act(services: Services, operator: Operator, user: User, form: FormData) -> str:
        await services.accounts.revoke_user_sessions(user, context=operator.context)
        return "sessions_ended"

    return await _user_change(request, user_id, act)


@router.post("/users/{user_id}/sessions/{session_id}/end")
async def end_session(request: Request, user_id: str, session_id: str) -> Response:
    async def act(services: Services, operator: Operator, user: User, form: FormData) -> str:
        await services.accounts.revoke_session(user, session_id[:64], context=operator.context)
        return "session_ended"

    return await _user_change(request, user_id, act)


@router.post("/users/{user_id}/mfa")
async def mfa_policy(request: Request, user_id: str) -> Response:
    async def act(services: Services, operator: Operator, user: User, form: FormData) -> str:
        required = field(form, "required")
        if required not in ("on", "off"):
            raise InvalidRequest(N_("Choose whether a second factor is required."))
        await services.accounts.set_mfa_required(user, required=required == "on", context=operator.context)
        return "mfa_required" if required == "on" else "mfa_optional"

    return await _user_change(request, user_id, act)


@router.post("/users/{user_id}/recovery")
async def start_recovery(request: Request, user_id: str) -> Response:
    async def act(services: Services, operator: Operator, user: User, form: FormData) -> str:
        if await services.console.is_operator(user):
            raise OperatorAccount()
        least = services.settings.mfa.recovery_wait / 3600  # shorter waits are the CLI's (a stolen session)
        text = field(form, "wait_hours").strip()
        try:
            hours = float(text) if text else None
        except ValueError:
            hours = -1.0
        if hours is not None and not least <= hours <= MAX_RECOVERY_WAIT_HOURS:
            raise InvalidRequest(f"The waiting period is {least:g} to {MAX_RECOVERY_WAIT_HOURS} hours.")
        await services.recovery.request_recovery(
            user,
            requested_by="an operator",  # shown to the person; the audit event names the operator
            wait=None if hours is None else int(hours * 3600),
            context=operator.context,
        )
        return "recovery_started"

    return await _user_change(request, user_id, act)


@router.post("/users/{user_id}/recovery/{request_id}/cancel")
async def cancel_recovery(request: Request, user_id: str, request_id: str) -> Response:
    async def act(services: Services, operator: Operator, user: User, form: FormData) -> str:
        await services.recovery.cancel_recovery(user, request_id[:64], context=operator.context)
        return "recovery_cancelled"

    return await _user_change(request, user_id, act)
