"""Connections to upstream identity providers and the identities they assert."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from threshold.core.orgs.models import OrgRole


class ConnectionType(StrEnum):
    OIDC = "oidc"
    SAML = "saml"


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """An upstream OpenID Provider. `client_secret` is sealed with the key-encryption key."""

    issuer: str
    """Exact issuer; Microsoft's multi-tenant endpoints use `{tenantid}`, resolved from the token's `tid`."""
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"


@dataclass(frozen=True, slots=True)
class SamlConfig:
    """An upstream SAML IdP, from its metadata (several signing certificates for rollover)."""

    metadata_xml: str
    email_attribute: str = "email"
    """The attribute that holds the address; the NameID is used when it is absent and is an address."""
    name_attribute: str = "name"
    groups_attribute: str = "groups"
    allow_idp_initiated: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """What an organization asks of sign-ins through a connection."""

    require_sso: bool = False
    """No other method signs in an address at the organization's verified domains..."""
    break_glass: tuple[str, ...] = ()
    """...except these owners (normalized addresses), whose every use is audited."""
    require_idp_mfa: bool = False
    """Refuse assertions that do not say the IdP used more than one factor."""
    require_local_mfa: bool = False
    """Ask for a local second factor after the IdP (TOTP, recovery code or passkey)."""
    default_role: OrgRole = OrgRole.MEMBER
    role_groups: dict[str, str] = field(default_factory=dict)
    """Upstream group name -> organization role (owner, admin or member), for just-in-time members."""


@dataclass(frozen=True, slots=True)
class Connection:
    id: str
    org_id: str | None
    """None for an operator-wide social connection (from Settings)."""
    type: ConnectionType
    name: str
    created_at: float
    oidc: OidcConfig | None = None
    saml: SamlConfig | None = None
    policy: Policy = field(default_factory=Policy)

    @property
    def social(self) -> bool:
        return self.org_id is None


@dataclass(frozen=True, slots=True)
class LinkedIdentity:
    """An upstream subject linked to a local account: later sign-ins find the account by it."""

    connection_id: str
    subject: str
    user_id: str
    email: str
    created_at: float
    last_seen_at: float


@dataclass(frozen=True, slots=True)
class AssertedIdentity:
    """What an upstream IdP asserted, after the protocol module verified it."""

    subject: str
    email: str | None
    email_verified: bool | None
    """OIDC's claim; None when the protocol has none (SAML)."""
    name: str | None = None
    groups: tuple[str, ...] = ()
    acr: str | None = None
    amr: tuple[str, ...] = ()
    mfa: bool = False
    """The IdP said it used more than one factor (amr `mfa`, or an MFA authentication context)."""
    upstream_session: str | None = None
    """OIDC `sid` or SAML SessionIndex: what the IdP's logout names."""
