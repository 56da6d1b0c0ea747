"""Every route and every dependency is a coroutine: FastAPI runs a plain function on a worker thread,
a thread-pool round trip and a GIL hand-off per request (seen in the sign-in's profile)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from threshold.settings import Settings
from threshold.web.app import create_app


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _routes(routes: Sequence[BaseRoute], found: list[APIRoute], extra: list[Callable[..., Any]]) -> None:
    """Every APIRoute, through included routers; their routers' own dependencies into `extra`."""
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        router = getattr(route, "original_router", None)
        if router is not None:
            extra += [depends.dependency for depends in router.dependencies if depends.dependency]
            _routes(router.routes, found, extra)


def _is_coroutine(call: Callable[..., Any]) -> bool:
    """A coroutine function, or an instance whose class's __call__ is one."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def test_no_route_or_dependency_runs_on_the_thread_pool(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(), check_schema=False)
    routes: list[APIRoute] = []
    extra: list[Callable[..., Any]] = []
    _routes(app.routes, routes, extra)
    assert len(routes) > 50
    blocking = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', call)}"
            for route in routes
            for call in _calls(route.dependant)
            if not _is_coroutine(call)
        }
        | {
            f"{route.path}: endpoint {route.endpoint.__qualname__}"
            for route in routes
            if not _is_coroutine(route.endpoint)
        }
    )
    assert blocking == []
