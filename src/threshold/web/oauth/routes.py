"""/.well-known/*, /oauth2/* and the consent page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from threshold.adapters.metrics import count_token_issued
from threshold.core.i18n import N_
from threshold.core.models import RequestContext
from threshold.oidc.authorize import AuthorizationRequest, RedirectableError
from threshold.oidc.authorize_decision import STARTED_PARAM
from threshold.oidc.client_auth import presented_credentials
from threshold.oidc.errors import BearerTokenMissing, InvalidRequest, OAuthError
from threshold.oidc.models import ID_TOKEN_DEFAULT_ALG, SIGNING_ALGORITHMS
from threshold.oidc.organization import ORG_ADMIN_SCOPE, ORG_CLAIMS, ORGANIZATION_SCOPE
from threshold.oidc.provider import (
    AuthorizeOutcome,
    NeedsConsent,
    NeedsEnrollment,
    NeedsLogin,
    Provider,
    RedirectTo,
)
from threshold.web.access_log import note_user
from threshold.web.deps import (
    Authenticated,
    ContextDep,
    MaybeAuth,
    get_services,
)
from threshold.web.hotpath import FastLane
from threshold.web.pages.render import PageApplication, render
from threshold.web.security import check_csrf_token, check_same_origin, clear_session_cookie

router = APIRouter(include_in_schema=False)
fast_lane = FastLane(router)  # the token endpoint, answered without the router too

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
AUTHORIZE_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "request",
    "request_uri",
    "ui_locales",  # the pages' language (web.i18n), carried through the sign-in in `next`
    STARTED_PARAM,
)
SCOPE_TEXT = {
    "openid": N_("Confirm who you are (a stable identifier)"),
    "email": N_("See your email address"),
    "profile": N_("See your basic profile"),
    "offline_access": N_("Stay connected while you are away (refresh tokens)"),
    ORGANIZATION_SCOPE: N_("See the organization you selected and your role in it"),
    ORG_ADMIN_SCOPE: N_("Manage your organization's members, domains and invitations (if you are its admin)"),
}
"""What the consent page says each scope lets the application do (translated there)."""


def provider_of(request: Request) -> Provider:
    return get_services(request).provider


MAX_FORM_FIELDS = 50


async def form_params(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; a repeated parameter is refused (RFC 6749 3.2)."""
    if (
        request.headers.get("content-type", "").split(";")[0].strip().lower()
        != "application/x-www-form-urlencoded"
    ):
        raise InvalidRequest("The body must be application/x-www-form-urlencoded.")
    # parse_qsl, not Starlette's multipart parser: the same pairs (percent-decoded as UTF-8, blank values
    # kept) at a fraction of the cost on the token endpoint's hot path.
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError as exc:  # too many fields: answer in RFC 6749 form, not problem+json
        raise InvalidRequest("The form is malformed or has too many fields.") from exc
    return single_values(pairs)


def single_values(items: FormData | Mapping[str, Any] | Sequence[tuple[str, Any]]) -> dict[str, str]:
    values: dict[str, str] = {}
    if isinstance(items, FormData):
        pairs = items.multi_items()
    elif isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = list(items)
    for key, value in pairs:
        if not isinstance(value, str):
            raise InvalidRequest(f"{key} must be text.")
        if key in values:
            raise InvalidRequest(f"{key} is repeated.")
        values[key] = value
    return values


def query_params(request: Request) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in values:
            raise InvalidRequest(f"{key} is repeated.")
        values[key] = value
    return values


def oauth_json(body: Mapping[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(dict(body), status_code=status, headers=NO_STORE)


# --- discovery and keys ---------------------------------------------------------------------------


@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> Response:
    services = get_services(request)
    issuer = services.settings.issuer
    body = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "jwks_uri": f"{issuer}/oauth2/jwks",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        "scopes_supported": ["openid", "email", "offline_access", ORGANIZATION_SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [
            ID_TOKEN_DEFAULT_ALG,
            *(alg for alg in SIGNING_ALGORITHMS if alg != ID_TOKEN_DEFAULT_ALG),
        ],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "Ed25519", "PS256"],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
            "email",
            "email_verified",
            *ORG_CLAIMS,
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        # the languages of the hosted pages, for `ui_locales` (web.i18n decides with it)
        "ui_locales_supported": [language.tag for language in services.catalogues.languages.values()],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,  # OIDC Back-Channel Logout 1.0 (oidc.backchannel)
        "backchannel_logout_session_supported": True,  # every logout token carries `sid`
    }
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})


