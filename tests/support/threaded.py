"""An ASGI application served by uvicorn on loopback in a thread of this process (the tests' peers: an
upstream IdP, relying parties' endpoints, an issuer's JWKS), stopped and started again on the same port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from tests.support.environment import free_port, wait_for


class ThreadedServer:
    def __init__(
        self,
        app: ASGIApp,
        *,
        port: int | None = None,
        lifespan: Literal["auto", "on", "off"] = "off",
        proxy_headers: bool = True,
    ) -> None:
        self.app = app
        self.proxy_headers = proxy_headers
        self.port = port or free_port()
        self.lifespan: Literal["auto", "on", "off"] = lifespan
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan=self.lifespan,
            proxy_headers=self.proxy_headers,
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        wait_for(lambda: server.started, timeout=10, what=f"uvicorn on port {self.port}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None


@contextmanager
def serve(app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "off") -> Iterator[str]:
    """`app` served on a free loopback port for the block; its base URL."""
    server = ThreadedServer(app, lifespan=lifespan).start()
    try:
        yield server.url
    finally:
        server.stop()
