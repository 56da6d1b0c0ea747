"""/admin/v1/orgs: the `threshold orgs` operations over HTTP.

Creating and listing organizations is the operator's (an admin token with `threshold:admin`). Everything
under `/admin/v1/orgs/{org}` is also open to the organization's own admins and owners, with an org-admin
token (`organization threshold:org_admin`) for that organization: see web.admin.org_access.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from threshold.core.orgs.service import domain_summary, invitation_summary, membership_summary, org_summary
from threshold.oidc.provider import VerifiedAccessToken
from threshold.web.admin.org_access import OrgAccess, OrgAdmin
from threshold.web.admin.routes import admin_context, require_admin
from threshold.web.deps import ServicesDep

router = APIRouter(prefix="/admin/v1/orgs", tags=["admin v1: organizations"])
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


@router.get("", summary="List organizations", dependencies=[Depends(require_admin)])
async def list_orgs(services: ServicesDep) -> dict[str, Any]:
    return {"orgs": [org_summary(o) for o in await services.orgs.list_orgs()]}


@router.get("/{org}", summary="One organization (by id or slug)")
async def get_org(access: OrgAdmin) -> dict[str, Any]:
    return org_summary(access.org)


@router.get("/{org}/members", summary="The organization's members and their roles")
async def list_members(access: OrgAdmin, services: ServicesDep) -> dict[str, Any]:
    rows = [
        {"user_id": u.id, "email": u.email, "role": m.role.value}
        for m, u in await services.orgs.members(access.org)
    ]
    return {"members": rows}


@router.post(
    "/{org}/members", summary="Add an account (or change its role; only owners add or change owners)"
)
async def add_member(body: MemberIn, access: OrgAdmin, services: ServicesDep) -> dict[str, Any]:
    membership = await services.orgs.add_member(
        access.org, email=body.email, role=body.role, context=access.context, actor=access.actor
    )
    return membership_summary(membership, body.email)


@router.delete(
    "/{org}/members/{email}",
    status_code=204,
    summary="Remove an account from the organization, ending its sessions and tokens for it",
)
async def remove_member(email: str, access: OrgAdmin, services: ServicesDep) -> Response:
    await services.orgs.remove_member(
        access.org, email=email[:320], context=access.context, actor=access.actor
    )
    return Response(status_code=204)


@router.get("/{org}/domains", summary="The organization's domains")
async def list_domains(access: OrgAdmin, services: ServicesDep) -> dict[str, Any]:
    return {"domains": [domain_summary(d) for d in await services.orgs.domains(access.org)]}


@router.post(
    "/{org}/domains", status_code=201, summary="Claim a domain (the TXT record to publish comes back)"
)
async def add_domain(body: DomainIn, access: OrgAdmin, services: ServicesDep) -> Response:
    claim = await services.orgs.add_domain(
        access.org, body.domain, context=access.context, actor=access.actor
    )
    return JSONResponse(domain_summary(claim), status_code=201)


@router.post(
    "/{org}/domains/{domain}/verify",
    summary="Verify a claimed domain by DNS (or, the operator only, trust it)",
)
async def verify_domain(
    domain: str, access: OrgAdmin, services: ServicesDep, body: VerifyIn | None = None
) -> dict[str, Any]:
    claim = await services.orgs.verify_domain(
        access.org,
        domain[:253],
        trust=bool(body and body.trust),
        context=access.context,
        actor=access.actor,
    )
    return domain_summary(claim)


@router.post(
    "/{org}/invitations", status_code=201, summary="Email an invitation (single use, this address only)"
)
async def invite(body: InvitationIn, access: OrgAdmin, services: ServicesDep) -> Response:
    invitation = await services.orgs.invite(
        access.org,
        email=body.email,
        role=body.role,
        invited_by=_inviter(access),
        context=access.context,
        actor=access.actor,
    )
    return JSONResponse(invitation_summary(invitation, body.email), status_code=201)


def _inviter(access: OrgAccess) -> str:
    """Who the invitation says invited the person: the operator, or the admin by address."""
    user = access.token.grant.user if access.token.grant else None
    return "the operator" if access.actor.is_operator or user is None else user.email
