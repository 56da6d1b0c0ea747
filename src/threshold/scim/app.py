"""The SCIM ASGI application: scim2-server's `ASGIApplication`, with

- the base URL from the issuer (`{issuer}/scim/v2`), never from the Host header, so `meta.location`
  and `Location` are the service's own URLs whoever asks;
- a bearer token per organization (core.scim.tokens): each request is served by a storage bound to the
  token's organization. `/ServiceProviderConfig` needs none (RFC 7643 section 5), as in scim2-server;
- SCIM error bodies for everything that goes wrong: Threshold's domain errors keep their status and
  message (an address outside the verified domains is 400 `invalidValue`), an oversize body is 413, a
  database outage is 503 with Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, Union

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Error,
    ETag,
    Filter,
    ListResponse,
    Pagination,
    Patch,
    PatchOp,
    PayloadTooLargeException,
    Resource,
    ResourceType,
    ResponseParameters,
    SCIMException,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    UnauthorizedException,
)
from scim2_models import Path as ScimPath
from scim2_server.applications.asgi import ASGIApplication, Receive, Scope, Send
from scim2_server.applications.base import BaseApplication
from scim2_server.handler import AsyncScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.storage import AsyncScimStorage, SearchPage
from scim2_server.utils import load_default_resource_types, load_default_schemas, parametrize

from threshold.core.errors import (
    Conflict,
    DependencyUnavailable,
    EmailUnavailable,
    Forbidden,
    InvalidRequest,
    NotFound,
    ThresholdError,
)
from threshold.core.models import RequestContext
from threshold.core.scim.tokens import ScimClient, ScimTokens
from threshold.scim.errors import ScimBodyTooLarge
from threshold.scim.storage import ScimBackend

log = logging.getLogger(__name__)

MAX_RESULTS = 200
DEFAULT_PAGE = 100


def service_provider_config() -> ServiceProviderConfig:
    """What this service supports (RFC 7643 section 5): PATCH, filtering (up to MAX_RESULTS a page),
    ETags; no bulk, sorting or password changes. Authentication: a bearer token per organization."""
    return ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        pagination=Pagination(
            index=True, cursor=False, default_page_size=DEFAULT_PAGE, max_page_size=MAX_RESULTS
        ),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A token made with `threshold orgs scim-token ORG` (Authorization: Bearer ...)",
                primary=True,
            )
        ],
    )


def scim_provider() -> ScimProvider:
    """Users (with the enterprise extension) and Groups, as RFC 7643 defines them."""
    return ScimProvider.from_discovery(
        load_default_schemas().values(),
        load_default_resource_types().values(),
        config=service_provider_config(),
    )


def pinned_generics(service: ScimService) -> list[type[Any]]:
    """The parametrized message models scim2-server asks for on every request, built once and held.

    scim2-server parametrizes its generic messages per request (`ListResponse[User | Group]` for each
    search, `SearchRequest[User]`, `PatchOp[User]`, `ResponseParameters[User]` ...). Pydantic caches a
    parametrized model only weakly, so once the garbage collector has taken it the next request builds
    it again: a few tens of milliseconds of CPU each time (a third of a SCIM provisioning sync's CPU
    before this). Holding them here keeps pydantic's cache warm for the life of the process.
    """
    types = list(service.provider.resource_types)
    every: Any = Union[tuple(service.get_models())]  # noqa: UP007 (the very key scim2-server builds)
    pinned: list[type[Any]] = [
        parametrize(ListResponse, every),
        parametrize(SearchRequest, Union[tuple(service.search_models(types))]),  # noqa: UP007
    ]
    for resource_type in types:
        model = service.get_model(resource_type)
        pinned += [
            parametrize(SearchRequest, Union[tuple(service.search_models([resource_type]))]),  # noqa: UP007
            parametrize(ResponseParameters, model),
            parametrize(PatchOp, model),
            parametrize(ScimPath, model),
        ]
    return pinned


class _NoResources(AsyncScimStorage):
    """The storage of an unauthenticated request (only /ServiceProviderConfig gets that far)."""

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        raise UnauthorizedException()

    async def search(
        self, resource_types: list[ResourceType], search_request: SearchRequest[Any], *, position: Any = None
    ) -> SearchPage:
        raise UnauthorizedException()

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        raise UnauthorizedException()

    async def update(
        self, resource_type: ResourceType, resource: Resource[Any], *, expected_version: str | None = None
    ) -> Resource[Any]:
        raise UnauthorizedException()

    async def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        raise UnauthorizedException()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking (for the audit trail), and once authenticated, for which organization."""

    context: RequestContext
    client: ScimClient | None = None


