"""Browser endpoints of upstream sign-in.

- `GET /sso/start?email=...&next=...` (home-realm discovery) or `?connection=ID`: on to the IdP.
- `GET /sso/oidc/callback`: the one redirect URI of every upstream OIDC connection.
- `POST /sso/saml/{id}/acs`, `GET /sso/saml/{id}/metadata`, `GET /sso/saml/{id}/slo`.
- `POST /sso/oidc/{id}/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0 receiver.

The flow is bound to the browser that started it by the cookie `__Host-threshold_sso`, compared with
what the flow stored. A SAML IdP posts to the ACS from its own site, so that cookie is SameSite=None
(a Lax cookie would not come along); it holds no authority of its own, only the binding.
"""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from threshold.core.errors import InvalidRequest, ThresholdError
from threshold.core.i18n import N_
from threshold.core.sso.errors import SsoRejected, SsoRequired
from threshold.core.sso.signin import FinishedSso
from threshold.services import Services
from threshold.web.deps import (
    ContextDep,
    MaybeAuth,
    ServicesDep,
)
from threshold.web.errors import headers_for, status_for
from threshold.web.pages.common import apply_outcome, redirect, safe_next
from threshold.web.pages.render import error_page, render

router = APIRouter(include_in_schema=False)

FLOW_COOKIE = "__Host-threshold_sso"
MAX_SAML_FIELD = 256 * 1024


def _flow_cookie(request: Request) -> str | None:
    value = request.cookies.get(FLOW_COOKIE)
    return value if value and len(value) <= 128 else None


async def _error(request: Request, error: ThresholdError) -> Response:
    message = error.page_detail
    if isinstance(error, SsoRejected):
        message = f"{message} (reason: {error.reason})"
    return await error_page(request, status_for(error), message, headers=headers_for(error))


@router.get("/sso/start")
async def sso_start(
    request: Request,
    services: ServicesDep,
    email: str = "",
    connection: str = "",
    next: str | None = None,
) -> Response:
    target = safe_next(next)
    if request.headers.get("sec-fetch-site") == "cross-site":
        # Another site sent the browser here: the person confirms, so no site can sign them in (or
        # swap their session) through an identity provider of its choosing without them.
        return await render(request, "sso_confirm.html", target=f"{request.url.path}?{request.url.query}")
    try:
        if email:
            started = await services.sso.start_for_email(
                email[:320], next_url=target, binding=_flow_cookie(request)
            )
        elif connection:
            found = await services.sso.connections.get(connection[:64])
            started = await services.sso.start(
                found, next_url=target, login_hint=None, binding=_flow_cookie(request)
            )
        else:
            raise InvalidRequest(N_("Give the email address to sign in with."))
    except ThresholdError as error:
        return await _error(request, error)
    response = redirect(started.redirect)
    response.set_cookie(
        FLOW_COOKIE,
        started.binding,
        max_age=services.settings.sso.flow_lifetime,
        path="/",
        secure=True,
        httponly=True,
        samesite="none",
    )
    return response


async def _finish(request: Request, services: Services, finishing: Awaitable[FinishedSso]) -> Response:
    """The end of a round trip at the IdP, whichever protocol: signed in (or on to the second step),
    on to the organization's IdP, or a page saying why not."""
    try:
        finished = await finishing
    except SsoRequired as required:
        return redirect(required.redirect)
    except ThresholdError as failure:
        return await _error(request, failure)
    response = await apply_outcome(services, finished.outcome, safe_next(finished.next_url or None))
    response.delete_cookie(FLOW_COOKIE, path="/", secure=True, httponly=True, samesite="none")
    return response


@router.get("/sso/oidc/callback")
async def oidc_callback(
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    auth: MaybeAuth,
    state: str = "",
    code: str | None = None,
    error: str | None = None,
) -> Response:
    return await _finish(
        request,
        services,
        services.sso.finish_oidc(
            state=state[:128],
            code=code,
            error=error,
            binding=_flow_cookie(request),
            context=context,
            replacing=auth.session if auth else None,
        ),
    )


@router.post("/sso/saml/{connection_id}/acs")
async def saml_acs(
    connection_id: str, request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    response_b64, relay_state = form.get("SAMLResponse"), form.get("RelayState")
    if not isinstance(response_b64, str) or not response_b64 or len(response_b64) > MAX_SAML_FIELD:
        return await _error(
            request, SsoRejected("malformed", N_("The identity provider's answer is missing or too large."))
        )
    return await _finish(
        request,
        services,
        services.sso.finish_saml(
            connection_id[:64],
            response=response_b64,
            relay_state=relay_state[:128] if isinstance(relay_state, str) else None,
            binding=_flow_cookie(request),
            context=context,
            replacing=auth.session if auth else None,
        ),
    )


@router.get("/sso/saml/{connection_id}/metadata")
async def saml_metadata(connection_id: str, request: Request, services: ServicesDep) -> Response:
    try:
        connection = await services.sso.connections.get(connection_id[:64])
        if connection.saml is None:
            raise SsoRejected("metadata_invalid", N_("This connection is not a SAML connection."))
        xml = services.sso.saml_metadata(connection)
    except ThresholdError as error:
        return await _error(request, error)
    return Response(xml, media_type="application/samlmetadata+xml")


@router.get("/sso/saml/{connection_id}/slo")
async def saml_slo(
    connection_id: str, request: Request, services: ServicesDep, context: ContextDep
) -> Response:
    """An IdP-initiated single logout (HTTP-Redirect binding): end the matching sessions, answer."""
    saml_request = request.query_params.get("SAMLRequest", "")
    relay_state = request.query_params.get("RelayState")
    if relay_state is not None and len(relay_state.encode()) > 80:  # SAML bindings 3.4.3: at most 80 bytes
        relay_state = None
    try:
        if not saml_request or len(saml_request) > MAX_SAML_FIELD:
            raise SsoRejected("malformed", N_("The logout request is missing or too large."))
        connection = await services.sso.connections.get(connection_id[:64])
        back = await services.sso.saml_logout(
            connection,
            request=saml_request,
            query_string=request.scope.get("query_string", b"").decode("latin-1"),
            relay_state=relay_state,
            context=context,
        )
    except ThresholdError as error:
        return await _error(request, error)
    return redirect(back)


@router.post("/sso/oidc/{connection_id}/backchannel-logout")
async def oidc_backchannel_logout(
    connection_id: str, request: Request, services: ServicesDep, context: ContextDep
) -> Response:
    """OpenID Connect Back-Channel Logout 1.0, section 2.8: 200 on success, 400 otherwise."""
    headers = {"Cache-Control": "no-store"}
    try:
        form = await request.form(max_files=0, max_fields=3)
        token = form.get("logout_token")
        if not isinstance(token, str) or not token:
            raise SsoRejected("malformed", N_("logout_token is required."))
        connection = await services.sso.connections.get(connection_id[:64])
        await services.sso.oidc_logout(connection, token=token, context=context)
    except ThresholdError as error:
        code = error.reason if isinstance(error, SsoRejected) else error.code
        status = 400 if status_for(error) < 500 else status_for(error)
        return JSONResponse(
            {"error": "invalid_request", "error_description": f"{error.detail} ({code})"},
            status_code=status,
            headers={**headers, **headers_for(error)},
        )
    return Response(status_code=200, headers=headers)
