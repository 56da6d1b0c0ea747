"""An application's endpoint for security event tokens (RFC 8417 SETs pushed as RFC 8935 says), served by
uvicorn on loopback. It verifies each one with Authlib's JOSE (not the library Threshold signs with)
against the issuer's published keys, answers 202 as RFC 8935 section 2.2 asks, and records the events.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from authlib.deprecate import AuthlibDeprecationWarning  # its import installs an "always" filter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.environment import free_port, wait_for
from tests.support.threaded import ThreadedServer

with warnings.catch_warnings():  # Authlib marks its JOSE deprecated in favour of joserfc, our signer
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import JoseError

ALGORITHMS = ["EdDSA", "ES256", "RS256"]


@dataclass
class EventApp:
    issuer: str
    client_id: str = ""
    jwks: dict[str, Any] | None = None
    port: int = field(default_factory=free_port)
    received: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    """(header, claims) of each verified token."""
    refused: list[str] = field(default_factory=list)
    _server: ThreadedServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/security-events"

    def configure(self, *, client_id: str, jwks: dict[str, Any]) -> None:
        self.client_id = client_id
        self.jwks = jwks

    def _verified(self, token: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self.jwks is not None, "configure() the app first"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AuthlibDeprecationWarning)
            return self._decode(token)

    def _decode(self, token: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self.jwks is not None
        keys = JsonWebKey.import_key_set(self.jwks)
        claims = JsonWebToken(ALGORITHMS).decode(
            token,
            keys,
            claims_options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
            },
        )
        claims.validate()
        return dict(claims.header), dict(claims)

    async def _endpoint(self, request: Request) -> Response:
        if request.headers.get("content-type") != "application/secevent+jwt":
            with self._lock:
                self.refused.append(f"content-type {request.headers.get('content-type')}")
            return JSONResponse({"err": "invalid_request"}, status_code=400)
        try:
            header, claims = self._verified(await request.body())
        except (JoseError, ValueError) as error:
            with self._lock:
                self.refused.append(repr(error))
            return JSONResponse({"err": "invalid_key"}, status_code=400)
        with self._lock:
            self.received.append((header, claims))
        return Response(status_code=202)

    def start(self) -> EventApp:
        app = Starlette(routes=[Route("/security-events", self._endpoint, methods=["POST"])])
        self._server = ThreadedServer(app, port=self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def wait_for(self, count: int, *, timeout: float = 10.0) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        def enough() -> bool:
            with self._lock:
                return len(self.received) >= count

        wait_for(enough, timeout=timeout, what=f"{count} security event token(s)")
        with self._lock:
            return list(self.received)