def bearer(request: ScimRequest) -> str | None:
    """The token of `Authorization: Bearer <token>` (RFC 6750 section 2.1), if there is one."""
    scheme, _, value = (request.header("Authorization") or "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _scim_exception(error: ThresholdError) -> SCIMException | None:
    """The SCIM error a domain error answers with (its message is written for the client)."""
    detail = error.detail if isinstance(getattr(error, "detail", None), str) else error.message
    if isinstance(error, EmailUnavailable | Conflict):
        from scim2_models import UniquenessException

        return UniquenessException(detail=detail)
    if isinstance(error, InvalidRequest):
        from scim2_models import InvalidValueException

        return InvalidValueException(detail=detail)
    if isinstance(error, NotFound):
        from scim2_models import NotFoundException

        return NotFoundException(detail=detail)
    if isinstance(error, Forbidden):
        from scim2_models import ForbiddenException

        return ForbiddenException(detail=detail)
    return None


class ScimApplication(ASGIApplication):
    """See the module docstring. `context_of` says who is asking (address, user agent) for the audit."""

    def __init__(
        self,
        *,
        backend: ScimBackend,
        tokens: ScimTokens,
        context_of: Callable[[Scope], RequestContext],
    ) -> None:
        BaseApplication.__init__(self, backend.provider, ScimService(backend.provider))
        self.backend = backend
        self.tokens = tokens
        self.base_url = tokens.base_url
        self.context_of = context_of
        self._anonymous = AsyncScimHandler(self.service, _NoResources())
        self._generics = pinned_generics(self.service)

    def get_base_url(self, scope: Scope) -> str:  # type: ignore[override]
        """The SCIM root as the issuer names it (never the Host header)."""
        return self.base_url

    async def authenticate(self, request: ScimRequest) -> ScimClient:
        """The organization the request's bearer token speaks for. Raises UnauthorizedException."""
        token = bearer(request)
        if token is None:
            raise UnauthorizedException(detail="A SCIM bearer token is required")
        client = await self.tokens.authenticate(token)
        if client is None:
            raise UnauthorizedException(detail="The bearer token is not a live SCIM token")
        return client

    async def dispatch_request(self, request: ScimRequest) -> ScimResponse:
        if not self.needs_auth(request):
            return await self._anonymous.handle(request)
        caller: Caller = request.subject
        client = await self.authenticate(request)
        request.subject = replace(caller, client=client)
        storage = self.backend.for_client(client, caller.context)
        return await AsyncScimHandler(self.service, storage).handle(request)

    def handle_exception(self, request: ScimRequest, exception: Exception) -> ScimResponse:
        if isinstance(exception, DependencyUnavailable):
            log.warning("SCIM %s %s: storage unavailable", request.method, request.path)
            status = HTTPStatus.SERVICE_UNAVAILABLE
            error = Error(status=int(status), detail=DependencyUnavailable.message)
            return ScimResponse(status, error.model_dump(), {"Retry-After": str(exception.retry_after)})
        if isinstance(exception, ThresholdError):
            translated = _scim_exception(exception)
            if translated is not None:
                return super().handle_exception(request, translated)
        return super().handle_exception(request, exception)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.serve_lifespan(receive, send)
            return
        try:
            request = await self.read_request(scope, receive)
        except ScimBodyTooLarge:
            request = ScimRequest(method=scope["method"], base_url=self.base_url, path="/")
            response = self.service.error_response(
                PayloadTooLargeException(detail="The request body is too large")
            )
            await self.send_response(self.finalize_response(request, response), send)
            return
        request.subject = Caller(context=self.context_of(scope))
        await self.send_response(await self.serve(request), send)
