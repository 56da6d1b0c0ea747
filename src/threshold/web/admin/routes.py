"""/admin/v1: the CLI's operations over HTTP. Bearer access token with the threshold:admin scope,
issued by client_credentials (a user's token never grants admin rights)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from threshold.core.clock import iso
from threshold.core.errors import NotFound
from threshold.core.models import RequestContext
from threshold.oidc.errors import InsufficientScope
from threshold.oidc.models import ACCESS_TOKEN_DEFAULT_ALG, ID_TOKEN_DEFAULT_ALG, key_summary
from threshold.oidc.models import client_summary as client_dict
from threshold.oidc.provider import ADMIN_SCOPE, VerifiedAccessToken
from threshold.web.deps import ServicesDep, get_services, request_context
from threshold.web.oauth.routes import bearer_token


async def require_admin(request: Request) -> VerifiedAccessToken:
    verified = await get_services(request).provider.verify_access_token(bearer_token(request))
    if ADMIN_SCOPE not in verified.scopes or verified.claims.get("sub") != verified.claims.get("client_id"):
        raise InsufficientScope(f"The {ADMIN_SCOPE} scope of a client-credentials token is required.")
    return verified


router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin v1"])
AdminDep = Annotated[VerifiedAccessToken, Depends(require_admin)]


def admin_context(request: Request, admin: VerifiedAccessToken) -> RequestContext:
    context = request_context(request)
    return RequestContext(ip=context.ip, user_agent=f"admin-api client={admin.claims.get('client_id')}")


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field must not be silently ignored

    name: StrictStr = Field(min_length=1, max_length=200)
    redirect_uris: list[StrictStr] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[StrictStr] = Field(default_factory=list, max_length=20)
    public: StrictBool = False
    first_party: StrictBool = False
    grant_types: list[StrictStr] = Field(default_factory=list, max_length=3)
    scopes: list[StrictStr] = Field(default_factory=list, max_length=50)
    token_endpoint_auth_method: StrictStr | None = None
    jwks: dict[str, Any] | None = None
    access_token_lifetime: int | None = Field(None, ge=30, le=900)
    signing_alg: StrictStr = ACCESS_TOKEN_DEFAULT_ALG
    id_token_alg: StrictStr = Field(ID_TOKEN_DEFAULT_ALG, alias="id_token_signed_response_alg")
    logo_uri: StrictStr | None = Field(None, max_length=2048)
    backchannel_logout_uri: StrictStr | None = Field(None, max_length=2048)
    deletion_event_uri: StrictStr | None = Field(None, max_length=2048)
    backchannel_logout_session_required: StrictBool = False


UriList = Annotated[list[StrictStr], Field(max_length=20)]


class ClientPatch(BaseModel):
    """The fields to change (absent: unchanged). A URI list is replaced, or added to and removed from."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field must not look like a change that was made

    name: StrictStr | None = Field(None, min_length=1, max_length=200)
    redirect_uris: UriList | None = None
    add_redirect_uris: UriList = Field(default_factory=list)
    remove_redirect_uris: UriList = Field(default_factory=list)
    post_logout_redirect_uris: UriList | None = None
    add_post_logout_redirect_uris: UriList = Field(default_factory=list)
    remove_post_logout_redirect_uris: UriList = Field(default_factory=list)
    first_party: StrictBool | None = None
    id_token_alg: StrictStr | None = Field(None, alias="id_token_signed_response_alg")
    logo_uri: StrictStr | None = Field(None, max_length=2048)
    backchannel_logout_uri: StrictStr | None = Field(None, max_length=2048)
    deletion_event_uri: StrictStr | None = Field(None, max_length=2048)
    backchannel_logout_session_required: StrictBool | None = None


def _user(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "disabled": user.disabled,
        "created_at": iso(user.created_at),
    }


@router.get("/clients", summary="List clients")
async def list_clients(services: ServicesDep) -> dict[str, Any]:
    return {"clients": [client_dict(c) for c in await services.provider.list_clients()]}


