"""Request-scoped helpers shared by the JSON API and the hosted pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request

from threshold.core.errors import NotAuthenticated
from threshold.core.models import RequestContext, SessionRecord, User
from threshold.core.secrets import digest, new_token
from threshold.services import Services
from threshold.web.access_log import note_user
from threshold.web.i18n import request_language
from threshold.web.metrics import TALLIES
from threshold.web.security import (
    CSRF_HEADER,
    DEVICE_COOKIE,
    SAFE_METHODS,
    SESSION_COOKIE,
    check_csrf_token,
    check_same_origin,
    client_ip,
)


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: User
    session: SessionRecord


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def request_context(request: Request) -> RequestContext:
    """Who is asking: address, user agent and the browser's device cookie (set on first sight)."""
    services = get_services(request)
    request_language(request)  # the language of any mail this request queues
    device = request.cookies.get(DEVICE_COOKIE)
    if not device or len(device) > 64:
        device = new_token()
        request.scope.setdefault("state", {})["new_device"] = device
    return RequestContext(
        ip=client_ip(request, services.settings.trusted_proxies),
        user_agent=request.headers.get("user-agent", "")[:512],
        device=digest("device:" + device),
    )


# Dependencies are coroutines: FastAPI runs a plain function dependency on a worker thread, a round trip
# through the thread pool (and a GIL hand-off) on every request for what is a dictionary lookup.


async def services_dep(request: Request) -> Services:
    """`get_services` as a dependency."""
    return get_services(request)


async def context_dep(request: Request) -> RequestContext:
    """`request_context` as a dependency."""
    return request_context(request)


async def optional_session(request: Request) -> Authenticated | None:
    """The signed-in user for this request's session cookie, looked up once per request."""
    state: dict[str, Any] = request.scope.setdefault("state", {})  # what request.state reads
    if "auth" in state:
        cached: Authenticated | None = state["auth"]
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    auth: Authenticated | None = None
    if token:
        found = await get_services(request).session_check(token)
        if found is not None:
            auth = Authenticated(user=found[1], session=found[0])
            note_user(request.scope, auth.user.id)
        TALLIES.session_checked(valid=auth is not None)
    state["auth"] = auth
    return auth


async def require_session(auth: Authenticated | None = Depends(optional_session)) -> Authenticated:
    if auth is None:
        raise NotAuthenticated()
    return auth


async def csrf_protect(request: Request) -> None:
    """Every state-changing API request: same-origin check; with a session cookie, the CSRF token too."""
    if request.method in SAFE_METHODS:
        return
    check_same_origin(request, get_services(request).settings)
    if SESSION_COOKIE in request.cookies:
        check_csrf_token(request, request.headers.get(CSRF_HEADER))


# The dependencies as parameter types, for every router.
ServicesDep = Annotated[Services, Depends(services_dep)]
ContextDep = Annotated[RequestContext, Depends(context_dep)]
AuthDep = Annotated[Authenticated, Depends(require_session)]
MaybeAuth = Annotated[Authenticated | None, Depends(optional_session)]
