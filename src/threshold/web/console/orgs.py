"""The console's organizations: create one; claim and verify its domains; see and remove its identity
providers' connections; make and revoke its SCIM tokens. The operator acts at operator level
(`Actor("console:<id>")`), under the same rules as the CLI and the admin API (core.orgs, core.sso,
core.scim). Connections are added with the CLI or the admin API (their metadata and secrets are files
and long values, not a form's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from threshold.core.clock import iso
from threshold.core.errors import ThresholdError
from threshold.core.orgs.models import Organization
from threshold.web.console.access import Operator, change, done, page, read
from threshold.web.deps import get_services
from threshold.web.errors import status_for
from threshold.web.pages.common import field
from threshold.web.scim import scim_tokens_for

router = APIRouter(prefix="/admin", include_in_schema=False)

MEMBERS_SHOWN = 100


async def _orgs_page(request: Request, operator: Operator, **extra: Any) -> Response:
    listed = await get_services(request).orgs.list_orgs()
    return await page(
        request,
        "console/orgs.html",
        operator,
        section="orgs",
        orgs=[
            {"id": o.id, "slug": o.slug, "name": o.name, "created_at": iso(o.created_at)}
            for o in sorted(listed, key=lambda o: o.slug)
        ],
        **extra,
    )


@router.get("/orgs")
async def orgs(request: Request) -> Response:
    async def work(operator: Operator) -> Response:
        return await _orgs_page(request, operator)

    return await read(request, work)


@router.post("/orgs")
async def create_org(request: Request) -> Response:
    async def work(operator: Operator, form: FormData) -> Response:
        org = await get_services(request).orgs.create(
            name=field(form, "name"), slug=field(form, "slug").strip() or None, context=operator.context
        )
        return done(f"/admin/orgs/{org.slug}", "org_created")

    async def on_error(operator: Operator, error: ThresholdError) -> Response:
        return await _orgs_page(request, operator, error=error.page_detail, status=status_for(error))

    return await change(request, work, back="/admin/orgs", on_error=on_error)


async def _org_page(request: Request, operator: Operator, ref: str, **extra: Any) -> Response:
    services = get_services(request)
    org = await services.orgs.find(ref)
    scim_tokens = scim_tokens_for(request.app)
    members = await services.orgs.members(org)
    return await page(
        request,
        "console/org.html",
        operator,
        section="orgs",
        org={"id": org.id, "slug": org.slug, "name": org.name, "created_at": iso(org.created_at)},
        domains=[
            {
                "domain": d.domain,
                "verified": d.verified,
                "trusted": d.trusted,
                "txt_name": d.txt_name,
                "txt_value": d.txt_value,
            }
            for d in await services.orgs.domains(org)
        ],
        connections=[
            {
                "id": c.id,
                "type": c.type.value,
                "name": c.name,
                "require_sso": c.policy.require_sso,
                "created_at": iso(c.created_at),
            }
            for c in await services.sso.connections.of_org(org)
        ],
        scim_base=scim_tokens.base_url,
        scim_tokens=[
            {
                "id": t.id,
                "name": t.name,
                "created_at": iso(t.created_at),
                "last_used_at": iso(t.last_used_at) if t.last_used_at else None,
                "live": t.live,
            }
            for t in await scim_tokens.list_tokens(org)
        ],
        members=[{"id": u.id, "email": u.email, "role": m.role.value} for m, u in members[:MEMBERS_SHOWN]],
        member_count=len(members),
        **extra,
    )


@router.get("/orgs/{ref}")
async def org_detail(request: Request, ref: str) -> Response:
    async def work(operator: Operator) -> Response:
        return await _org_page(request, operator, ref)

    return await read(request, work)


OrgAct = Callable[[Operator, Organization, FormData], Awaitable[Response]]


def _org_change(request: Request, ref: str, act: OrgAct) -> Awaitable[Response]:
    """A POST on an organization's page: `act(operator, org, form)` answers (a notice, or a page)."""
    target = f"/admin/orgs/{ref[:64]}"

    async def work(operator: Operator, form: FormData) -> Response:
        org = await get_services(request).orgs.find(ref)
        return await act(operator, org, form)

    async def on_error(operator: Operator, error: ThresholdError) -> Response:
        return await _org_page(request, operator, ref, error=error.page_detail, status=status_for(error))

    return change(request, work, back=target, on_error=on_error)


@router.post("/orgs/{ref}/domains")
async def add_domain(request: Request, ref: str) -> Response:
    async def act(operator: Operator, org: Organization, form: FormData) -> Response:
        await get_services(request).orgs.add_domain(
            org, field(form, "domain"), context=operator.context, actor=operator.actor
        )
        return done(f"/admin/orgs/{org.slug}", "domain_added")

    return await _org_change(request, ref, act)


@router.post("/orgs/{ref}/domains/{domain}/verify")
async def verify_domain(request: Request, ref: str, domain: str) -> Response:
    async def act(operator: Operator, org: Organization, form: FormData) -> Response:
        await get_services(request).orgs.verify_domain(
            org,
            domain[:253],
            trust=field(form, "trust") == "on",
            context=operator.context,
            actor=operator.actor,
        )
        return done(f"/admin/orgs/{org.slug}", "domain_verified")

    return await _org_change(request, ref, act)


@router.post("/orgs/{ref}/connections/{connection_id}/remove")
async def remove_connection(request: Request, ref: str, connection_id: str) -> Response:
    async def act(operator: Operator, org: Organization, form: FormData) -> Response:
        await get_services(request).sso.connections.remove(org, connection_id[:64], context=operator.context)
        return done(f"/admin/orgs/{org.slug}", "connection_removed")

    return await _org_change(request, ref, act)


@router.post("/orgs/{ref}/scim-tokens")
async def create_scim_token(request: Request, ref: str) -> Response:
    async def act(operator: Operator, org: Organization, form: FormData) -> Response:
        tokens = scim_tokens_for(request.app)
        issued = await tokens.create(
            org, name=field(form, "name"), context=operator.context, actor=operator.actor
        )
        return await page(
            request,
            "console/scim_token.html",
            operator,
            section="orgs",
            org={"slug": org.slug, "name": org.name},
            token=issued.token,
            name=issued.record.name,
            base_url=tokens.base_url,
            headers={"Cache-Control": "no-store"},
        )

    return await _org_change(request, ref, act)


@router.post("/orgs/{ref}/scim-tokens/{token_id}/revoke")
async def revoke_scim_token(request: Request, ref: str, token_id: str) -> Response:
    async def act(operator: Operator, org: Organization, form: FormData) -> Response:
        await scim_tokens_for(request.app).revoke(
            org, token_id[:64], context=operator.context, actor=operator.actor
        )
        return done(f"/admin/orgs/{org.slug}", "scim_token_revoked")

    return await _org_change(request, ref, act)
