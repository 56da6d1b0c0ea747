"""/admin/v1/orgs: the `threshold orgs` operations over HTTP, for the operator's admin token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from threshold.core.orgs.service import domain_summary, invitation_summary, membership_summary, org_summary
from threshold.oidc.provider import VerifiedAccessToken
from threshold.services import Services
from threshold.web.admin.routes import admin_context, require_admin
from threshold.web.deps import get_services

router = APIRouter(
    prefix="/admin/v1/orgs", dependencies=[Depends(require_admin)], tags=["admin v1: organizations"]
)
ServicesDep = Annotated[Services, Depends(get_services)]
AdminDep = Annotated[VerifiedAccessToken, Depends(require_admin)]


class OrgIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1, max_length=200)
    slug: StrictStr | None = Field(None, max_length=63)


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: StrictStr = Field(min_length=3, max_length=320)
    role: StrictStr = "member"


class InvitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: StrictStr = Field(min_length=3, max_length=320)
    role: StrictStr = "member"


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: StrictStr = Field(min_length=3, max_length=253)


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trust: StrictBool = False


@router.post("", status_code=201, summary="Create an organization")
async def create_org(body: OrgIn, request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    org = await services.orgs.create(name=body.name, slug=body.slug, context=admin_context(request, admin))
    return JSONResponse(org_summary(org), status_code=201)


@router.get("", summary="List organizations")
async def list_orgs(services: ServicesDep) -> dict[str, Any]:
    return {"orgs": [org_summary(o) for o in await services.orgs.list_orgs()]}


@router.get("/{org}", summary="One organization (by id or slug)")
async def get_org(org: str, services: ServicesDep) -> dict[str, Any]:
    return org_summary(await services.orgs.find(org))


@router.get("/{org}/members", summary="The organization's members and their roles")
async def list_members(org: str, services: ServicesDep) -> dict[str, Any]:
    found = await services.orgs.find(org)
    rows = [
        {"user_id": u.id, "email": u.email, "role": m.role.value}
        for m, u in await services.orgs.members(found)
    ]
    return {"members": rows}


@router.post("/{org}/members", summary="Add an account (or change its role)")
async def add_member(
    org: str, body: MemberIn, request: Request, services: ServicesDep, admin: AdminDep
) -> dict[str, Any]:
    found = await services.orgs.find(org)
    membership = await services.orgs.add_member(
        found, email=body.email, role=body.role, context=admin_context(request, admin)
    )
    return membership_summary(membership, body.email)


@router.delete("/{org}/members/{email}", status_code=204, summary="Remove an account from the organization")
async def remove_member(
    org: str, email: str, request: Request, services: ServicesDep, admin: AdminDep
) -> Response:
    found = await services.orgs.find(org)
    await services.orgs.remove_member(found, email=email[:320], context=admin_context(request, admin))
    return Response(status_code=204)


@router.get("/{org}/domains", summary="The organization's domains")
async def list_domains(org: str, services: ServicesDep) -> dict[str, Any]:
    found = await services.orgs.find(org)
    return {"domains": [domain_summary(d) for d in await services.orgs.domains(found)]}


@router.post(
    "/{org}/domains", status_code=201, summary="Claim a domain (the TXT record to publish comes back)"
)
async def add_domain(
    org: str, body: DomainIn, request: Request, services: ServicesDep, admin: AdminDep
) -> Response:
    found = await services.orgs.find(org)
    claim = await services.orgs.add_domain(found, body.domain, context=admin_context(request, admin))
    return JSONResponse(domain_summary(claim), status_code=201)


@router.post("/{org}/domains/{domain}/verify", summary="Verify a claimed domain by DNS (or trust it)")
async def verify_domain(
    org: str,
    domain: str,
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
    body: VerifyIn | None = None,
) -> dict[str, Any]:
    found = await services.orgs.find(org)
    claim = await services.orgs.verify_domain(
        found, domain[:253], trust=bool(body and body.trust), context=admin_context(request, admin)
    )
    return domain_summary(claim)


@router.post(
    "/{org}/invitations", status_code=201, summary="Email an invitation (single use, this address only)"
)
async def invite(
    org: str, body: InvitationIn, request: Request, services: ServicesDep, admin: AdminDep
) -> Response:
    found = await services.orgs.find(org)
    invitation = await services.orgs.invite(
        found,
        email=body.email,
        role=body.role,
        invited_by="the operator",
        context=admin_context(request, admin),
    )
    return JSONResponse(invitation_summary(invitation, body.email), status_code=201)
