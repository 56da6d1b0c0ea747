"""The OpenID Connect provider: one object that builds the provider's parts and exposes their operations.

Each concern lives in its own module; this facade only wires them from the constructor's arguments:

- authorization endpoint: oidc.authorize_endpoint (request rules in oidc.authorize, the decision in
  oidc.authorize_decision), consents in oidc.consent;
- token endpoint: oidc.token_endpoint (client authentication, dispatch), one grant per module in
  oidc.grants (authorization_code, refresh_token, client_credentials);
- the provider's own access tokens (userinfo, admin API): oidc.resource;
- oidc.introspection (RFC 7662), oidc.revocation (RFC 7009), oidc.logout (RP-Initiated Logout 1.0);
- client registration: oidc.registration.

Every grant, introspection and userinfo checks that what it rests on still stands through one
oidc.live_grant.GrantCheck. Flows take plain values (parameters, the signed-in session), never a
request object.

The `organization` scope (oidc.organization) reads memberships from the organizations' store given to
`with_organizations`; until then no token carries an organization and none issued for one stands.
"""

from __future__ import annotations

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.crypto import SecretBox
from threshold.core.models import AuditKind, RequestContext
from threshold.core.orgs.ports import OrgRepo
from threshold.core.ports import SessionStore, UserRepo
from threshold.core.revocation import AccessRevoker
from threshold.oidc.authorize_endpoint import (
    AuthorizationEndpoint,
    AuthorizeOutcome,
    NeedsConsent,
    NeedsEnrollment,
    NeedsLogin,
    RedirectTo,
)
from threshold.oidc.backchannel import ProviderApplications
from threshold.oidc.consent import Consents
from threshold.oidc.errors import OAuthError
from threshold.oidc.grants.authorization_code import AuthorizationCodeGrant
from threshold.oidc.grants.client_credentials import ClientCredentialsGrant
from threshold.oidc.grants.policy import AccessTokenPolicy
from threshold.oidc.grants.refresh_token import RefreshTokenGrant
from threshold.oidc.introspection import TokenIntrospection
from threshold.oidc.keys import KeyRing
from threshold.oidc.live_grant import GrantCheck, SessionLookup, stored_sessions
from threshold.oidc.logout import Logout
from threshold.oidc.models import GrantType
from threshold.oidc.organization import Memberships
from threshold.oidc.ports import ClientRepo, CodeRepo, ConsentRepo, MarkStore, RefreshTokenRepo
from threshold.oidc.redirects import add_query
from threshold.oidc.registration import IssuedClient, Registration
from threshold.oidc.resource import ADMIN_SCOPE, ResourceServer, VerifiedAccessToken
from threshold.oidc.revocation import Revocation
from threshold.oidc.token_endpoint import ClientAuthenticator, TokenEndpoint
from threshold.oidc.tokens import TokenMinter
from threshold.settings import OidcSettings


