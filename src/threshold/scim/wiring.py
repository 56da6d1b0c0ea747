"""Builds the SCIM pieces from a process's Services (the web app per process, the CLI per command)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scim2_server.applications.asgi import Scope

from threshold.adapters.sql.scim_repos import SqlScimResourceRepo, SqlScimTokenRepo
from threshold.core.models import RequestContext, User
from threshold.core.orgs.models import Organization
from threshold.core.scim.accounts import ClaimUnverified, ScimAccounts
from threshold.core.scim.tokens import ScimTokens
from threshold.scim.app import ScimApplication, scim_provider
from threshold.scim.storage import ScimBackend
from threshold.services import Services


def scim_tokens(services: Services) -> ScimTokens:
    return ScimTokens(
        repo=SqlScimTokenRepo(services.engine),
        auditor=services.auditor,
        clock=services.clock,
        issuer=services.settings.issuer,
    )


def _claimer(services: Services) -> ClaimUnverified:
    async def claim(user: User, org: Organization, context: RequestContext) -> User:
        """The organization's IdP is authoritative for the address: the rule SSO applies at a first
        sign-in (core.sso.signin.SsoSignIn.claim_unverified), audited as claimed by `scim:<org id>`."""
        return await services.sso.claim_unverified(user, claimant=f"scim:{org.id}", context=context)

    return claim


@dataclass(frozen=True, slots=True)
class Scim:
    services: Services
    tokens: ScimTokens
    accounts: ScimAccounts
    app: ScimApplication


def build_scim(services: Services, *, context_of: Callable[[Scope], RequestContext]) -> Scim:
    tokens = scim_tokens(services)
    accounts = ScimAccounts(
        users=services.users,
        orgs=services.orgs,
        accounts=services.accounts,
        connections=services.sso.connections,
        claim_unverified=_claimer(services),
        auditor=services.auditor,
        clock=services.clock,
    )
    backend = ScimBackend(
        repo=SqlScimResourceRepo(services.engine),
        accounts=accounts,
        provider=scim_provider(),
        clock=services.clock,
    )
    return Scim(
        services=services,
        tokens=tokens,
        accounts=accounts,
        app=ScimApplication(backend=backend, tokens=tokens, context_of=context_of),
    )