@router.get("/oauth2/jwks")
@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    body = await provider_of(request).keys.jwks()
    return JSONResponse(
        body, media_type="application/jwk-set+json", headers={"Cache-Control": "public, max-age=300"}
    )


# --- authorization endpoint and consent -----------------------------------------------------------


def _login_redirect(params: Mapping[str, str], *, force: bool, started: str | None) -> RedirectResponse:
    """To the hosted login and back; prompt and max_age stay, met by a sign-in after `started`."""
    kept = {k: v for k, v in params.items() if k in AUTHORIZE_PARAMS}
    if started is not None:
        kept[STARTED_PARAM] = started
    target = "/oauth2/authorize?" + urlencode(kept)
    query = {"next": target}
    if force:
        query["reauth"] = "1"
    if params.get("login_hint"):
        query["email"] = params["login_hint"][:254]
    return RedirectResponse("/login?" + urlencode(query), status_code=303)


async def _authorization(request: Request, params: Mapping[str, str]) -> AuthorizationRequest:
    return await get_services(request).provider.parse_authorization(params)


async def _enrollment_owed(request: Request, auth: Authenticated | None) -> bool:
    return auth is not None and await get_services(request).factors.needs_enrollment(auth.user)


async def _answer(request: Request, params: Mapping[str, str], outcome: AuthorizeOutcome) -> Response:
    """The browser's next step after the authorize decision (provider.authorize or grant_consent)."""
    if isinstance(outcome, NeedsLogin):
        return _login_redirect(params, force=outcome.force, started=outcome.started)
    if isinstance(outcome, NeedsEnrollment):
        return RedirectResponse("/account", status_code=303)  # policy: a second factor before any app
    if isinstance(outcome, NeedsConsent):
        return await _consent_page(request, outcome, params)
    assert isinstance(outcome, RedirectTo)
    return RedirectResponse(outcome.url, status_code=303)


async def _authorize(request: Request, params: dict[str, str], auth: Authenticated | None) -> Response:
    provider = provider_of(request)
    try:
        authorization = await _authorization(request, params)
    except RedirectableError as error:
        return RedirectResponse(provider.error_redirect(error), status_code=303)
    outcome = await provider.authorize(
        authorization,
        session=auth.session if auth else None,
        user=auth.user if auth else None,
        enrollment_owed=await _enrollment_owed(request, auth),
    )
    return await _answer(request, params, outcome)


@router.get("/oauth2/authorize")
async def authorize_get(request: Request, auth: MaybeAuth) -> Response:
    return await _authorize(request, query_params(request), auth)


@router.post("/oauth2/authorize")
async def authorize_post(request: Request, auth: MaybeAuth) -> Response:
    """OIDC Core 3.1.2.1: the authorization endpoint accepts POST with a form body too."""
    return await _authorize(request, await form_params(request), auth)


async def _consent_page(request: Request, outcome: NeedsConsent, params: Mapping[str, str]) -> Response:
    """The form carries the whole request (prompt and max_age too) and its start: the submit decides again."""
    authorization = outcome.request
    client = authorization.client
    return await render(
        request,
        "consent.html",
        application=PageApplication(client.name, client.logo_uri, authorization.redirect_uri),
        client=client,
        scopes=[(s, SCOPE_TEXT.get(s, s)) for s in authorization.scopes],
        params={
            **{k: v for k, v in params.items() if k in AUTHORIZE_PARAMS and k != STARTED_PARAM},
            **({STARTED_PARAM: outcome.started} if outcome.started else {}),
        },
    )


@router.post("/consent")
async def consent_submit(request: Request, auth: MaybeAuth, context: ContextDep) -> Response:
    """Allow re-runs the whole authorize decision (provider.grant_consent) before any code is issued."""
    check_same_origin(request, get_services(request).settings)
    form = single_values(await request.form(max_files=0, max_fields=40))
    check_csrf_token(request, form.get("csrf_token"))
    params = {k: v for k, v in form.items() if k in AUTHORIZE_PARAMS}
    provider = provider_of(request)
    try:
        authorization = await _authorization(request, params)
    except RedirectableError as error:
        return RedirectResponse(provider.error_redirect(error), status_code=303)
    if auth is None:
        return _login_redirect(params, force=False, started=None)
    if form.get("decision") != "allow":
        return RedirectResponse(provider.deny(authorization), status_code=303)
    outcome = await provider.grant_consent(
        authorization,
        session=auth.session,
        user=auth.user,
        enrollment_owed=await _enrollment_owed(request, auth),
        context=context,
    )
    return await _answer(request, params, outcome)


