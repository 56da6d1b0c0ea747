"""The metrics' web side: request latency per route group, the /metrics answer, and the metrics address.

Every request is timed by the outermost layer (web.access_log, outside the fast lane, so the session
check and the token endpoint are counted too) and handed to `TALLIES.observe`, which tallies it by
(route group, status class) in plain numbers and adds the tallies to the metrics once a second and
before a scrape (`RequestTallies`): the hot path pays a bisection and a few additions. A route group is a
fixed name for a part of the service (`route_group`), never the path itself.

`metrics_response` answers a scrape: it first measures what lives in the shared database (the durable
queues), then renders every metric. With several workers (PROMETHEUS_MULTIPROC_DIR, set by `threshold
serve --workers N`), it adds up the files every worker writes, so any worker answers for all of them.

`MetricsAddressMiddleware` serves the second listening address of `Settings.metrics_listen`: there,
GET /metrics answers without the token and every other request is not found.
"""

from __future__ import annotations

import asyncio
import logging
import os
from bisect import bisect_left
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from threshold.adapters.metrics import (
    RATE_LIMITED,
    REQUEST_BUCKETS,
    REQUEST_DURATION,
    SESSION_CHECKS,
    BatchedHistogram,
    record_backlog,
)
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

FLUSH_AFTER = 1.0
"""Seconds at most between a request and its counts in the metrics (RequestTallies)."""


def route_group(path: str) -> str:
    """The route group of a request path: its hot endpoint's group, else its first segment's, else
    `pages` (the hosted pages, and any path the service does not have)."""
    group = _EXACT_GROUPS.get(path)
    if group is None:
        group = _PREFIX_GROUPS.get(path[1:].partition("/")[0], "pages")
    return group


@dataclass(slots=True)
class _Tally:
    """One (route group, status class): its histogram child, and what was seen since the last flush."""

    histogram: BatchedHistogram
    rate_limited: Counter
    counts: list[int]
    total: float = 0.0
    refused: int = 0


class RequestTallies:
    """What every served request adds to the metrics, tallied in plain numbers of this process and added
    to them at most FLUSH_AFTER seconds later, and before a scrape this process answers.

    Through prometheus_client a histogram observation takes two locks, about 0.6 us (with several
    workers it also writes two memory-mapped values: about 1.8 us), and a counter's one; a tally is a
    bisection and a few additions (about 0.25 us), and the metrics pay once a second.
    """

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self._sessions = [0, 0]  # valid, invalid
        self._flush_pending = False

    def observe(self, path: str, status: int, seconds: float) -> None:
        """A served request (what the outermost layer, web.access_log, hands each one to)."""
        key = (route_group(path), status // 100)
        tally = self._tallies.get(key) or self._new_tally(key)
        tally.counts[bisect_left(REQUEST_BUCKETS, seconds)] += 1
        tally.total += seconds
        if status == 429:
            tally.refused += 1
        if not self._flush_pending:
            self._flush_soon()

    def session_checked(self, *, valid: bool) -> None:
        """A session cookie checked (web.deps)."""
        self._sessions[0 if valid else 1] += 1
        if not self._flush_pending:
            self._flush_soon()

    def flush(self) -> None:
        """Add what was tallied to the metrics."""
        self._flush_pending = False
        for tally in self._tallies.values():
            if any(tally.counts):
                tally.histogram.add(tally.counts, tally.total)
                if tally.refused:
                    tally.rate_limited.inc(tally.refused)
                tally.counts[:] = [0] * len(tally.counts)
                tally.total, tally.refused = 0.0, 0
        valid, invalid = self._sessions
        if valid:
            SESSION_CHECKS.labels(result="valid").inc(valid)
        if invalid:
            SESSION_CHECKS.labels(result="invalid").inc(invalid)
        self._sessions = [0, 0]

    def _flush_soon(self) -> None:
        """Once a second at most. A scrape flushes at once too (and so, in the tests, whose every test
        runs a loop of its own, after a loop closed with a flush still pending)."""
        self._flush_pending = True
        asyncio.get_running_loop().call_later(FLUSH_AFTER, self.flush)

    def _new_tally(self, key: tuple[str, int]) -> _Tally:
        group, status_class = key
        tally = _Tally(
            histogram=REQUEST_DURATION.labels(group=group, status=_STATUS_CLASSES.get(status_class, "5xx")),
            rate_limited=RATE_LIMITED.labels(group=group),
            counts=[0] * len(REQUEST_BUCKETS),
        )
        self._tallies[key] = tally
        return tally


TALLIES = RequestTallies()
"""This process's tallies (the metrics themselves are process-wide too)."""


async def metrics_response(services: Services) -> Response:
    """Every metric, in the Prometheus text format, after measuring the durable queues (and adding
    this process's tallies: another worker's are at most FLUSH_AFTER seconds behind)."""
    TALLIES.flush()
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
    """This worker is shutting down: its last tallies are added, and its live gauges (the feed's state)
    leave the sum of the workers."""
    TALLIES.flush()
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
