"""OpenTelemetry traces (THRESHOLD_OTEL_ENABLED): each request a server span with its statements (and
Redis commands) as child spans, no code, token, cookie, password or secret in any span, and nothing
imported or instrumented while it is off."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.api.helpers import SESSION_COOKIE, USER_AGENT
from tests.conftest import ISSUER, STRONG_PASSWORD, signup, unique_email
from tests.oidc.helpers import DEFAULT_SCOPE, REDIRECT_URI, pkce, redirected
from threshold.services import Services
from threshold.settings import Settings


def attribute_text(span: ReadableSpan) -> str:
    """Everything a span records, as text: its name, attributes, and its events' attributes."""
    values: list[str] = [span.name]
    values += [f"{k}={v!r}" for k, v in (span.attributes or {}).items()]
    for event in span.events:
        values += [f"{k}={v!r}" for k, v in (event.attributes or {}).items()]
    return "\n".join(values)


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    found = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        found.append(span)
    return found


async def test_a_request_is_a_span_with_its_statements_and_nothing_secret(
    backend: str,
    make_settings: Callable[..., Settings],
    pooled_rsa_keys: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from threshold.web.app import create_app

    # even an operator who asks the instrumentation to record every header gets no credential
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", ".*")
    exporter = InMemorySpanExporter()
    app = create_app(make_settings(otel_enabled=True), span_exporter=exporter)
    secrets: list[str] = [STRONG_PASSWORD]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
            base_url=ISSUER,
            headers={"user-agent": USER_AGENT},
        ) as browser,
    ):
        services: Services = app.state.services
        signed_up = await signup(browser, unique_email("traced"))
        assert signed_up.status_code == 201, signed_up.text
        secrets += [browser.cookies[SESSION_COOKIE], str(browser.headers["X-CSRF-Token"])]

        issued = await services.provider.create_client(
            name="Traced RP",
            redirect_uris=(REDIRECT_URI,),
            post_logout_redirect_uris=(),
            public=False,
            first_party=True,
            grant_types=("authorization_code", "refresh_token"),
            scopes=("openid", "email", "offline_access"),
        )
        assert issued.secret
        client_id, client_secret = issued.client.client_id, issued.secret
        basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        secrets += [client_secret, basic]
        verifier, challenge = pkce()
        params = {
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": DEFAULT_SCOPE,
            "state": "state-of-the-traced-request",
            "nonce": "nonce-of-the-traced-request",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        # as a browser that comes from the application's page (the Referer names it, with its query)
        referer = {"Referer": f"{REDIRECT_URI}?code=referer-code-of-an-earlier-sign-in"}
        code = redirected(await browser.get("/oauth2/authorize", params=params, headers=referer))["code"]
        secrets.append("referer-code-of-an-earlier-sign-in")
        secrets += [code, verifier, params["state"], params["nonce"]]
        exchanged = await browser.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            headers={"Authorization": basic},
        )
        assert exchanged.status_code == 200, exchanged.text
        tokens = exchanged.json()
        secrets += [tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]
        userinfo = await browser.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert userinfo.status_code == 200
    # the lifespan's end shut the provider down: every span is exported

    spans: Sequence[ReadableSpan] = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    servers = {span.name: span for span in spans if span.kind is SpanKind.SERVER}
    assert {
        "POST /api/v1/signup",
        "GET /oauth2/authorize",
        "POST /oauth2/token",
        "GET /oauth2/userinfo",
    } <= set(servers), sorted(servers)

    signup_span = servers["POST /api/v1/signup"]
    children = [s for s in spans if signup_span in ancestors(s, by_id)]
    database = [s for s in children if s.kind is SpanKind.CLIENT and (s.attributes or {}).get("db.system")]
    systems = {(s.attributes or {})["db.system"] for s in database}
    assert systems == ({"sqlite"} if backend == "sqlite" else {"postgresql", "redis"}), systems
    statements = [str((s.attributes or {}).get("db.statement", "")) for s in database]
    assert any("INSERT INTO users" in statement for statement in statements), statements
    if backend == "sqlite":  # the session's INSERT runs on sqlite_fast's connections, in their threads
        assert any("INSERT INTO sessions" in statement for statement in statements), statements
    assert (signup_span.attributes or {}).get("http.status_code") == 201

    # every span belongs to a request: background work (the feed's heartbeat, the workers) starts none
    assert all(s.kind is SpanKind.SERVER or ancestors(s, by_id) for s in spans)

    recorded = "\n".join(attribute_text(span) for span in spans)
    for secret in secrets:
        assert secret not in recorded, f"a span carries a secret: {secret[:8]}..."
    authorize = attribute_text(servers["GET /oauth2/authorize"])
    assert "?" not in authorize and "code_challenge" not in authorize
    assert "http.request.header.user_agent" in recorded  # the headers asked for are recorded...
    assert "cookie" not in recorded.lower()  # ...but no credential


async def test_storage_is_uninstrumented_when_the_app_stops(
    make_settings: Callable[..., Settings], pooled_rsa_keys: None
) -> None:
    import asyncpg
    import redis.asyncio

    from threshold.web.app import create_app

    app = create_app(make_settings(otel_enabled=True), span_exporter=InMemorySpanExporter())
    async with app.router.lifespan_context(app):
        pass
    assert not hasattr(asyncpg.connection.Connection.fetch, "__wrapped__")
    assert not hasattr(redis.asyncio.Redis.execute_command, "__wrapped__")


DISABLED = """
import json, sys
from threshold.settings import Settings
from threshold.web.app import create_app
app = create_app(Settings(issuer="https://auth.example.test", data_dir=sys.argv[1]))
print(json.dumps({
    "modules": sorted(m for m in sys.modules if m.startswith(("opentelemetry", "threshold.web.tracing"))),
    "middleware": [m.cls.__module__ + "." + m.cls.__name__ for m in app.user_middleware],
}))
"""


def test_nothing_is_imported_or_instrumented_when_off(tmp_path: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-c", DISABLED, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = json.loads(result.stdout)
    assert not [
        m for m in loaded["modules"] if m.startswith(("opentelemetry.instrumentation", "threshold.web."))
    ]
    assert not [m for m in loaded["modules"] if m.startswith("opentelemetry.sdk.trace")]
    assert not [m for m in loaded["middleware"] if "opentelemetry" in m or "tracing" in m]
