"""`{issuer}/scim/v2`: the SCIM application (threshold.scim) mounted in the web app, built once per
process from its Services, with the request's address and user agent for the audit trail, and a SCIM
error (not a problem document) for a body over the service's limit.

The application is built on the first SCIM request, its libraries imported in a worker thread (the
event loop goes on serving meanwhile): they are a quarter of a server's start, and most deployments
never provision over SCIM. The SCIM tokens (admin API, console) need none of them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threshold.core.models import RequestContext
from threshold.core.scim.tokens import ScimTokens
from threshold.scim import wiring
from threshold.scim.errors import ScimBodyTooLarge
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


def scim_tokens_for(app: Any) -> ScimTokens:
    """This process's SCIM tokens, built once from its Services: the /scim mount, the admin API's
    /scim-tokens and the console use the same ones."""
    state = app.state
    services: Services = state.services
    built: tuple[Services, ScimTokens] | None = getattr(state, "scim_tokens", None)
    if built is None or built[0] is not services:
        built = (services, wiring.scim_tokens(services))
        state.scim_tokens = built
    return built[1]


async def scim_for(app: Any) -> wiring.Scim:
    """The SCIM application of this process, built on first use from its Services."""
    state = app.state
    services: Services = state.services
    built: wiring.Scim | None = getattr(state, "scim", None)
    if built is None or built.services is not services:
        await asyncio.to_thread(wiring.load)
        built = getattr(state, "scim", None)  # a concurrent first request may have built it meanwhile
        if built is None or built.services is not services:
            built = wiring.build_scim(services, tokens=scim_tokens_for(app), context_of=_context)
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

    await (await scim_for(scope["app"])).app(cast(dict[str, Any], scope), cast(Any, guarded_receive), send)


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
    await asyncio.to_thread(wiring.load)  # scim2-models, not yet imported if this is the first request
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