@router.post("/clients", status_code=201, summary="Register a client (the secret is returned once)")
async def create_client(body: ClientIn, request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    from threshold.oidc.errors import InvalidRequest

    try:
        issued = await services.provider.create_client(
            **body.model_dump(), context=admin_context(request, admin)
        )
    except ValueError as exc:  # an unknown grant type or auth method
        raise InvalidRequest(str(exc)) from None
    return JSONResponse(
        client_dict(issued.client, issued.secret), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.get("/clients/{client_id}", summary="One client")
async def get_client(client_id: str, services: ServicesDep) -> dict[str, Any]:
    client = await services.provider.get_client(client_id[:64])
    if client is None:
        raise NotFound("No such client.")
    return client_dict(client)


@router.patch("/clients/{client_id}", summary="Change a client under the rules of registration")
async def update_client(
    client_id: str, body: ClientPatch, request: Request, services: ServicesDep, admin: AdminDep
) -> dict[str, Any]:
    updated = await services.provider.update_client(
        client_id[:64], **body.model_dump(), context=admin_context(request, admin)
    )
    if updated is None:
        raise NotFound("No such client.")
    return client_dict(updated.client)


@router.post(
    "/clients/{client_id}/secret",
    summary="Rotate a confidential client's secret (the new one is returned once; the old one stops working)",
)
async def rotate_client_secret(
    client_id: str, request: Request, services: ServicesDep, admin: AdminDep
) -> Response:
    rotated = await services.provider.update_client(
        client_id[:64], rotate_secret=True, context=admin_context(request, admin)
    )
    if rotated is None:
        raise NotFound("No such client.")
    return JSONResponse(client_dict(rotated.client, rotated.secret), headers={"Cache-Control": "no-store"})


@router.delete(
    "/clients/{client_id}", status_code=204, summary="Delete a client and revoke its refresh tokens"
)
async def delete_client(client_id: str, request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    if not await services.provider.delete_client(client_id[:64], context=admin_context(request, admin)):
        raise NotFound("No such client.")
    return Response(status_code=204)


@router.get("/users", summary="List users")
async def list_users(services: ServicesDep, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    users = await services.accounts.list_users(limit=max(1, min(limit, 1000)), offset=max(0, offset))
    return {"users": [_user(u) for u in users]}


@router.post("/users/{user}/revoke-sessions", summary="End every session and refresh token of a user")
async def revoke_sessions(
    user: str, request: Request, services: ServicesDep, admin: AdminDep
) -> dict[str, int]:
    account = await services.accounts.find_user(user[:320])
    ended = await services.accounts.revoke_user_sessions(account, context=admin_context(request, admin))
    return {"sessions_revoked": len(ended.sessions), "refresh_tokens_revoked": ended.refresh_tokens}


@router.post("/users/{user}/disable", summary="Disable a user, ending every session")
async def disable_user(user: str, request: Request, services: ServicesDep, admin: AdminDep) -> dict[str, Any]:
    account = await services.accounts.find_user(user[:320])
    sessions = await services.accounts.set_disabled(
        account, disabled=True, context=admin_context(request, admin)
    )
    return {"disabled": True, "sessions_revoked": sessions}


@router.post("/users/{user}/enable", summary="Re-enable a user")
async def enable_user(user: str, request: Request, services: ServicesDep, admin: AdminDep) -> dict[str, Any]:
    account = await services.accounts.find_user(user[:320])
    await services.accounts.set_disabled(account, disabled=False, context=admin_context(request, admin))
    return {"disabled": False}


@router.delete(
    "/users/{user}",
    status_code=202,
    summary="Delete a user: locked and signed out now, erased after the grace period (or at once)",
    responses={409: {"description": "`last_operator`: the only account with console access"}},
)
async def delete_user(
    user: str, request: Request, services: ServicesDep, admin: AdminDep, immediately: bool = False
) -> JSONResponse:
    account = await services.accounts.find_user(user[:320])
    done = await services.deletions.by_operator(
        account,
        by=f"admin-api client={admin.claims.get('client_id')}",
        immediately=immediately,
        context=admin_context(request, admin),
    )
    body = {"status": "erased" if done.erased else "scheduled", "erase_at": iso(done.erase_at)}
    return JSONResponse(body, status_code=202)


class MfaPolicy(BaseModel):
    required: StrictBool


class RecoveryIn(BaseModel):
    wait_seconds: int | None = Field(None, ge=0, le=30 * 86400)
    cancel: StrictBool = False


@router.post("/users/{user}/mfa-required", summary="Require (or stop requiring) a second factor")
async def mfa_required(
    user: str, body: MfaPolicy, request: Request, services: ServicesDep, admin: AdminDep
) -> dict[str, Any]:
    account = await services.accounts.find_user(user[:320])
    await services.accounts.set_mfa_required(
        account, required=body.required, context=admin_context(request, admin)
    )
    return {"mfa_required": body.required}


@router.post(
    "/users/{user}/recovery", summary="Operator-approved recovery: reset factors after a waiting period"
)
async def recovery(
    user: str, body: RecoveryIn, request: Request, services: ServicesDep, admin: AdminDep
) -> dict[str, Any]:
    account = await services.accounts.find_user(user[:320])
    context = admin_context(request, admin)
    if body.cancel:
        pending = await services.recovery.pending_recovery(account)
        for item in pending:
            await services.recovery.cancel_recovery(account, item.id, context=context)
        return {"cancelled": len(pending)}
    created = await services.recovery.request_recovery(
        account,
        requested_by=f"admin client {admin.claims.get('client_id')}",
        wait=body.wait_seconds,
        context=context,
    )
    return {"id": created.id, "execute_after": iso(created.execute_after)}


@router.get("/keys", summary="Signing keys and their states")
async def list_keys(services: ServicesDep) -> dict[str, Any]:
    keys = await services.provider.keys.keys()
    return {"keys": [key_summary(k) for k in keys]}


@router.post("/keys/rotate", summary="Rotate signing keys")
async def rotate_keys(
    request: Request, services: ServicesDep, admin: AdminDep, alg: str | None = None
) -> dict[str, Any]:
    from threshold.oidc.errors import InvalidRequest
    from threshold.oidc.models import SIGNING_ALGORITHMS

    if alg is not None and alg not in SIGNING_ALGORITHMS:
        raise InvalidRequest("Unknown algorithm.")
    return {"activated": await services.provider.rotate_keys(alg, context=admin_context(request, admin))}
