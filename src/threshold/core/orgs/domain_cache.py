"""Domain claims read from memory, kept exact like OAuth clients (oidc.client_cache).

Every password sign-in reads the claim of its address's domain twice: home-realm discovery before the
password is checked (core.sso.connections) and the SSO policy before the session is issued
(core.sso.policy). Claims change rarely (claimed, verified), and almost every address has none, so
the absence of a claim is kept as well as a claim. Both writes drop the entry on every process through
the invalidation feed of the session cache once they have committed; while that feed is lost every
read goes to the store, and nothing is answered from memory past the cache's `max_age`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from threshold.core.orgs.models import Invitation, Membership, Organization, OrgDomain
from threshold.core.orgs.ports import OrgRepo
from threshold.core.session_cache import ITEM_PREFIX, Invalidator, SessionCache


def _key(domain: str) -> str:
    return f"{ITEM_PREFIX}domain:{domain}"


@dataclass(frozen=True, slots=True)
class _Claim:
    """What the store said about a domain, the absence of a claim included (the cache keeps no None)."""

    claim: OrgDomain | None


class CachedOrgRepo:
    """An OrgRepo whose `get_domain` answers from memory; every other method goes to the store."""

    def __init__(self, orgs: OrgRepo, cache: SessionCache, invalidator: Invalidator) -> None:
        self._orgs = orgs
        self._cache = cache
        self._invalidator = invalidator

    async def get_domain(self, domain: str) -> OrgDomain | None:
        async def read() -> _Claim:
            return _Claim(await self._orgs.get_domain(domain))

        found = await self._cache.item(_key(domain), read)
        return found.claim if found is not None else None

    async def add_domain(self, domain: OrgDomain) -> OrgDomain:
        try:
            return await self._orgs.add_domain(domain)
        finally:  # DomainTaken included: whatever the store holds now is what the next read sees
            await self._invalidator.item_changed(_key(domain.domain))

    async def mark_verified(self, domain: str, *, at: float, trusted: bool) -> None:
        try:
            await self._orgs.mark_verified(domain, at=at, trusted=trusted)
        finally:
            await self._invalidator.item_changed(_key(domain))

    async def domains(self, org_id: str) -> Sequence[OrgDomain]:
        return await self._orgs.domains(org_id)

    async def add(self, org: Organization) -> None:
        await self._orgs.add(org)

    async def get(self, org_id: str) -> Organization | None:
        return await self._orgs.get(org_id)

    async def get_by_slug(self, slug: str) -> Organization | None:
        return await self._orgs.get_by_slug(slug)

    async def list(self) -> Sequence[Organization]:
        return await self._orgs.list()

    async def put_member(self, membership: Membership) -> None:
        await self._orgs.put_member(membership)

    async def remove_member(self, org_id: str, user_id: str) -> bool:
        return await self._orgs.remove_member(org_id, user_id)

    async def members(self, org_id: str) -> Sequence[Membership]:
        return await self._orgs.members(org_id)

    async def memberships_of(self, user_id: str) -> Sequence[Membership]:
        return await self._orgs.memberships_of(user_id)

    async def add_invitation(self, invitation: Invitation) -> None:
        await self._orgs.add_invitation(invitation)

    async def invitation_by_digest(self, digest: str) -> Invitation | None:
        return await self._orgs.invitation_by_digest(digest)

    async def accept_invitation(self, invitation_id: str, *, at: float) -> bool:
        return await self._orgs.accept_invitation(invitation_id, at=at)
