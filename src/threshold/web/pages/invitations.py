"""/invitations/accept: the emailed invitation's page. Signing in (or up) with the invited address comes
first; the link carries the person back here afterwards."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.errors import ThresholdError
from threshold.web.deps import (
    ContextDep,
    MaybeAuth,
    ServicesDep,
)
from threshold.web.errors import headers_for, status_for
from threshold.web.pages.common import field, read_form, redirect
from threshold.web.pages.render import render

router = APIRouter(include_in_schema=False)


@router.get("/invitations/accept")
async def invitation_page(
    request: Request, services: ServicesDep, auth: MaybeAuth, token: str = ""
) -> Response:
    token = token[:128]
    if auth is None:  # sign in (or up) first, then back here
        return redirect("/login?" + urlencode({"next": "/invitations/accept?" + urlencode({"token": token})}))
    try:
        invitation, org = await services.orgs.invitation(token)
    except ThresholdError as error:
        return await render(
            request,
            "invitation.html",
            error=error.page_detail,
            status=status_for(error),
            headers=headers_for(error),
        )
    return await render(
        request, "invitation.html", token=token, org_name=org.name, role=invitation.role.value, user=auth.user
    )


@router.post("/invitations/accept")
async def invitation_accept(
    request: Request, services: ServicesDep, context: ContextDep, auth: MaybeAuth
) -> Response:
    if auth is None:
        return redirect("/login")
    try:
        form = await read_form(request)
        token = field(form, "token")
        _, org = await services.orgs.invitation(token)
        membership = await services.orgs.accept(token, user=auth.user, context=context)
    except ThresholdError as error:
        return await render(
            request,
            "invitation.html",
            error=error.page_detail,
            status=status_for(error),
            headers=headers_for(error),
        )
    return await render(request, "invitation.html", done=True, org_name=org.name, role=membership.role.value)
