"""A relying party's back-channel logout endpoint, served by uvicorn on loopback: it checks every logout
token with `threshold.client.BackchannelLogout` (section 2.6) and records what it accepted and when.

It can be taken down and brought back on the same port (`stop()`, `start()`), or made to answer 503
(`failing = True`), as an application that is down or restarting would.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.environment import free_port, wait_for
from tests.support.threaded import ThreadedServer
from threshold.client import BackchannelLogout, LogoutEvent


@dataclass(frozen=True)
class Received:
    event: LogoutEvent
    at: float
    """time.perf_counter() when the token was accepted."""


@dataclass
class LogoutApp:
    issuer: str
    client_id: str = ""
    jwks: dict[str, Any] | None = None
    port: int = field(default_factory=free_port)
    failing: bool = False
    redirect_to: str | None = None
    """Answer every POST with a 307 to this URL (a receiver that moved, or one that tries to bounce the
    sender's request to an address of its choosing)."""
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    attempts: int = 0
    _server: ThreadedServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _receiver: BackchannelLogout | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/backchannel-logout"

    def configure(self, *, client_id: str, jwks: dict[str, Any]) -> None:
        """Once the client is registered: its id is the tokens' audience."""
        self.client_id = client_id
        self._receiver = BackchannelLogout(issuer=self.issuer, client_id=client_id, jwks=jwks)

    async def _endpoint(self, request: Request) -> Response:
        with self._lock:
            self.attempts += 1
        if self.failing:
            return Response("down for maintenance", status_code=503)
        if self.redirect_to is not None:
            return Response(status_code=307, headers={"Location": self.redirect_to})
        assert self._receiver is not None, "configure() the app first"
        endpoint = self._receiver.endpoint(self._accepted)
        response = await endpoint(request)
        if response.status_code != 200:
            with self._lock:
                self.refused.append(bytes(response.body).decode())
        return response

    async def _accepted(self, event: LogoutEvent) -> None:
        with self._lock:
            self.received.append(Received(event, time.perf_counter()))

    def sids(self) -> set[str | None]:
        with self._lock:
            return {r.event.sid for r in self.received}

    def start(self) -> LogoutApp:
        app = Starlette(routes=[Route("/backchannel-logout", self._endpoint, methods=["POST"])])
        self._server = ThreadedServer(app, port=self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def wait_for_sids(self, sids: set[str], *, timeout: float = 5.0) -> float:
        """Seconds until every one of `sids` was received (fails after `timeout`)."""
        started = time.perf_counter()
        wait_for(lambda: sids <= self.sids(), timeout=timeout, what=f"logout tokens for {sorted(sids)}")
        return time.perf_counter() - started
