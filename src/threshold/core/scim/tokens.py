"""An organization's SCIM bearer tokens: made by the operator or the organization's owner, shown once,
stored as a SHA-256 digest, several live at once so that an identity provider's token can be rolled
over without a gap, revoked one by one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.errors import InvalidRequest, NotFound
from threshold.core.models import AuditKind, RequestContext
from threshold.core.orgs.models import Organization, OrgRole
from threshold.core.orgs.service import OPERATOR_ACTOR, Actor, check_may_manage
from threshold.core.secrets import digest, equal, new_id, new_token

TOKEN_PREFIX = "scim_"
"""Every token starts with it, so that secret scanners (and people) recognise one."""
MAX_TOKEN = 128
TOUCH_INTERVAL = 60.0
"""`last_used_at` is written at most this often per token (seconds): not a write per request."""


@dataclass(frozen=True, slots=True)
class ScimToken:
    """A stored token: its digest, never the token."""

    id: str
    org_id: str
    digest: str
    name: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def live(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class IssuedScimToken:
    """A new token: `token` is shown to its maker once and kept nowhere."""

    token: str
    record: ScimToken


@dataclass(frozen=True, slots=True)
class ScimClient:
    """Proved for one request: the bearer holds a live SCIM token of `org`."""

    org: Organization
    token_id: str

    @property
    def principal(self) -> str:
        """How the audit trail names the client."""
        return f"scim:{self.token_id}"


class ScimTokenNotFound(NotFound):
    code = "scim_token_not_found"
    message = "This organization has no such SCIM token."


class ScimTokenRepo(Protocol):
    async def add(self, token: ScimToken) -> None: ...

    async def for_org(self, org_id: str) -> Sequence[ScimToken]:
        """The organization's tokens, revoked ones included, oldest first."""
        ...

    async def by_digest(self, token_digest: str) -> tuple[ScimToken, Organization] | None:
        """The token with this digest and its organization (one read)."""
        ...

    async def revoke(self, org_id: str, token_id: str, *, at: float) -> bool:
        """Mark a live token of the organization revoked; False when there is none."""
        ...

    async def touch(self, token_id: str, *, at: float) -> None: ...


class OrgFinder(Protocol):
    async def find(self, ref: str) -> Organization: ...


def scim_token_summary(token: ScimToken) -> dict[str, object]:
    """The public shape of a token (CLI --json and the admin API): never its digest."""
    return {
        "id": token.id,
        "org_id": token.org_id,
        "name": token.name,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked": token.revoked_at is not None,
        "revoked_at": token.revoked_at,
    }


class ScimTokens:
    def __init__(self, *, repo: ScimTokenRepo, auditor: Auditor, clock: Clock, issuer: str) -> None:
        self._repo = repo
        self._audit = auditor
        self._clock = clock
        self.base_url = f"{issuer.rstrip('/')}/scim/v2"

    async def create(
        self,
        org: Organization,
        *,
        name: str = "",
        context: RequestContext,
        actor: Actor = OPERATOR_ACTOR,
    ) -> IssuedScimToken:
        """A new token for the organization's identity provider. Only an owner (or the operator) makes
        one: whoever holds it provisions and deprovisions every account at the organization's domains.

        Raises:
            InvalidRequest: the name; Forbidden, OwnerRequired: the actor.
        """
        check_may_manage(actor, new=OrgRole.OWNER)
        name = " ".join(name.split()) or "SCIM token"
        if len(name) > 200 or not name.isprintable():
            raise InvalidRequest("A token's name is at most 200 printable characters.")
        token = TOKEN_PREFIX + new_token()
        record = ScimToken(
            id=new_id(), org_id=org.id, digest=digest(token), name=name, created_at=self._clock.now()
        )
        await self._repo.add(record)
        await self._audit.record(
            AuditKind.SCIM_TOKEN_CREATED,
            user_id=None,
            context=context,
            org=org.id,
            token=record.id,
            **actor.audit(),
        )
        return IssuedScimToken(token=token, record=record)

    async def list_tokens(self, org: Organization) -> Sequence[ScimToken]:
        return await self._repo.for_org(org.id)

    async def revoke(
        self, org: Organization, token_id: str, *, context: RequestContext, actor: Actor = OPERATOR_ACTOR
    ) -> None:
        """Raises ScimTokenNotFound (unknown, of another organization, or already revoked)."""
        check_may_manage(actor, new=OrgRole.OWNER)
        if not await self._repo.revoke(org.id, token_id[:64], at=self._clock.now()):
            raise ScimTokenNotFound()
        await self._audit.record(
            AuditKind.SCIM_TOKEN_REVOKED,
            user_id=None,
            context=context,
            org=org.id,
            token=token_id[:64],
            **actor.audit(),
        )

    async def authenticate(self, presented: str) -> ScimClient | None:
        """The organization a bearer token speaks for, or None (unknown, malformed or revoked). Looked up
        by digest; the stored digest is compared again in constant time."""
        if not presented.startswith(TOKEN_PREFIX) or len(presented) > MAX_TOKEN:
            return None
        presented_digest = digest(presented)
        found = await self._repo.by_digest(presented_digest)
        if found is None:
            return None
        record, org = found
        if not record.live or not equal(record.digest, presented_digest):
            return None
        now = self._clock.now()
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL:
            await self._repo.touch(record.id, at=now)
        return ScimClient(org=org, token_id=record.id)
