"""/admin/v1/orgs/{org}/scim-tokens: an organization's SCIM bearer tokens over HTTP, for the operator's
admin token or the organization's owners (see org_access): made (shown once), listed (never the token
or its digest), revoked one by one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from threshold.core.scim.tokens import ScimTokens, scim_token_summary
from threshold.web.admin.org_access import OrgAdmin
from threshold.web.scim import scim_tokens_for

router = APIRouter(prefix="/admin/v1/orgs", tags=["admin v1: organizations"])


async def _tokens(request: Request) -> ScimTokens:
    return scim_tokens_for(request.app)


TokensDep = Annotated[ScimTokens, Depends(_tokens)]


class ScimTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field("", max_length=200, description="What the token is for (e.g. the IdP).")


@router.post(
    "/{org}/scim-tokens", status_code=201, summary="Make a SCIM token for the organization's IdP (shown once)"
)
async def create_scim_token(body: ScimTokenIn, access: OrgAdmin, tokens: TokensDep) -> Response:
    issued = await tokens.create(access.org, name=body.name, context=access.context, actor=access.actor)
    return JSONResponse(
        {**scim_token_summary(issued.record), "token": issued.token, "base_url": tokens.base_url},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/{org}/scim-tokens", summary="The organization's SCIM tokens (without their secrets)")
async def list_scim_tokens(access: OrgAdmin, tokens: TokensDep) -> dict[str, Any]:
    found = await tokens.list_tokens(access.org)
    return {"base_url": tokens.base_url, "tokens": [scim_token_summary(t) for t in found]}


@router.delete("/{org}/scim-tokens/{token_id}", status_code=204, summary="Revoke a SCIM token")
async def revoke_scim_token(token_id: str, access: OrgAdmin, tokens: TokensDep) -> Response:
    await tokens.revoke(access.org, token_id, context=access.context, actor=access.actor)
    return Response(status_code=204)
