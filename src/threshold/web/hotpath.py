"""The hot endpoints' fast lane: a few routes answered without the router.

The session check and forward-auth sit in front of every request of the applications behind Threshold,
the token endpoint in front of every machine client's call, so they skip FastAPI's route matching and
dependency solving (most of their cost once the session and the client come from memory).

A route module declares which of its routes the lane answers, with a `FastLane` decorator on top of
the route's own (`@fast_lane.signed_in` over `@router.get(...)`): the lane takes the route's method and
path and calls the very same endpoint function, after the same session dependencies. Errors are
rendered by the app's own exception handlers, looked up along the MRO as the router does. Every other
request passes straight through. tests/api/test_fast_lane_parity.py sends each lane's requests both
ways and compares the answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from threshold.services import Services
from threshold.web.deps import Authenticated, get_services, optional_session, require_session

Answer = Callable[[Request], Awaitable[Response]]
SignedInAnswer = Callable[[Authenticated, Services], Awaitable[Response]]
SessionView = Callable[[Authenticated], Awaitable[BaseModel]]

_A = TypeVar("_A", bound=Answer)
_S = TypeVar("_S", bound=SignedInAnswer)
_V = TypeVar("_V", bound=SessionView)


@dataclass(frozen=True, slots=True)
class Lane:
    """`method path`, answered by `answer` without the router."""

    method: str
    path: str
    answer: Answer


class FastLane:
    """The routes of one router that the fast lane answers too. Its methods decorate an endpoint above
    the router's decorator (which has registered the route by then) and return it unchanged."""

    def __init__(self, router: APIRouter) -> None:
        self._router = router
        self.lanes: list[Lane] = []

    def plain(self, endpoint: _A) -> _A:
        """An endpoint that takes the request alone (no dependencies): the lane calls it as it is."""
        self._add(endpoint, endpoint)
        return endpoint

    def signed_in(self, endpoint: _S) -> _S:
        """`endpoint(auth, services)` of a route that depends on `require_session` and `get_services`."""
        self._add(endpoint, _signed_in(endpoint))
        return endpoint

    def signed_in_view(self, endpoint: _V) -> _V:
        """`endpoint(auth)` whose JSON depends on the session and its user alone: the lane renders it
        once for each (session, user) pair the session cache hands out."""
        self._add(endpoint, _signed_in(_CachedView(endpoint).answer))
        return endpoint

    def _add(self, endpoint: Callable[..., Any], answer: Answer) -> None:
        routes = [r for r in self._router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint]
        if len(routes) != 1 or "{" in routes[0].path:
            raise ValueError(f"{endpoint.__name__}: not one route of a fixed path on this router")
        route = routes[0]
        self.lanes.extend(Lane(method, route.path, answer) for method in sorted(route.methods or ()))


def _signed_in(answer: SignedInAnswer) -> Answer:
    async def signed_in(request: Request) -> Response:
        auth = await require_session(await optional_session(request))
        return await answer(auth, get_services(request))

    return signed_in


class _CachedView:
    """The body last rendered for each (record, user) pair the session cache handed out.

    A cache hit returns the very same objects, so the body is found by their identity; the entry keeps
    both alive, so an identity cannot be reused by other objects while it is cached.
    """

    def __init__(self, view: SessionView, size: int = 4096) -> None:
        self._view = view
        self._size = size
        self._bodies: dict[tuple[int, int], tuple[object, object, bytes]] = {}

    async def answer(self, auth: Authenticated, services: Services) -> Response:
        key = (id(auth.session), id(auth.user))
        found = self._bodies.get(key)
        if found is not None and found[0] is auth.session and found[1] is auth.user:
            return Response(found[2], media_type="application/json")
        body = bytes(JSONResponse((await self._view(auth)).model_dump()).body)
        if len(self._bodies) >= self._size:
            self._bodies.clear()
        self._bodies[key] = (auth.session, auth.user, body)
        return Response(body, media_type="application/json")


ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def _error_handler(app: Any, error: Exception) -> ErrorHandler | None:
    """The app's handler for `error`, along its MRO, as the router's ExceptionMiddleware finds it (the
    one for Exception itself belongs to the outermost middleware, which the lane is inside of)."""
    handlers: dict[Any, ErrorHandler] = app.exception_handlers
    for cls in type(error).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


class FastLaneMiddleware:
    def __init__(self, app: ASGIApp, lanes: Iterable[Lane]) -> None:
        self.app = app
        self._answers = {(lane.method, lane.path): lane.answer for lane in lanes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self._answers.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await answer(request)
        except Exception as error:
            handler = _error_handler(scope["app"], error)
            if handler is None:
                raise
            response = await handler(request, error)
        await response(scope, receive, send)
