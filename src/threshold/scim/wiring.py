"""Builds the SCIM pieces from a process's Services (the web app per process, the CLI per command).

Importing this module is cheap: scim2-server and its models (about a second of a process's start on a
small machine, most of it pydantic building the message models) are imported by `load` or
`build_scim`, so a process that never serves SCIM (a CLI command, a server nobody provisions) never
pays for them. The SCIM tokens need none of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from threshold.adapters.sql.db import unit_of_work
from threshold.adapters.sql.scim_repos import SqlScimResourceRepo
from threshold.core.models import RequestContext
from threshold.core.scim.accounts import ScimAccounts
from threshold.core.scim.tokens import ScimTokens
from threshold.services import Services

if TYPE_CHECKING:
    from threshold.scim.app import ScimApplication

Scope = dict[str, Any]
"""An ASGI scope, as scim2-server's ASGI application takes it."""


def load() -> None:
    """Import the SCIM application and its storage (scim2-server, scim2-models)."""
    import threshold.scim.app
    import threshold.scim.storage  # noqa: F401


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


def build_scim(
    services: Services, *, tokens: ScimTokens, context_of: Callable[[Scope], RequestContext]
) -> Scim:
    """The SCIM application over these Services, sharing `tokens` with whoever manages them."""
    from threshold.scim.app import ScimApplication, scim_provider
    from threshold.scim.storage import ScimBackend

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
