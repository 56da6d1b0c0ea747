"""Connections of organizations to their identity providers, and home-realm discovery.

An organization adds an OIDC connection (issuer, client id and secret, sealed at rest) or a SAML one
(the IdP's metadata). Operator-wide social connections come from Settings and belong to no
organization. Home-realm discovery routes an address to a connection only through a *verified*
domain: a claimed but unverified domain routes nothing, so no organization can capture sign-ins for
an address it has not proved it controls.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.crypto import SecretBox
from threshold.core.emails import normalize_email
from threshold.core.errors import EmailInvalid, InvalidRequest
from threshold.core.i18n import N_
from threshold.core.models import AuditKind, RequestContext
from threshold.core.orgs.models import Organization, OrgRole
from threshold.core.orgs.ports import OrgRepo
from threshold.core.orgs.service import normalize_domain
from threshold.core.secrets import new_id
from threshold.core.sso.errors import ConnectionNotFound
from threshold.core.sso.models import Connection, ConnectionType, OidcConfig, Policy, SamlConfig
from threshold.core.sso.ports import ConnectionRepo, UpstreamSaml
from threshold.settings import SocialConnectionSettings
from threshold.settings.sections import upstream_url_error

SECRET_PURPOSE = "sso-client-secret"


@dataclass(frozen=True, slots=True)
class ClaimNames:
    """Where an IdP puts the address, the name and the groups (an OIDC claim or a SAML attribute), when
    not under the usual names; empty for the defaults."""

    email: str = ""
    name: str = ""
    groups: str = ""

    def __post_init__(self) -> None:
        for value in (self.email, self.name, self.groups):
            if len(value) > 200 or not value.isprintable():
                raise InvalidRequest(
                    N_("Claim and attribute names are printable and at most 200 characters.")
                )


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    """A connection to add, as the CLI and the admin API take it (a SAML IdP's metadata already read)."""

    type: str
    """oidc or saml."""
    name: str = ""
    issuer: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scopes: Sequence[str] = ()
    """Asked for besides openid, email and profile."""
    metadata_xml: str | None = None
    allow_idp_initiated: bool = False
    email_claim: str = ""
    name_claim: str = ""
    groups_claim: str = ""
    require_sso: bool = False
    break_glass: Sequence[str] = ()
    require_idp_mfa: bool = False
    require_local_mfa: bool = False
    default_role: str = "member"
    role_groups: Mapping[str, str] = field(default_factory=dict)

    @property
    def claims(self) -> ClaimNames:
        return ClaimNames(email=self.email_claim, name=self.name_claim, groups=self.groups_claim)

    @property
    def policy(self) -> Policy:
        try:
            default_role = OrgRole(self.default_role)
        except ValueError:
            raise InvalidRequest(N_("Roles are owner, admin or member.")) from None
        return Policy(
            require_sso=self.require_sso,
            break_glass=tuple(self.break_glass),
            require_idp_mfa=self.require_idp_mfa,
            require_local_mfa=self.require_local_mfa,
            default_role=default_role,
            role_groups=dict(self.role_groups),
        )


MS_TENANT = "{tenantid}"


def check_issuer(issuer: str) -> str:
    issuer = issuer.strip()
    error = upstream_url_error(issuer.replace(MS_TENANT, "tenant"))
    if error or len(issuer) > 500:
        raise InvalidRequest(f"The issuer {error or 'is too long'}.")
    return issuer


def social_connection(social: SocialConnectionSettings, box: SecretBox, *, at: float) -> Connection:
    """An operator-wide connection from Settings (its id is `social-<id>`)."""
    return Connection(
        id=f"social-{social.id}",
        org_id=None,
        type=ConnectionType.OIDC,
        name=social.name,
        created_at=at,
        oidc=OidcConfig(
            issuer=social.issuer,
            client_id=social.client_id,
            client_secret=box.seal(social.client_secret.get_secret_value().encode(), purpose=SECRET_PURPOSE),
            scopes=tuple(social.scopes),
        ),
    )


@functools.lru_cache(maxsize=1024)
def address_domain(email: str) -> str | None:
    """The address's domain as organizations claim domains (lower-case ASCII, IDNA for international
    names), so `bücher.example` and `xn--bcher-kva.example` are one domain. A pure function of the
    address, asked twice per sign-in (home-realm discovery, then the SSO gate): remembered for the most
    recent addresses."""
    try:
        domain = normalize_email(email).normalized.rpartition("@")[2]
        return normalize_domain(domain) if domain else None
    except (EmailInvalid, InvalidRequest):
        return None


class Connections:
    def __init__(
        self,
        *,
        connections: ConnectionRepo,
        orgs: OrgRepo,
        saml: UpstreamSaml,
        box: SecretBox,
        auditor: Auditor,
        clock: Clock,
        issuer: str,
        social: Sequence[Connection] = (),
    ) -> None:
        self._repo = connections
        self._orgs = orgs
        self._saml = saml
        self._box = box
        self._audit = auditor
        self._clock = clock
        self._issuer = issuer.rstrip("/")
        self.social = tuple(social)

    # --- administration -------------------------------------------------------------------------------

    async def add(self, org: Organization, spec: ConnectionSpec, *, context: RequestContext) -> Connection:
        """Add the connection `spec` describes (the CLI's and the admin API's one way in).

        Raises:
            InvalidRequest: the spec is incomplete or breaks a rule of add_oidc or add_saml.
        """
        if spec.type == ConnectionType.OIDC.value:
            if not (spec.issuer and spec.client_id and spec.client_secret):
                raise InvalidRequest(
                    N_("An OIDC connection needs an issuer, a client id and a client secret.")
                )
            return await self.add_oidc(
                org,
                name=spec.name,
                issuer=spec.issuer,
                client_id=spec.client_id,
                client_secret=spec.client_secret,
                scopes=["openid", "email", "profile", *spec.scopes],
                policy=spec.policy,
                claims=spec.claims,
                context=context,
            )
        if spec.type != ConnectionType.SAML.value:
            raise InvalidRequest(N_("A connection's type is oidc or saml."))
        if not spec.metadata_xml:
            raise InvalidRequest(N_("A SAML connection needs the identity provider's metadata."))
        return await self.add_saml(
            org,
            name=spec.name,
            metadata_xml=spec.metadata_xml,
            policy=spec.policy,
            allow_idp_initiated=spec.allow_idp_initiated,
            claims=spec.claims,
            context=context,
        )

    def _policy(self, org: Organization, policy: Policy) -> Policy:
        glass = tuple(dict.fromkeys(normalize_email(e).normalized for e in policy.break_glass))
        for role in (policy.default_role, *policy.role_groups.values()):
            if role not in OrgRole.__members__.values():
                raise InvalidRequest(N_("Roles are owner, admin or member."))
        return replace(policy, break_glass=glass)

    async def add_oidc(
        self,
        org: Organization,
        *,
        name: str,
        issuer: str,
        client_id: str,
        client_secret: str,
        scopes: Sequence[str] = ("openid", "email", "profile"),
        policy: Policy = Policy(),
        claims: ClaimNames = ClaimNames(),
        context: RequestContext,
    ) -> Connection:
        if not client_id.strip() or len(client_id) > 500 or len(client_secret) > 2000:
            raise InvalidRequest(N_("Give the client id and secret the identity provider issued."))
        scopes = tuple(dict.fromkeys(("openid", *scopes)))
        connection = Connection(
            id=new_id(),
            org_id=org.id,
            type=ConnectionType.OIDC,
            name=(name or org.name)[:200],
            created_at=self._clock.now(),
            oidc=OidcConfig(
                issuer=check_issuer(issuer),
                client_id=client_id.strip(),
                client_secret=self._box.seal(client_secret.encode(), purpose=SECRET_PURPOSE),
                scopes=scopes,
                email_claim=claims.email or "email",
                name_claim=claims.name or "name",
                groups_claim=claims.groups or "groups",
            ),
            policy=self._policy(org, policy),
        )
        return await self._add(org, connection, context)

    async def add_saml(
        self,
        org: Organization,
        *,
        name: str,
        metadata_xml: str,
        policy: Policy = Policy(),
        allow_idp_initiated: bool = False,
        claims: ClaimNames = ClaimNames(),
        context: RequestContext,
    ) -> Connection:
        self._saml.check_metadata(metadata_xml)
        connection = Connection(
            id=new_id(),
            org_id=org.id,
            type=ConnectionType.SAML,
            name=(name or org.name)[:200],
            created_at=self._clock.now(),
            saml=SamlConfig(
                metadata_xml=metadata_xml,
                allow_idp_initiated=allow_idp_initiated,
                email_attribute=claims.email or "email",
                name_attribute=claims.name or "name",
                groups_attribute=claims.groups or "groups",
            ),
            policy=self._policy(org, policy),
        )
        return await self._add(org, connection, context)

    async def _add(self, org: Organization, connection: Connection, context: RequestContext) -> Connection:
        await self._repo.add(connection)
        await self._audit.record(
            AuditKind.SSO_CONNECTION_ADDED,
            user_id=None,
            context=context,
            org=org.id,
            connection=connection.id,
            type=connection.type.value,
            require_sso=str(connection.policy.require_sso).lower(),
        )
        return connection

    async def get(self, connection_id: str) -> Connection:
        for social in self.social:
            if social.id == connection_id:
                return social
        connection = await self._repo.get(connection_id[:64])
        if connection is None:
            raise ConnectionNotFound()
        return connection

    async def of_org(self, org: Organization) -> Sequence[Connection]:
        return await self._repo.for_org(org.id)

    async def find(self, org: Organization, connection_id: str) -> Connection:
        connection = await self._repo.get(connection_id[:64])
        if connection is None or connection.org_id != org.id:
            raise ConnectionNotFound()
        return connection

    async def remove(self, org: Organization, connection_id: str, *, context: RequestContext) -> None:
        connection = await self.find(org, connection_id)
        await self._repo.remove(connection.id)
        await self._audit.record(
            AuditKind.SSO_CONNECTION_REMOVED,
            user_id=None,
            context=context,
            org=org.id,
            connection=connection.id,
        )

    def summary(self, connection: Connection) -> dict[str, object]:
        """The `--json` and admin API shape (never the client secret)."""
        body: dict[str, object] = {
            "id": connection.id,
            "type": connection.type.value,
            "org_id": connection.org_id,
            "name": connection.name,
            "require_sso": connection.policy.require_sso,
            "break_glass": list(connection.policy.break_glass),
            "require_idp_mfa": connection.policy.require_idp_mfa,
            "require_local_mfa": connection.policy.require_local_mfa,
            "default_role": connection.policy.default_role.value,
            "created_at": connection.created_at,
        }
        if connection.oidc is not None:
            body |= {
                "issuer": connection.oidc.issuer,
                "client_id": connection.oidc.client_id,
                "scopes": list(connection.oidc.scopes),
                "claims": {
                    "email": connection.oidc.email_claim,
                    "name": connection.oidc.name_claim,
                    "groups": connection.oidc.groups_claim,
                },
                "redirect_uri": f"{self._issuer}/sso/oidc/callback",
                "backchannel_logout_uri": f"{self._issuer}/sso/oidc/{connection.id}/backchannel-logout",
            }
        if connection.saml is not None:
            body |= {
                "acs_url": self._saml.acs_url(connection),
                "entity_id": self._saml.entity_id(connection),
                "metadata_url": f"{self._issuer}/sso/saml/{connection.id}/metadata",
                "slo_url": f"{self._issuer}/sso/saml/{connection.id}/slo",
                "idp_entity_id": self._saml.check_metadata(connection.saml.metadata_xml),
                "allow_idp_initiated": connection.saml.allow_idp_initiated,
                "claims": {
                    "email": connection.saml.email_attribute,
                    "name": connection.saml.name_attribute,
                    "groups": connection.saml.groups_attribute,
                },
            }
        return body

    def client_secret(self, connection: Connection) -> str:
        assert connection.oidc is not None
        return self._box.open(connection.oidc.client_secret, purpose=SECRET_PURPOSE).decode()

    # --- home-realm discovery -------------------------------------------------------------------------

    async def _routed(self, email: str) -> Sequence[Connection]:
        """The connections of the organization that verified the address's domain (oldest first), or
        none: one domain read and, for a verified domain, one read of its connections."""
        domain = address_domain(email)
        if domain is None:
            return ()
        claim = await self._orgs.get_domain(domain)
        if claim is None or not claim.verified:
            return ()
        return await self._repo.for_org(claim.org_id)

    async def route(self, email: str) -> Connection | None:
        """The connection an address signs in with: its domain is verified by an organization that has
        a connection (the first one added). None for every other address."""
        connections = await self._routed(email)
        return connections[0] if connections else None

    async def covers(self, connection: Connection, email: str) -> bool:
        """Whether the connection's organization has verified the domain of this address (its IdP is
        then authoritative for the address)."""
        domain = address_domain(email)
        if domain is None or connection.org_id is None:
            return False
        claim = await self._orgs.get_domain(domain)
        return claim is not None and claim.verified and claim.org_id == connection.org_id

    async def managed(self, email: str) -> bool:
        """Whether some organization verified the address's domain (its own IdP speaks for it)."""
        domain = address_domain(email)
        claim = await self._orgs.get_domain(domain) if domain else None
        return claim is not None and claim.verified

    def start_url(
        self, *, email: str | None = None, connection_id: str | None = None, next_url: str = ""
    ) -> str:
        query = {"email": email} if email else {"connection": connection_id or ""}
        if next_url:
            query["next"] = next_url
        return f"{self._issuer}/sso/start?{urlencode(query)}"

    async def required_connection(self, email: str) -> Connection | None:
        """The connection that must sign this address in (`--require-sso`), or None."""
        return _required(await self._routed(email))

    async def redirect_for(self, email: str, *, password_given: bool, next_url: str = "") -> str | None:
        """Home-realm discovery for a sign-in form: where this address goes instead of a password check,
        or None to go on with the password. An address whose organization requires SSO always goes to
        its IdP (its named break-glass owners excepted); one whose organization merely has a connection
        goes there when no password was typed (the email-first step). Nothing here looks at accounts or
        passwords, so the answer is the same whether the address has an account or not."""
        connections = await self._routed(email)
        if not connections:
            return None
        required = _required(connections)
        if required is not None:
            normalized = normalize_email(email).normalized
            if normalized in required.policy.break_glass and password_given:
                return None
            return self.start_url(email=email, next_url=next_url)
        return None if password_given else self.start_url(email=email, next_url=next_url)


def _required(connections: Sequence[Connection]) -> Connection | None:
    return next((c for c in connections if c.policy.require_sso and c.org_id is not None), None)
