"""/api/v1/organizations: the person's organizations, and selecting one in the session (the JSON twin of
the account page's organization switcher)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.responses import JSONResponse

from threshold.core.orgs.models import Membership, Organization
from threshold.web.api.v1 import PROBLEM, SessionOut, UserOut, session_out, user_out
from threshold.web.deps import (
    AuthDep,
    ServicesDep,
    csrf_protect,
)
from threshold.web.security import set_session_cookie

router = APIRouter(prefix="/api/v1", dependencies=[Depends(csrf_protect)], tags=["api v1: organizations"])


class OrganizationOut(BaseModel):
    id: str
    slug: str
    name: str
    role: str
    selected: bool = Field(description="The organization selected in this session.")


class OrganizationList(BaseModel):
    organizations: list[OrganizationOut]


class SelectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org: StrictStr = Field(min_length=1, max_length=64, description="The organization's id or slug.")


class SelectedSession(BaseModel):
    user: UserOut
    session: SessionOut
    organization: OrganizationOut


def organization_out(membership: Membership, org: Organization, *, selected: bool) -> OrganizationOut:
    return OrganizationOut(
        id=org.id, slug=org.slug, name=org.name, role=membership.role.value, selected=selected
    )


@router.get(
    "/organizations",
    response_model=OrganizationList,
    summary="The person's organizations and roles; which one this session selected",
    responses={401: PROBLEM},
)
async def list_organizations(auth: AuthDep, services: ServicesDep) -> OrganizationList:
    found = await services.orgs.memberships_with_orgs(auth.user)
    return OrganizationList(
        organizations=[organization_out(m, o, selected=o.id == auth.session.org_id) for m, o in found]
    )


@router.post(
    "/organizations/select",
    response_model=SelectedSession,
    summary="Select one of the person's organizations: a NEW session id (and cookie), the old one ends",
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM},
)
async def select_organization(body: SelectIn, auth: AuthDep, services: ServicesDep) -> Response:
    issued, org, membership = await services.orgs.select(auth.session, user=auth.user, org=body.org)
    answer = SelectedSession(
        user=user_out(auth.user),
        session=session_out(issued.record),
        organization=organization_out(membership, org, selected=True),
    )
    response = JSONResponse(answer.model_dump())
    set_session_cookie(response, issued.token, max_age=services.settings.session.absolute_lifetime)
    return response
