"""The `organization` scope: the organization selected in the session and the person's role there, as the
claims `org_id`, `org_slug` and `org_role` of the ID token (OIDC Core 5.1 allows claims of one's own),
the access token (RFC 9068 section 2.2.3.1, additional claims) and userinfo.

The organization is the one the session had selected when the client was authorized (the hosted pages'
switcher selects another under a new session id); it is remembered by the code, the grant and its
refresh tokens. The role is read from the membership each time a token is minted and each time a grant
is checked (oidc.live_grant): a changed role shows at the next refresh, and a grant issued for an
organization stands only while its user is a member there. Claims are left out when no organization
was selected or the person is no longer a member.

`threshold:org_admin` asks for a token that administers the organization it names (web.admin.org_access),
for a user who is its admin or owner when the token is used.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from threshold.core.models import SessionRecord
from threshold.core.orgs.models import OrgRole
from threshold.core.orgs.ports import OrgRepo

ORGANIZATION_SCOPE = "organization"
ORG_ADMIN_SCOPE = "threshold:org_admin"
ORG_CLAIMS = ("org_id", "org_slug", "org_role")


@dataclass(frozen=True, slots=True)
class SelectedOrganization:
    """A membership as it stands now: the organization (id and slug) and the person's role there."""

    org_id: str
    slug: str
    role: OrgRole

    def claims(self) -> dict[str, str]:
        return {"org_id": self.org_id, "org_slug": self.slug, "org_role": self.role.value}


def org_of_authorization(scopes: Collection[str], session: SessionRecord) -> str | None:
    """The organization an authorization is for: the session's selected one, when the `organization`
    scope was granted; None otherwise."""
    return session.org_id if ORGANIZATION_SCOPE in scopes else None


class Memberships:
    """Memberships read live from the organizations' store (core.orgs.ports.OrgRepo).

    Until a store is attached (provider.Provider.with_organizations) nobody is a member of anything:
    tokens carry no organization claims and a grant issued for an organization does not stand.
    """

    def __init__(self, orgs: OrgRepo | None = None) -> None:
        self._orgs = orgs

    def attach(self, orgs: OrgRepo) -> None:
        self._orgs = orgs

    async def membership(self, *, org_id: str, user_id: str) -> SelectedOrganization | None:
        """The user's membership of the organization as it stands now, or None when there is none."""
        if self._orgs is None:
            return None
        found = next((m for m in await self._orgs.memberships_of(user_id) if m.org_id == org_id), None)
        if found is None:
            return None
        org = await self._orgs.get(org_id)
        return SelectedOrganization(org.id, org.slug, found.role) if org is not None else None
