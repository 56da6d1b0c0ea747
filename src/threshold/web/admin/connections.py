"""/admin/v1/orgs/{org}/connections: an organization's identity providers over HTTP, for the
operator's admin token or the organization's own admins (see org_access)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.responses import JSONResponse

from threshold.adapters.sso.saml import fetch_metadata
from threshold.core.errors import InvalidRequest
from threshold.core.orgs.models import OrgRole
from threshold.core.orgs.service import check_may_manage
from threshold.core.sso.connections import ConnectionSpec
from threshold.web.admin.org_access import OrgAdmin
from threshold.web.deps import ServicesDep

router = APIRouter(prefix="/admin/v1/orgs", tags=["admin v1: organizations"])
Role = Literal["owner", "admin", "member"]


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["oidc", "saml"]
    name: StrictStr = Field("", max_length=200)
    issuer: StrictStr | None = Field(None, max_length=500, description="OIDC: the exact issuer URL.")
    client_id: StrictStr | None = Field(None, max_length=500)
    client_secret: StrictStr | None = Field(None, max_length=2000, description="Sealed at rest, never shown.")
    scopes: list[StrictStr] = Field(default_factory=list, max_length=20)
    metadata_xml: StrictStr | None = Field(None, max_length=200_000, description="SAML: the IdP's metadata.")
    metadata_url: StrictStr | None = Field(
        None, max_length=2000, description="SAML: or where it is published."
    )
    email_claim: StrictStr = Field("", max_length=200, description="Claim or attribute with the address.")
    name_claim: StrictStr = Field("", max_length=200)
    groups_claim: StrictStr = Field("", max_length=200)
    allow_idp_initiated: StrictBool = False
    require_sso: StrictBool = False
    break_glass: list[StrictStr] = Field(default_factory=list, max_length=10)
    require_idp_mfa: StrictBool = False
    require_local_mfa: StrictBool = False
    default_role: Role = "member"
    role_groups: dict[StrictStr, Role] = Field(default_factory=dict, max_length=100)


@router.post("/{org}/connections", status_code=201, summary="Connect an identity provider (OIDC or SAML)")
async def add_connection(body: ConnectionIn, access: OrgAdmin, services: ServicesDep) -> Response:
    # An identity provider speaks for every address at the organization's verified domains, owners'
    # included: only an owner (or the operator) connects one.
    check_may_manage(access.actor, new=OrgRole.OWNER)
    if not access.actor.is_operator:
        for url in (body.issuer, body.metadata_url):
            if url and not url.startswith("https://"):
                raise InvalidRequest("An organization's identity provider is reached over https.")
    metadata = body.metadata_xml
    if body.type == "saml":
        if bool(body.metadata_xml) == bool(body.metadata_url):
            raise InvalidRequest("A SAML connection needs metadata_xml or metadata_url.")
        metadata = metadata or await fetch_metadata(
            body.metadata_url or "", seconds=services.settings.sso.http_timeout
        )
    spec = ConnectionSpec(**body.model_dump(exclude={"metadata_xml", "metadata_url"}), metadata_xml=metadata)
    connections = services.sso.connections
    connection = await connections.add(access.org, spec, context=access.context)
    return JSONResponse(connections.summary(connection), status_code=201)


@router.get("/{org}/connections", summary="The organization's identity providers")
async def list_connections(access: OrgAdmin, services: ServicesDep) -> dict[str, Any]:
    connections = services.sso.connections
    return {"connections": [connections.summary(c) for c in await connections.of_org(access.org)]}


@router.get("/{org}/connections/{connection_id}", summary="One connection")
async def get_connection(connection_id: str, access: OrgAdmin, services: ServicesDep) -> dict[str, Any]:
    connections = services.sso.connections
    return connections.summary(await connections.find(access.org, connection_id))


@router.delete("/{org}/connections/{connection_id}", status_code=204, summary="Remove a connection")
async def remove_connection(connection_id: str, access: OrgAdmin, services: ServicesDep) -> Response:
    check_may_manage(access.actor, new=OrgRole.OWNER)
    await services.sso.connections.remove(access.org, connection_id, context=access.context)
    return Response(status_code=204)
