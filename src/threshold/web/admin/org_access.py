"""Who may administer one organization through `/admin/v1/orgs/{org}/...`: the dependency `org_admin`.

Two kinds of bearer access token pass, both verified by the provider as a resource server
(oidc.resource: signature, `typ`, issuer, audience, expiry, revocation, and the grant live now):

- the operator's: a client-credentials token with `threshold:admin` (as for the rest of /admin/v1), for
  every organization;
- an organization's own admin's: a user's token with the scopes `organization threshold:org_admin` whose
  `org_id` claim names the organization in the path, whose grant was issued for it, and whose user is,
  read now at each request, an admin or owner there (oidc.live_grant reads the membership).

Anything else is `403 insufficient_scope` (`401 invalid_token` for a token that is no good at all): a
plain member's token, a token without both scopes, an org-admin token for another organization (whether
or not the organization in the path exists). The non-org admin routes (`/admin/v1/clients`,
`/admin/v1/orgs` itself, ...) keep `require_admin`, so an org-admin token gets 403 there.

What a caller may then do inside the organization is the domain's rule, enforced by
core.orgs.service.Organizations with the `Actor` this dependency names: only owners (and the operator)
add, change or remove owners, and only the operator trusts a domain on its word. The audit trail records
the actor (`client:<client_id>` for the operator, `user:<user_id>` for an org admin).

Use it in any router under `/admin/v1/orgs/{org}` (the path parameter must be called `org`), and do not
put `require_admin` on that router (it refuses org-admin tokens):

    from threshold.web.admin.org_access import OrgAdmin

    @router.get("/admin/v1/orgs/{org}/connections")
    async def list_connections(access: OrgAdmin, services: ServicesDep) -> dict[str, Any]:
        rows = await services.sso.list_connections(access.org)   # access.org: the Organization
        ...                                                       # access.actor: pass as actor=
                                                                  # access.context: for the audit
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from threshold.core.models import RequestContext
from threshold.core.orgs.errors import OrgNotFound
from threshold.core.orgs.models import Organization
from threshold.core.orgs.service import MANAGING_ROLES, Actor
from threshold.oidc.errors import InsufficientScope
from threshold.oidc.organization import ORG_ADMIN_SCOPE, ORGANIZATION_SCOPE
from threshold.oidc.provider import ADMIN_SCOPE, VerifiedAccessToken
from threshold.web.deps import get_services, request_context
from threshold.web.oauth.routes import bearer_token


@dataclass(frozen=True, slots=True)
class OrgAccess:
    """Proved for this request: `actor` may administer `org`."""

    org: Organization
    actor: Actor
    """The operator (`role` None) or an admin or owner of `org`, with the role read for this request."""
    context: RequestContext
    """The request for the audit trail; its user agent names the admin API and the principal."""
    token: VerifiedAccessToken


def is_operator_token(verified: VerifiedAccessToken) -> bool:
    """The operator's token: a client's own (client_credentials) with threshold:admin."""
    return ADMIN_SCOPE in verified.scopes and verified.claims.get("sub") == verified.claims.get("client_id")


def _context(request: Request, principal: str) -> RequestContext:
    context = request_context(request)
    return RequestContext(ip=context.ip, user_agent=f"admin-api {principal}", device=context.device)


async def org_admin(request: Request, org_ref: str) -> OrgAccess:
    """The organization `org_ref` (id or slug) and who may administer it, for this request's bearer token.

    Raises:
        BearerTokenMissing, InvalidToken: no token, or one that does not verify or whose grant ended.
        InsufficientScope: neither the operator's token nor an org-admin token of an admin or owner of
            this organization.
        OrgNotFound: (the operator only) no such organization.
    """
    services = get_services(request)
    verified = await services.provider.verify_access_token(bearer_token(request))
    if is_operator_token(verified):
        principal = f"client:{verified.claims.get('client_id')}"
        return OrgAccess(
            await services.orgs.find(org_ref), Actor(principal), _context(request, principal), verified
        )
    if not {ORGANIZATION_SCOPE, ORG_ADMIN_SCOPE} <= verified.scopes:
        raise InsufficientScope(
            f"The {ADMIN_SCOPE} scope of a client-credentials token, or the {ORGANIZATION_SCOPE} and "
            f"{ORG_ADMIN_SCOPE} scopes of an organization's admin, is required."
        )
    live = verified.grant.org if verified.grant else None  # the membership, read just now
    user = verified.grant.user if verified.grant else None
    org: Organization | None
    try:
        org = await services.orgs.find(org_ref)
    except OrgNotFound:
        org = None
    if (
        org is None
        or live is None
        or user is None
        or verified.claims.get("org_id") != org.id
        or live.org_id != org.id
    ):
        raise InsufficientScope("The access token is for another organization.")
    if live.role not in MANAGING_ROLES:
        raise InsufficientScope("Only an admin or owner of the organization can administer it.")
    principal = f"user:{user.id}"
    return OrgAccess(org, Actor(principal, live.role), _context(request, principal), verified)


async def require_org_admin(request: Request, org: str) -> OrgAccess:
    """org_admin as a FastAPI dependency, for routes whose path names the organization `{org}`."""
    return await org_admin(request, org)


OrgAdmin = Annotated[OrgAccess, Depends(require_org_admin)]