class Provider:
    def __init__(
        self,
        *,
        issuer: str,
        settings: OidcSettings,
        clients: ClientRepo,
        keys: KeyRing,
        codes: CodeRepo,
        refresh_tokens: RefreshTokenRepo,
        consents: ConsentRepo,
        marks: MarkStore,
        sessions: SessionStore,
        users: UserRepo,
        auditor: Auditor,
        clock: Clock,
        box: SecretBox,
        revoker: AccessRevoker,
        session_lookup: SessionLookup | None = None,
    ) -> None:
        self.issuer = issuer
        self.keys = keys
        self._audit = auditor
        self.clients = self._clients = clients
        self._refresh = refresh_tokens
        self.minter = minter = TokenMinter(keys, clock, issuer=issuer)
        self.applications = ProviderApplications(refresh_tokens=refresh_tokens, clients=clients, clock=clock)
        revoker.attach_applications(self.applications)
        policy = AccessTokenPolicy(issuer=issuer, settings=settings)
        self._memberships = memberships = Memberships()
        grants = GrantCheck(
            clients=clients,
            grants=refresh_tokens,
            sessions=session_lookup or stored_sessions(sessions=sessions, users=users, clock=clock),
            memberships=memberships,
        )
        client_auth = ClientAuthenticator(issuer=issuer, clients=clients, marks=marks, clock=clock)
        resource = ResourceServer(
            issuer=issuer,
            keys=keys,
            marks=marks,
            grants=grants,
            clock=clock,
            issued_audiences=policy.issued_audiences(),
        )
        consent = Consents(consents=consents, clients=clients, revoker=revoker, auditor=auditor, clock=clock)
        authorization = AuthorizationEndpoint(
            issuer=issuer, clients=clients, codes=codes, consents=consent, box=box, clock=clock
        )
        token_endpoint = TokenEndpoint(
            authenticator=client_auth,
            grants={
                GrantType.AUTHORIZATION_CODE: AuthorizationCodeGrant(
                    codes=codes,
                    refresh_tokens=refresh_tokens,
                    marks=marks,
                    minter=minter,
                    grants=grants,
                    policy=policy,
                    auditor=auditor,
                    clock=clock,
                    settings=settings,
                    memberships=memberships,
                ),
                GrantType.REFRESH_TOKEN: RefreshTokenGrant(
                    refresh_tokens=refresh_tokens,
                    revoker=revoker,
                    sessions=sessions,
                    minter=minter,
                    grants=grants,
                    policy=policy,
                    auditor=auditor,
                    clock=clock,
                    box=box,
                    settings=settings,
                ),
                GrantType.CLIENT_CREDENTIALS: ClientCredentialsGrant(
                    minter=minter, grants=grants, policy=policy
                ),
            },
        )
        introspection = TokenIntrospection(
            issuer=issuer,
            authenticator=client_auth,
            refresh_tokens=refresh_tokens,
            grants=grants,
            resource=resource,
            clock=clock,
        )
        revocation = Revocation(
            authenticator=client_auth,
            refresh_tokens=refresh_tokens,
            marks=marks,
            resource=resource,
            clock=clock,
        )
        logout = Logout(minter=minter, clients=clients)
        registration = Registration(clients=clients, auditor=auditor, clock=clock, settings=settings)

        self._client_auth = client_auth
        # authorization endpoint (oidc.authorize_endpoint)
        self.error_redirect = authorization.error_redirect
        self.parse_authorization = authorization.parse_authorization
        self.authorization_client = authorization.authorization_client
        self.authorize = authorization.authorize
        self.grant_consent = authorization.grant_consent
        self.deny = authorization.deny
        # token endpoint (oidc.token_endpoint, oidc.grants)
        self.authenticate = client_auth.authenticate
        self.token = token_endpoint.token
        # the provider's own access tokens (oidc.resource)
        self.verify_access_token = resource.verify_access_token
        self.userinfo = resource.userinfo
        # introspection and revocation (oidc.introspection, oidc.revocation)
        self.introspect = introspection.introspect
        self.revoke = revocation.revoke
        # logout (oidc.logout)
        self.logout_target = logout.logout_target
        # consents (oidc.consent)
        self.list_consents = consent.list_consents
        self.revoke_consent = consent.revoke_consent
        # clients (oidc.registration)
        self.create_client = registration.create_client
        self.update_client = registration.update_client
        self.list_clients = registration.list_clients
        self.get_client = registration.get_client
        self.delete_client = registration.delete_client

    def with_organizations(self, orgs: OrgRepo) -> Provider:
        """Serve the `organization` scope from this store of organizations: its claims, and the live
        membership check of every grant issued for an organization (oidc.organization).

        Returns:
            The provider.
        """
        self._memberships.attach(orgs)
        return self

    @property
    def token_endpoint(self) -> str:
        return self._client_auth.token_endpoint

    async def rotate_keys(
        self, alg: str | None = None, *, context: RequestContext | None = None
    ) -> list[str]:
        """Rotate the signing keys now (all algorithms, or `alg`), audited; the kids that became active
        (none when another process rotated first)."""
        promoted = await self.keys.rotate(alg)
        if promoted:
            await self._audit.record(
                AuditKind.KEYS_ROTATED, user_id=None, context=context, activated=",".join(promoted)
            )
        return promoted

    async def sweep(self) -> None:
        """Periodic upkeep: rotate the signing keys when due."""
        await self.keys.rotate_if_due()


__all__ = [
    "ADMIN_SCOPE",
    "AuthorizeOutcome",
    "IssuedClient",
    "NeedsConsent",
    "NeedsEnrollment",
    "NeedsLogin",
    "OAuthError",
    "Provider",
    "RedirectTo",
    "VerifiedAccessToken",
    "add_query",
]
