"""The hot endpoints' fast lane: session check, forward-auth and the token endpoint without the router.

The first two sit in front of every request of the applications behind Threshold, the token endpoint
in front of every machine client's call, so they skip FastAPI's route matching and dependency solving
(most of their cost once the session and the client come from memory). They call the very same
endpoint functions and the same error renderer as the routed API, which still declares them for the
OpenAPI document; every other request passes straight through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from threshold.core.errors import NotAuthenticated, ThresholdError
from threshold.services import Services
from threshold.web import errors
from threshold.web.api.v1 import forward_auth, get_session
from threshold.web.deps import Authenticated
from threshold.web.oauth.routes import token
from threshold.web.security import SESSION_COOKIE


class _Bodies:
    """The session-check body last rendered for each (record, user) pair the session cache handed out.

    A cache hit returns the very same objects, so the body is found by their identity; the entry keeps
    both alive, so an identity cannot be reused by other objects while it is cached.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._bodies: dict[tuple[int, int], tuple[object, object, bytes]] = {}

    async def body(self, auth: Authenticated) -> bytes:
        key = (id(auth.session), id(auth.user))
        found = self._bodies.get(key)
        if found is not None and found[0] is auth.session and found[1] is auth.user:
            return found[2]
        body = bytes(JSONResponse((await get_session(auth)).model_dump()).body)
        if len(self._bodies) >= self._size:
            self._bodies.clear()
        self._bodies[key] = (auth.session, auth.user, body)
        return body


_bodies = _Bodies()


async def _session(request: Request, auth: Authenticated, services: Services) -> Response:
    return Response(await _bodies.body(auth), media_type="application/json")


async def _forward_auth(request: Request, auth: Authenticated, services: Services) -> Response:
    return await forward_auth(auth, services)


Handler = Callable[[Request, Authenticated, Services], Awaitable[Response]]

HOT: dict[str, Handler] = {"/api/v1/session": _session, "/api/v1/forward-auth": _forward_auth}


class SessionCheckFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] == "/oauth2/token":
            await self._token(scope, receive, send)
            return
        handler = HOT.get(scope["path"]) if scope["method"] == "GET" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        services: Services = scope["app"].state.services
        try:
            found = await services.session_check(request.cookies.get(SESSION_COOKIE, ""))
            if found is None:
                raise NotAuthenticated()
            auth = Authenticated(user=found[1], session=found[0])
            scope.setdefault("state", {})["auth"] = auth
            response = await handler(request, auth, services)
        except ThresholdError as error:
            response = await errors.handle_threshold_error(request, error)
        await response(scope, receive, send)

    @staticmethod
    async def _token(scope: Scope, receive: Receive, send: Send) -> None:
        """The token endpoint (machine clients call it at their own pace): the routed function itself."""
        request = Request(scope, receive)
        try:
            response = await token(request)
        except ThresholdError as error:
            response = await errors.handle_threshold_error(request, error)
        await response(scope, receive, send)
