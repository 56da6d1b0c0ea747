"""One access-log line per request, and the request id that ties the line to what the client saw.

The line leaves the query string out (authorization codes, tokens and `state` travel in it), names
the client by the trusted-proxy rule of `security.client_ip`, and the user when the request's session
or token named one (`note_user`):

    GET /api/v1/session 200 0.4ms rid=5f0c2a9e1b7d4c38 ip=198.51.100.7 user=01J9Z3...

The same values go with the record as structured fields (`fields`), which the JSON log format writes
out one by one (threshold.logs). Registered outside every other middleware, so the requests the
hot-path fast lane answers are logged too; the same timing feeds the latency metrics (`observe`), so
that a request pays for one layer, not two. With the `threshold.access` logger disabled, a request
costs its request id and its observation.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from urllib.parse import quote

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threshold.settings import IPNetwork
from threshold.web.security import client_ip

log = logging.getLogger("threshold.access")

REQUEST_ID_HEADER = b"x-request-id"
USER_STATE = "threshold.user_id"
_CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
MAX_LOGGED_PATH = 512


def request_id_for(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The client's X-Request-Id when it is short and safe to log; otherwise a new random one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _CLIENT_REQUEST_ID.fullmatch(value):
                return value
            break
    return secrets.token_hex(8).encode()


def loggable_path(path: str) -> str:
    """The (decoded) path as one log field: no spaces or control characters, at most MAX_LOGGED_PATH."""
    if not (path.isascii() and path.isprintable() and " " not in path):
        path = quote(path, safe="/!$&'()*+,;=:@-._~")
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "..."


def note_user(scope: Scope, user_id: str) -> None:
    """The user this request acts for, once its session or token is known: its access-log line says so."""
    scope.setdefault("state", {})[USER_STATE] = user_id


Observe = Callable[[str, int, float], None]
"""What a served request is handed to: its path, status and duration in seconds (the metrics)."""


class AccessLogMiddleware:
    """The outermost layer: the request id, the access-log line, and each served request handed to
    `observe` (web.metrics), all from one timing. `log_lines=False` (Settings.access_log) leaves only
    `observe`."""

    def __init__(
        self,
        app: ASGIApp,
        trusted_proxies: Iterable[IPNetwork],
        *,
        log_lines: bool = True,
        observe: Observe | None = None,
    ) -> None:
        self.app = app
        self.trusted_proxies = tuple(trusted_proxies)
        self.log_lines = log_lines
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope["headers"]) if self.log_lines else None
        logged = request_id is not None and log.isEnabledFor(logging.INFO)
        state: dict[str, object] = scope.setdefault("state", {})  # shared with every layer inside
        started = time.perf_counter()
        status = 0  # none yet; none at all when the client goes away first

        async def send_noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if request_id is not None:
                    message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_noted)
        except Exception:
            status = status or 500  # what the server-error layer outside answers
            raise
        finally:
            seconds = time.perf_counter() - started
            if status and self.observe is not None:
                self.observe(scope["path"], status, seconds)
            if logged:
                assert request_id is not None
                self._log(scope, status, seconds, request_id, state.get(USER_STATE))

    def _log(self, scope: Scope, status: int, seconds: float, request_id: bytes, user_id: object) -> None:
        fields: dict[str, object] = {
            "method": scope["method"],
            "path": loggable_path(scope["path"]),
            "status": status or None,
            "duration_ms": round(seconds * 1000, 1),
            "request_id": request_id.decode("ascii"),
            "client_ip": client_ip(Request(scope), self.trusted_proxies),
        }
        if isinstance(user_id, str):
            fields["user_id"] = user_id
        log.info(
            "%s %s %s %.1fms rid=%s ip=%s%s",
            fields["method"],
            fields["path"],
            status or "-",
            fields["duration_ms"],
            fields["request_id"],
            fields["client_ip"],
            f" user={user_id}" if isinstance(user_id, str) else "",
            extra={"fields": fields},
        )
