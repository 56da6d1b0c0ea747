"""Organizations, memberships and domains as the domain sees them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class OrgRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    slug: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Membership:
    org_id: str
    user_id: str
    role: OrgRole
    created_at: float


@dataclass(frozen=True, slots=True)
class OrgDomain:
    """A domain claimed by one organization; verified by a DNS TXT record or asserted by the operator."""

    domain: str
    org_id: str
    txt_value: str
    created_at: float
    verified_at: float | None = None
    trusted: bool = False
    """Verified by the operator's word (`--trust`), not by DNS."""

    @property
    def verified(self) -> bool:
        return self.verified_at is not None

    @property
    def txt_name(self) -> str:
        """Where the TXT record goes: a name of its own under the domain."""
        return f"{TXT_LABEL}.{self.domain}"


TXT_LABEL = "_threshold-challenge"


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation to join an organization: single use, expiring, for one address only. Only the
    digest of its token is stored; the token travels in the emailed link."""

    id: str
    org_id: str
    email_normalized: str
    role: OrgRole
    digest: str
    invited_by: str
    created_at: float
    expires_at: float
    accepted_at: float | None = None


ROLE_ORDER = (OrgRole.OWNER, OrgRole.ADMIN, OrgRole.MEMBER)


def highest_role(roles: Iterable[OrgRole]) -> OrgRole:
    """The most privileged of the roles (member when there is none): the role a person in several
    mapped groups gets, from SSO groups and from SCIM groups alike."""
    found = set(roles)
    return next((role for role in ROLE_ORDER if role in found), OrgRole.MEMBER)