# --- token, userinfo, revocation, introspection ---------------------------------------------------


@fast_lane.plain
@router.post("/oauth2/token")
async def token(request: Request) -> Response:
    form = await form_params(request)
    credentials = presented_credentials(authorization=request.headers.get("authorization"), form=form)
    response = await provider_of(request).token(form, credentials)
    count_token_issued(form["grant_type"])
    if response.subject is not None:
        note_user(request.scope, response.subject)
    return oauth_json(response.as_dict())


def bearer_token(request: Request, form: Mapping[str, str] | None = None) -> str:
    """RFC 6750 section 2.1 (header) or 2.2 (form body)."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    if form and form.get("access_token"):
        return form["access_token"]
    raise BearerTokenMissing()


@router.get("/oauth2/userinfo")
async def userinfo_get(request: Request) -> Response:
    return await _userinfo(request, bearer_token(request))


@router.post("/oauth2/userinfo")
async def userinfo_post(request: Request) -> Response:
    form = await form_params(request) if request.headers.get("content-type") else {}
    return await _userinfo(request, bearer_token(request, form))


async def _userinfo(request: Request, token: str) -> Response:
    claims = await provider_of(request).userinfo(token)
    note_user(request.scope, str(claims["sub"]))
    return oauth_json(claims)


@router.post("/oauth2/revoke")
async def revoke(request: Request) -> Response:
    form = await form_params(request)
    credentials = presented_credentials(authorization=request.headers.get("authorization"), form=form)
    await provider_of(request).revoke(form, credentials)
    return Response(status_code=200, headers=NO_STORE)


@router.post("/oauth2/introspect")
async def introspect(request: Request) -> Response:
    form = await form_params(request)
    credentials = presented_credentials(authorization=request.headers.get("authorization"), form=form)
    return oauth_json(await provider_of(request).introspect(form, credentials))


# --- RP-initiated logout ----------------------------------------------------------------------------


LOGOUT_PARAMS = (
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "logout_hint",
    "ui_locales",
)


async def _logout_target(
    request: Request, params: Mapping[str, str]
) -> tuple[str | None, dict[str, Any] | None]:
    return await provider_of(request).logout_target(
        id_token_hint=params.get("id_token_hint"),
        client_id=params.get("client_id"),
        post_logout_redirect_uri=params.get("post_logout_redirect_uri"),
        state=params.get("state"),
    )


async def _end_session(
    request: Request, auth: Authenticated | None, context: RequestContext, target: str | None
) -> Response:
    services = get_services(request)
    if auth is not None:
        await services.accounts.log_out(auth.user, auth.session, context=context)
    response = RedirectResponse(target or "/login?logged_out=1", status_code=303)
    clear_session_cookie(response)
    return response


@router.get("/oauth2/logout")
async def logout_get(request: Request, auth: MaybeAuth, context: ContextDep) -> Response:
    params = {k: v for k, v in query_params(request).items() if k in LOGOUT_PARAMS}
    try:
        target, claims = await _logout_target(request, params)
    except OAuthError as error:
        return await render(request, "error.html", status=400, status_code=400, message=error.page_detail)
    if auth is None:
        return RedirectResponse(target or "/login?logged_out=1", status_code=303)
    if claims is not None and claims.get("sid") == auth.session.public_id:
        return await _end_session(request, auth, context, target)  # the RP proved which session to end
    application = None
    if target is not None:
        client = await provider_of(request).get_client(_logout_client_id(params, claims))
        name, logo = (client.name, client.logo_uri) if client else ("the application", None)
        application = PageApplication(name, logo, target)
    return await render(
        request,
        "logout.html",
        application=application,
        user=auth.user,
        action="/oauth2/logout",
        params=params,
    )


def _logout_client_id(params: Mapping[str, str], claims: Mapping[str, Any] | None) -> str:
    audience = claims.get("aud") if claims else None
    return params.get("client_id") or (audience if isinstance(audience, str) else "")


@router.post("/oauth2/logout")
async def logout_post(request: Request, auth: MaybeAuth, context: ContextDep) -> Response:
    check_same_origin(request, get_services(request).settings)
    form = single_values(await request.form(max_files=0, max_fields=20))
    params = {k: v for k, v in form.items() if k in LOGOUT_PARAMS}
    if "csrf_token" in form or auth is not None:
        check_csrf_token(request, form.get("csrf_token"))
    try:
        target, _ = await _logout_target(request, params)
    except OAuthError as error:
        return await render(request, "error.html", status=400, status_code=400, message=error.page_detail)
    return await _end_session(request, auth, context, target)
