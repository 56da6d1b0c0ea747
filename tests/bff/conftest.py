"""The BFF's tests: a real `threshold serve`, an upstream API that checks Threshold's access tokens with
TokenVerifier, the BFF on uvicorn, and a browser over plain http (cookies carried explicitly: Secure)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.blackbox.conftest import parse_set_cookie
from tests.blackbox.oidc_support import IssuerBrowser
from tests.conftest import STRONG_PASSWORD
from tests.support import Deployment, Server, free_port, make_deployment
from tests.support.threaded import ThreadedServer
from threshold.client import TokenVerifier
from threshold.client.bff import LOGIN_COOKIE, BackendForFrontend, BffConfig


def register_spa(deployment: Deployment, public: str, name: str = "SPA") -> dict[str, Any]:
    made = deployment.cli(
        "clients", "create", "--name", name, "--first-party",
        "--redirect-uri", f"{public}/bff/callback",
        "--post-logout-redirect-uri", f"{public}/",
        "--backchannel-logout-uri", f"{public}/bff/backchannel",
        "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    client: dict[str, Any] = json.loads(made.stdout)
    return client


CALLS = {"X-CSRF": "1"}


def upstream_app(issuer: str) -> Starlette:
    """The SPA's API: it trusts Threshold's access tokens and says whose it got."""
    verifier = TokenVerifier(issuer=issuer, audience=issuer)

    async def whoami(request: Request) -> Response:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        verified = await verifier.averify(token)
        size = request.query_params.get("size")
        if size is not None:  # a large answer, which the BFF streams
            return Response(b"z" * int(size), media_type="application/octet-stream")
        if "sleep" in request.query_params:  # a slow answer
            await asyncio.sleep(float(request.query_params["sleep"]))
        if "gzip" in request.query_params:  # an encoded answer, which must pass through as it is
            return Response(gzip.compress(b"squeezed " * 100), headers={"Content-Encoding": "gzip"})
        answer = JSONResponse(
            {
                "sub": verified.subject,
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "body": (await request.body()).decode(),
                "cookie": request.headers.get("cookie"),
                "csrf": request.headers.get("x-csrf"),
                "forwarded_for": request.headers.get("x-forwarded-for"),
                "real_ip": request.headers.get("x-real-ip"),
                "forwarded": request.headers.get("forwarded"),
                "secret": request.headers.get("x-secret"),
            },
            headers={"Set-Cookie": "upstream=1", "X-Upstream": "yes"},
        )
        answer.raw_headers += [(b"x-repeated", b"one"), (b"x-repeated", b"two")]
        return answer

    return Starlette(routes=[Route("/{path:path}", whoami, methods=["GET", "POST", "PUT", "DELETE"])])


@dataclass
class Stack:
    deployment: Deployment
    threshold: Server
    bff: BackendForFrontend
    bff_server: ThreadedServer
    client_id: str
    client_secret: str
    upstream: str

    @property
    def url(self) -> str:
        return self.bff_server.url


@contextlib.contextmanager
def bff_on(
    deployment: Deployment,
    threshold: Server,
    upstream: str,
    *,
    http_client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
    **config: Any,
) -> Iterator[Stack]:
    """A BFF of its own (its own client registration, port and session store) in front of `upstream`."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    client = register_spa(deployment, public)
    bff = BackendForFrontend(
        BffConfig(
            issuer=threshold.url,
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            upstream=upstream,
            public_url=public,
            **config,
        ),
        http_client=http_client,
        clock=clock,
    )
    server = ThreadedServer(
        bff.app, port=port, proxy_headers=False, lifespan="on"
    ).start()  # as threshold-bff runs
    try:
        yield Stack(
            deployment, threshold, bff, server, client["client_id"], client["client_secret"], upstream
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_deployment(tmp_path_factory.mktemp("bff"), "sqlite") as deployment:
        threshold = deployment.start()
        upstream = ThreadedServer(upstream_app(threshold.url)).start()
        try:
            with bff_on(deployment, threshold, upstream.url + "/v1") as made:
                yield made
        finally:
            upstream.stop()


@dataclass
class SpaBrowser:
    """One browser: signed in at Threshold (its own cookies there) and holding the BFF's cookies."""

    stack: Stack
    http: httpx.Client
    issuer: IssuerBrowser
    cookies: dict[str, str] = field(default_factory=dict)

    def bff(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.http.request(method, self.stack.url + path, headers=headers, **kwargs)
        self.http.cookies.clear()
        for header in response.headers.get_list("set-cookie"):
            name, value, attrs = parse_set_cookie(header)
            assert name.startswith("__Host-") and "secure" in attrs and "httponly" in attrs, header
            assert attrs.get("path") == "/" and "domain" not in attrs and attrs.get("samesite") == "lax"
            if not value or attrs.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def sign_in(
        self, return_to: str = "/app", *, meanwhile: Callable[[dict[str, str]], None] | None = None
    ) -> httpx.Response:
        """/bff/login -> Threshold's authorize (already signed in there) -> /bff/callback; `meanwhile`
        sees the authorization request's parameters before Threshold answers it."""
        started = self.bff("GET", f"/bff/login?returnTo={return_to}")
        assert started.status_code == 303 and LOGIN_COOKIE in self.cookies, started.text
        authorize = urlsplit(started.headers["location"])
        if meanwhile is not None:
            meanwhile({k: v[0] for k, v in parse_qs(authorize.query).items()})
        assert f"{authorize.scheme}://{authorize.netloc}" == self.stack.threshold.url
        answered = self.issuer.get(self.stack.threshold, f"{authorize.path}?{authorize.query}")
        assert answered.status_code == 303, answered.text[:300]
        back = urlsplit(answered.headers["location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == f"{self.stack.url}/bff/callback"
        return self.bff("GET", f"/bff/callback?{back.query}")


@pytest.fixture
def browser(stack: Stack) -> Iterator[SpaBrowser]:
    with httpx.Client(timeout=30) as http:
        issuer = IssuerBrowser(http)
        email = f"spa-{time.time_ns()}@example.com"
        assert issuer.signup(stack.threshold, email, STRONG_PASSWORD).status_code in (200, 201)
        yield SpaBrowser(stack, http, issuer)
