"""`{issuer}/scim/v2`: the SCIM application (threshold.scim) mounted in the web app, built once per
process from its Services, with the request's address and user agent for the audit trail, and a SCIM
error (not a problem document) for a body over the service's limit."""

from __future__ import annotations

import json
from typing import Any, cast

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threshold.core.models import RequestContext
from threshold.scim.app import ScimBodyTooLarge
from threshold.scim.wiring import Scim, build_scim
from threshold.services import Services
from threshold.web.security import BodyTooLarge, client_ip

PREFIX = "/scim"


def _context(scope: Scope) -> RequestContext:
    request = Request(scope)
    services: Services = request.app.state.services
    return RequestContext(
        ip=client_ip(request, services.settings.trusted_proxies),
        user_agent=f"scim {request.headers.get('user-agent', '')}"[:512],
    )


def scim_for(app: Any) -> Scim:
    """The SCIM pieces of this process (its application, tokens and accounts), built once from its
    Services: the /scim mount and the admin API's /scim-tokens use the same ones."""
    state = app.state
    services: Services = state.services
    built: Scim | None = getattr(state, "scim", None)
    if built is None or built.services is not services:
        built = build_scim(services, context_of=_context)
        state.scim = built
    return built


async def scim_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app mounted at /scim."""
    if scope["type"] != "http":
        return

    async def guarded_receive() -> Message:
        try:
            return await receive()
        except BodyTooLarge:
            raise ScimBodyTooLarge() from None

    await scim_for(scope["app"]).app(cast(dict[str, Any], scope), cast(Any, guarded_receive), send)


class ScimBodyLimitMiddleware:
    """A SCIM request that declares a body over the limit gets a SCIM error (413), before the general
    body limit answers it with a problem document; a streamed one is stopped by the general limit and
    answered by the SCIM application."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            for name, value in scope["headers"]:
                if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                    await _too_large(scope, send)
                    return
        await self.app(scope, receive, send)


async def _too_large(scope: Scope, send: Send) -> None:
    from scim2_models import Error

    body = json.dumps(Error(status=413, detail="The request body is too large").model_dump()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/scim+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
