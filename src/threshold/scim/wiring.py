"""Builds the SCIM pieces from a process's Services (the web app per process, the CLI per command)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scim2_server.applications.asgi import Scope

from threshold.adapters.sql.db import unit_of_work
from threshold.adapters.sql.scim_repos import SqlScimResourceRepo
from threshold.core.models import RequestContext
from threshold.core.scim.accounts import ScimAccounts
from threshold.core.scim.tokens import ScimTokens
from threshold.scim.app import ScimApplication, scim_provider
from threshold.scim.storage import ScimBackend
from threshold.services import Services


def scim_tokens(services: Services) -> ScimTokens:
    return ScimTokens(
        repo=services.scim_token_repo,
        auditor=services.auditor,
        clock=services.clock,
        issuer=services.settings.issuer,
    )


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
        provisioning=services.provisioning,
        auditor=services.auditor,
        clock=services.clock,
    )
    backend = ScimBackend(
        repo=SqlScimResourceRepo(services.engine),
        accounts=accounts,
        provider=scim_provider(),
        clock=services.clock,
        unit_of_work=lambda: unit_of_work(services.engine),
    )
    return Scim(
        services=services,
        tokens=tokens,
        accounts=accounts,
        app=ScimApplication(backend=backend, tokens=tokens, context_of=context_of),
    )
