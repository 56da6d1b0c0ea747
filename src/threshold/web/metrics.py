"""The metrics' web side: request latency per route group, the /metrics answer, and the metrics address.

Every request is timed by the outermost layer (web.access_log, outside the fast lane, so the session
check and the token endpoint are counted too) and handed to `RequestMetrics.observe`: one histogram
child per (route group, status class), kept at hand, so a request costs a dictionary look-up and one
observation beyond the timing the access log does anyway.
A route group is a fixed name for a part of the service (`route_group`), never the path itself.

`metrics_response` answers a scrape: it first measures what lives in the shared database (the durable
queues), then renders every metric. With several workers (PROMETHEUS_MULTIPROC_DIR, set by `threshold
serve --workers N`), it adds up the files every worker writes, so any worker answers for all of them.

`MetricsAddressMiddleware` serves the second listening address of `Settings.metrics_listen`: there,
GET /metrics answers without the token and every other request is not found.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from threshold.adapters.metrics import RATE_LIMITED, REQUEST_DURATION, SESSION_CHECKS, record_backlog
from threshold.core.errors import DependencyUnavailable
from threshold.services import Services

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

_EXACT_GROUPS = {
    "/oauth2/token": "oauth_token",
    "/api/v1/session": "session_check",
    "/api/v1/forward-auth": "session_check",
    "/healthz": "health",
    "/readyz": "health",
    "/metrics": "metrics",
    "/favicon.ico": "static",
}
_PREFIX_GROUPS = {
    "api": "api",
    "oauth2": "oauth",
    ".well-known": "oauth",
    "admin": "admin",
    "scim": "scim",
    "sso": "sso",
    "static": "static",
}
ROUTE_GROUPS = frozenset({*_EXACT_GROUPS.values(), *_PREFIX_GROUPS.values(), "pages"})
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

SESSION_VALID = SESSION_CHECKS.labels(result="valid")
SESSION_INVALID = SESSION_CHECKS.labels(result="invalid")


def route_group(path: str) -> str:
    """The route group of a request path: its hot endpoint's group, else its first segment's, else
    `pages` (the hosted pages, and any path the service does not have)."""
    group = _EXACT_GROUPS.get(path)
    if group is None:
        group = _PREFIX_GROUPS.get(path[1:].partition("/")[0], "pages")
    return group


class RequestMetrics:
    """The latency histogram's children by (route group, status class), kept at hand; `observe` is
    what the outermost layer (web.access_log) hands every served request to."""

    def __init__(self) -> None:
        self._durations: dict[tuple[str, int], Histogram] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        group = route_group(path)
        key = (group, status // 100)
        child = self._durations.get(key)
        if child is None:
            child = REQUEST_DURATION.labels(group=group, status=_STATUS_CLASSES.get(key[1], "5xx"))
            self._durations[key] = child
        child.observe(seconds)
        if status == 429:
            RATE_LIMITED.labels(group=group).inc()


async def metrics_response(services: Services) -> Response:
    """Every metric, in the Prometheus text format, after measuring the durable queues."""
    await measure_backlogs(services)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def exposition() -> bytes:
    directory = os.environ.get(MULTIPROCESS_DIR)
    if not directory:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def retire_worker_metrics() -> None:
    """This worker is shutting down: its live gauges (the feed's state) leave the sum of the workers."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    if directory:
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


async def measure_backlogs(services: Services) -> None:
    """The depth and oldest message of each durable queue, from the shared database."""
    now = services.clock.now()
    for name, queue in (("mail", services.mail_queue), ("logout", services.logout_queue)):
        try:
            backlog = await queue.backlog()
        except DependencyUnavailable:
            log.warning("metrics: the %s queue could not be measured (database unavailable)", name)
            continue
        oldest = backlog.oldest_created_at
        record_backlog(name, depth=backlog.depth, oldest_age=0.0 if oldest is None else now - oldest)


class MetricsAddressMiddleware:
    """Requests that arrived on the metrics address (`port`): GET /metrics, without the token; nothing
    else. Every other request passes through."""

    def __init__(self, app: ASGIApp, *, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "http" or server is None or server[1] != self.port:
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/metrics" and scope["method"] == "GET":
            response = await metrics_response(scope["app"].state.services)
        else:
            response = PlainTextResponse("Not Found", status_code=404)
        await response(scope, receive, send)
