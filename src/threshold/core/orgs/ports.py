"""Storage of organizations (implemented in adapters/sql/org_repos.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from threshold.core.orgs.models import Invitation, Membership, Organization, OrgDomain


class OrgRepo(Protocol):
    async def add(self, org: Organization) -> None:
        """Raises SlugTaken when another organization has the slug."""
        ...

    async def get(self, org_id: str) -> Organization | None: ...

    async def get_by_slug(self, slug: str) -> Organization | None: ...

    async def list(self) -> Sequence[Organization]: ...

    async def put_member(self, membership: Membership) -> None:
        """Add the member, or change the role of one already there."""
        ...

    async def remove_member(self, org_id: str, user_id: str) -> bool: ...

    async def members(self, org_id: str) -> Sequence[Membership]: ...

    async def memberships_of(self, user_id: str) -> Sequence[Membership]: ...

    async def add_domain(self, domain: OrgDomain) -> OrgDomain:
        """Store the claim, or return the organization's existing one for the domain.

        Raises:
            DomainTaken: another organization has claimed it.
        """
        ...

    async def get_domain(self, domain: str) -> OrgDomain | None: ...

    async def domains(self, org_id: str) -> Sequence[OrgDomain]: ...

    async def mark_verified(self, domain: str, *, at: float, trusted: bool) -> None: ...

    async def add_invitation(self, invitation: Invitation) -> None: ...

    async def invitation_by_digest(self, digest: str) -> Invitation | None: ...

    async def accept_invitation(self, invitation_id: str, *, at: float) -> bool:
        """Mark it used, only if it is unused and unexpired: of two concurrent acceptances, one wins."""
        ...
