"""create_app(settings): the composition root of the web process."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles

from threshold import __version__
from threshold.adapters.sql.migrate import current_revision, head_revision
from threshold.core.errors import DependencyUnavailable
from threshold.core.secrets import digest, equal
from threshold.logs import configure_logging
from threshold.services import Services, build_services
from threshold.settings import LOOPBACK_NAMES, Settings, load_settings
from threshold.web import errors
from threshold.web.access_log import AccessLogMiddleware
from threshold.web.admin.connections import router as admin_connections_router
from threshold.web.admin.orgs import router as admin_orgs_router
from threshold.web.admin.routes import router as admin_router
from threshold.web.admin.scim_tokens import router as admin_scim_tokens_router
from threshold.web.api import v1
from threshold.web.api.email import router as email_router
from threshold.web.api.factors import router as factors_router
from threshold.web.api.orgs import router as orgs_api_router
from threshold.web.console import router as console_router
from threshold.web.hotpath import FastLaneMiddleware
from threshold.web.metrics import TALLIES, MetricsAddressMiddleware, metrics_response, retire_worker_metrics
from threshold.web.oauth import routes as oauth
from threshold.web.pages.account import router as account_pages_router
from threshold.web.pages.email import router as email_pages_router
from threshold.web.pages.invitations import router as invitation_pages_router
from threshold.web.pages.routes import router as pages_router
from threshold.web.pages.security import router as security_pages_router
from threshold.web.pages.sso import router as sso_pages_router
from threshold.web.scim import PREFIX as SCIM_PREFIX
from threshold.web.scim import ScimBodyLimitMiddleware, scim_endpoint
from threshold.web.security import BodyLimitMiddleware, SecurityHeadersMiddleware

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from threshold.web.tracing import Tracing

log = logging.getLogger(__name__)


class SchemaOutOfDate(RuntimeError):
    pass


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    check_schema: bool = True,
    fast_lane: bool = True,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """Build the ASGI app. `services` may be injected (tests); otherwise they are built from settings.

    `fast_lane=False` sends the hot requests through the router too (the parity test compares both).
    `span_exporter` takes the traces instead of OTLP when Settings.otel_enabled (tests).
    """
    tracing = _tracing(span_exporter) if settings.otel_enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = services or build_services(settings)
        if check_schema:
            current, head = await current_revision(built.engine), head_revision()
            if current != head:
                await built.close()
                raise SchemaOutOfDate(
                    f"database schema is at {current or 'nothing'}, expected {head}: run `threshold migrate`"
                )
        app.state.services = built
        if tracing is not None:
            tracing.instrument_storage(built)
        await built.provider.keys.ensure_keys()
        built.start_sweeper()
        built.start_invalidation_listener()
        built.start_mail_worker()
        built.start_logout_worker()
        freeze_startup_heap()
        try:
            yield
        finally:
            gc.unfreeze()
            await built.close()
            if tracing is not None:
                tracing.shutdown()
            retire_worker_metrics()

    app = FastAPI(
        title="Threshold",
        version=__version__,
        summary="Authentication service: sessions, passwords, OpenID Connect.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # Traces come from web.tracing when Settings.otel_enabled (its own provider and spans);
        # FastAPI's own telemetry would otherwise look up the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    if services is not None:
        app.state.services = services
    errors.install(app)

    # Liveness, readiness and metrics first: probes should not walk the whole route table.
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        svc: Services = request.app.state.services
        try:
            checks = await svc.check_ready()
        except DependencyUnavailable:
            return JSONResponse({"status": "unavailable"}, status_code=503, headers={"Retry-After": "2"})
        return JSONResponse({"status": "ready", "checks": checks})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        refused = metrics_refusal(settings, request.headers.get("authorization"))
        return refused or await metrics_response(request.app.state.services)

    # Route matching is a linear walk: the hot machine-facing endpoints (token, sign-in) come first, after
    # the SCIM mount (one prefix test for other requests; an identity provider's sync would otherwise
    # walk every route on each of its thousands of requests).
    app.mount(SCIM_PREFIX, scim_endpoint, name="scim")  # {issuer}/scim/v2 (threshold.scim)
    app.include_router(oauth.router)
    app.include_router(v1.router)
    app.include_router(factors_router)
    app.include_router(email_router)
    app.include_router(orgs_api_router)
    app.include_router(admin_router)
    app.include_router(admin_orgs_router)
    app.include_router(admin_connections_router)
    app.include_router(admin_scim_tokens_router)
    app.include_router(pages_router)
    app.include_router(account_pages_router)
    app.include_router(security_pages_router)
    app.include_router(email_pages_router)
    app.include_router(invitation_pages_router)
    app.include_router(sso_pages_router)
    app.include_router(console_router)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:  # asked for by browsers and tools whatever the pages link to
        location = {"Location": "/static/favicon.svg", "Cache-Control": "public, max-age=86400"}
        return Response(status_code=301, headers=location)

    app.mount(
        "/static",
        StaticFiles(directory=str(resources.files("threshold.web.pages") / "static")),
        name="static",
    )

    if fast_lane:
        app.add_middleware(FastLaneMiddleware, lanes=[*oauth.fast_lane.lanes, *v1.fast_lane.lanes])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ScimBodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    if settings.metrics_address is not None:
        app.add_middleware(MetricsAddressMiddleware, port=settings.metrics_address[1])
    # Added last, so outermost: it sees the fast lane's answers and every header, and times every request.
    app.add_middleware(
        AccessLogMiddleware,
        trusted_proxies=settings.trusted_proxies,
        log_lines=settings.access_log,
        observe=TALLIES.observe,
    )
    if tracing is not None:  # around all of it: the request's span holds everything it did
        tracing.instrument_app(app)
    return app


def freeze_startup_heap() -> None:
    """Move what startup made (modules, routes, models, the shipped password list: some 200,000 objects)
    out of the collector's reach: a full collection otherwise walks all of it, 35-280 ms with the event
    loop stopped, every few seconds under load (measured on the token endpoint at 64 connections). What
    requests make is collected as before."""
    gc.collect()
    gc.freeze()


def _tracing(exporter: SpanExporter | None) -> Tracing:
    """OpenTelemetry, imported only when enabled (the SDK and instrumentations cost their import)."""
    from threshold.web.tracing import Tracing

    return Tracing(exporter)


def metrics_refusal(settings: Settings, authorization: str | None) -> Response | None:
    """Why GET /metrics is not answered to this request, or None when it is (see
    Settings.metrics_token): with a token, only to `Authorization: Bearer <token>` (RFC 6750 section
    2.1), compared in constant time; without one, only on a loopback issuer, and elsewhere it is not
    found, like any path the service does not have."""
    expected = settings.metrics_token
    if expected is None:
        if urlsplit(settings.issuer).hostname in LOOPBACK_NAMES:
            return None
        raise HTTPException(404)
    scheme, _, presented = (authorization or "").partition(" ")
    presented = presented.strip()
    if scheme.lower() == "bearer" and presented and equal(digest(presented), digest(expected)):
        return None
    challenge = 'Bearer realm="metrics"' + (', error="invalid_token"' if presented else "")
    return errors.problem_response(
        401,
        "not_authenticated",
        "GET /metrics needs the bearer token set in THRESHOLD_METRICS_TOKEN.",
        headers={"WWW-Authenticate": challenge},
    )


def app_from_environment() -> FastAPI:
    """uvicorn factory for `threshold serve` workers: settings from THRESHOLD_* and THRESHOLD_CONFIG."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
