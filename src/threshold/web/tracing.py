"""OpenTelemetry traces, when Settings.otel_enabled says so (off by default; imported only then).

A request gets a server span from the official ASGI/Starlette instrumentation, and its statements
become child spans: on PostgreSQL from the asyncpg instrumentation (SQLAlchemy's driver and the hot
reads of adapters.sql.pg_fast alike, one span per statement), on SQLite from the SQLAlchemy one and,
for the connections of adapters.sql.sqlite_fast, the sqlite3 one; its Redis commands from the Redis
one. Spans are exported over OTLP/HTTP as the standard OTEL_EXPORTER_OTLP_* variables say
(OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES too).

What a span must not carry, it is never shown:
- the instrumentation of requests sees each request without its query string (authorization codes,
  tokens and `state` travel there) and without the headers of `VEILED_REQUEST_HEADERS`, and each
  response without those of `VEILED_RESPONSE_HEADERS` (`_Veil` outside it takes them away, `_Unveil`
  inside gives them back), whatever OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* ask for;
- statements are recorded without their parameters (asyncpg's `capture_parameters` stays off; the
  SQLAlchemy instrumentation records none), and Redis commands as `COMMAND ? ?` (that instrumentation's
  own sanitising).

Only requests start traces (`_RequestsOnly`): the invalidation feed's heartbeat, the queue workers and
the sweeper query on their own every few seconds and would otherwise each start a trace of one span.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.instrumentation.starlette import StarletteInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threshold import __version__
from threshold.adapters.sql.sqlite_fast import SqliteRunner
from threshold.services import Services

VEILED_REQUEST_HEADERS = frozenset(
    {b"cookie", b"authorization", b"proxy-authorization", b"x-csrf-token", b"referer"}
)
"""Credentials, and the Referer (a page's URL, an application's callback with its code)."""
VEILED_RESPONSE_HEADERS = frozenset({b"set-cookie", b"location"})
"""New sessions, and redirects (an authorization response's code is in its Location)."""
_VEILED = "threshold.veiled"


class Tracing:
    """One process's tracer provider and what it instruments: the app at creation, the storage once
    the services are built, all of it undone at shutdown."""

    def __init__(self, exporter: SpanExporter | None = None) -> None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        attributes: dict[str, str] = {"service.version": __version__}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        ):
            attributes["service.name"] = "threshold"
        self.provider = TracerProvider(
            resource=Resource.create(attributes), sampler=ParentBased(root=_RequestsOnly())
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._instrumented: list[BaseInstrumentor] = []
        self._runner: SqliteRunner | None = None
        self._log_filter = _TraceIds()

    def instrument_app(self, app: Starlette) -> None:
        """The server span of each request; call last in create_app (outermost, as it is added)."""
        app.add_middleware(_Unveil)
        StarletteInstrumentor.instrument_app(app, tracer_provider=self.provider)
        app.add_middleware(_Veil)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._log_filter)

    def instrument_storage(self, services: Services) -> None:
        """Statements and Redis commands as child spans of the request that made them."""
        if services.settings.effective_database_url.startswith("postgresql"):
            self._instrument(AsyncPGInstrumentor(capture_parameters=False))  # type: ignore[no-untyped-call]
        else:
            self._instrument(SQLAlchemyInstrumentor(), engine=services.engine.sync_engine)
            if isinstance(services.runner, SqliteRunner):  # the fast path's own connections
                self._runner = services.runner
                self._runner.instrument = self._traced_sqlite
        if services.redis is not None:
            self._instrument(RedisInstrumentor())

    def _traced_sqlite(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        traced: sqlite3.Connection = SQLite3Instrumentor.instrument_connection(
            conn, tracer_provider=self.provider
        )
        return traced

    def _instrument(self, instrumentor: BaseInstrumentor, **options: Any) -> None:
        # skip_dep_check: the SQLAlchemy instrumentation declares < 2.1, and works with 2.1 (tested)
        instrumentor.instrument(tracer_provider=self.provider, skip_dep_check=True, **options)
        self._instrumented.append(instrumentor)

    def shutdown(self) -> None:
        """Undo the storage instrumentation and send what is still buffered."""
        for instrumentor in reversed(self._instrumented):
            instrumentor.uninstrument()
        self._instrumented.clear()
        if self._runner is not None:
            self._runner.instrument = None
            self._runner = None
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._log_filter)
        self.provider.shutdown()


class _RequestsOnly(Sampler):
    """A trace starts at a request (a server span); background work starts none."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind is SpanKind.SERVER:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "RequestsOnly"


class _TraceIds(logging.Filter):
    """Each log record written inside a traced request names its trace and span (the JSON lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class _Veil:
    """Outside the request instrumentation: the request as it may see it (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        veiled = {
            **scope,
            "query_string": b"",
            "headers": [(name, value) for name, value in headers if name not in VEILED_REQUEST_HEADERS],
            _VEILED: (scope["query_string"], headers),
        }

        async def send_unveiled(message: Message) -> None:
            hidden = message.pop(_VEILED, None)
            if hidden:
                message["headers"] = [*message.get("headers", ()), *hidden]
            await send(message)

        await self.app(veiled, receive, send_unveiled)


class _Unveil:
    """Inside the request instrumentation: the request as it came, and the response as it may see it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        original = scope.get(_VEILED)
        if original is None:
            await self.app(scope, receive, send)
            return
        scope = {k: v for k, v in scope.items() if k != _VEILED}
        scope["query_string"], scope["headers"] = original

        async def send_veiled(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _without_headers(message, VEILED_RESPONSE_HEADERS)
            await send(message)

        await self.app(scope, receive, send_veiled)


def _without_headers(message: Message, names: frozenset[bytes]) -> Message:
    headers: Sequence[tuple[bytes, bytes]] = message.get("headers", ())
    hidden = [(name, value) for name, value in headers if name.lower() in names]
    if not hidden:
        return message
    kept = [(name, value) for name, value in headers if name.lower() not in names]
    veiled: dict[str, Any] = {**message, "headers": kept, _VEILED: hidden}
    return veiled
