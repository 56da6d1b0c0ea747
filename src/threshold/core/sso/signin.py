"""Sign-in at an upstream identity provider: start (state, nonce, PKCE or a SAML request), finish
(the protocol adapter verifies the answer), then the linking rules, just-in-time provisioning and the
sign-in engine's own completion (an upstream assertion is one more proof).

Linking rules (what keeps SSO from taking over an account):
- A subject already linked to an account signs that account in; nothing else is looked at.
- Otherwise the asserted address decides, and only when the connection is authoritative for it: an
  organization's connection whose organization has *verified* the address's domain. Such a connection
  links to an existing account with that address, or provisions a new one.
- A social connection (operator-wide, no organization) never links by address: an existing account
  with the address is refused (the person signs in to it and connects from there); a new account is
  provisioned only for an address the provider says is verified.
- An organization's connection without a verified domain for the address neither links nor provisions.
- `email_verified: false` never links and never provisions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.emails import normalize_email
from threshold.core.errors import EmailInvalid, UserNotFound
from threshold.core.flows.inventory import Inventory
from threshold.core.flows.outcome import SignInOutcome
from threshold.core.flows.signin import SignIn
from threshold.core.i18n import N_
from threshold.core.methods.proofs import Upstream, upstream_proof
from threshold.core.models import AuditKind, RequestContext, SessionRecord, User
from threshold.core.orgs.models import Membership, OrgRole, highest_role
from threshold.core.orgs.ports import OrgRepo
from threshold.core.ports import EphemeralStore, UserRepo
from threshold.core.provisioning import Provisioning
from threshold.core.revocation import AccessRevoker, Cause, Reach
from threshold.core.secrets import digest, equal, new_token
from threshold.core.sessions import SessionService
from threshold.core.sso.connections import Connections
from threshold.core.sso.errors import ConnectionNotFound, SsoFlowInvalid, SsoRejected
from threshold.core.sso.models import AssertedIdentity, Connection, ConnectionType, LinkedIdentity
from threshold.core.sso.ports import ConnectionRepo, UpstreamLogout, UpstreamOidc, UpstreamSaml

FLOW = "sso-flow:"
ASSERTION = "sso-assertion:"
UPSTREAM_SESSION = "sso-session:"
LOGOUT = "sso-logout:"
MAX_STATE = 128


@dataclass(frozen=True, slots=True)
class StartedSso:
    """Where to send the browser, and the value of the cookie that binds the flow to it."""

    redirect: str
    binding: str


@dataclass(frozen=True, slots=True)
class FinishedSso:
    outcome: SignInOutcome
    next_url: str
    connection: Connection


@dataclass(frozen=True, slots=True)
class _Flow:
    connection_id: str
    binding: str
    next_url: str
    nonce: str = ""
    verifier: str = ""
    request_id: str = ""


class SsoSignIn:
    def __init__(
        self,
        *,
        connections: Connections,
        repo: ConnectionRepo,
        orgs: OrgRepo,
        users: UserRepo,
        signin: SignIn,
        sessions: SessionService,
        inventory: Inventory,
        provisioning: Provisioning,
        revoker: AccessRevoker,
        oidc: UpstreamOidc,
        saml: UpstreamSaml,
        ephemeral: EphemeralStore,
        auditor: Auditor,
        clock: Clock,
        issuer: str,
        flow_lifetime: int,
        session_lifetime: int,
    ) -> None:
        self.connections = connections
        self._repo = repo
        self._orgs = orgs
        self._users = users
        self._signin = signin
        self._sessions = sessions
        self._inventory = inventory
        self._provisioning = provisioning
        self._revoker = revoker
        self._oidc = oidc
        self._saml = saml
        self._ephemeral = ephemeral
        self._audit = auditor
        self._clock = clock
        self.callback_url = f"{issuer.rstrip('/')}/sso/oidc/callback"
        self._flow_lifetime = flow_lifetime
        self._session_lifetime = session_lifetime

    # --- start ----------------------------------------------------------------------------------------

    async def start_for_email(self, email: str, *, next_url: str, binding: str | None) -> StartedSso:
        """Home-realm discovery: the IdP of the organization that verified the address's domain.

        Raises:
            ConnectionNotFound: no organization routes this address (the person signs in here).
        """
        connection = await self.connections.route(email)
        if connection is None:
            raise ConnectionNotFound(N_("No organization signs in this address with single sign-on."))
        return await self.start(connection, next_url=next_url, login_hint=email, binding=binding)

    async def start(
        self, connection: Connection, *, next_url: str, login_hint: str | None, binding: str | None
    ) -> StartedSso:
        """A new flow at the connection's IdP; `binding` is the browser's flow cookie, if it has one."""
        state = new_token()
        binding = binding if binding and len(binding) <= MAX_STATE else new_token()
        flow = _Flow(connection_id=connection.id, binding=digest(binding), next_url=next_url)
        if connection.type is ConnectionType.OIDC:
            flow = replace(flow, nonce=new_token(), verifier=new_token())
            redirect = await self._oidc.authorization_url(
                connection,
                redirect_uri=self.callback_url,
                state=state,
                nonce=flow.nonce,
                code_verifier=flow.verifier,
                login_hint=login_hint,
            )
        else:
            flow = replace(flow, request_id=self._saml.new_request_id())
            redirect = self._saml.authn_request_url(connection, request_id=flow.request_id, relay_state=state)
        await self._ephemeral.put(
            FLOW + digest(state),
            json.dumps(asdict(flow)),
            expires_at=self._clock.now() + self._flow_lifetime,
        )
        return StartedSso(redirect=redirect, binding=binding)

    async def _take_flow(self, state: str, binding: str | None) -> _Flow:
        """The flow this browser started with this state, once. Raises SsoFlowInvalid."""
        if not state or len(state) > MAX_STATE or not binding:
            raise SsoFlowInvalid()
        key = FLOW + digest(state)
        value = await self._ephemeral.get(key, now=self._clock.now())
        if value is None:
            raise SsoFlowInvalid()
        flow = _Flow(**json.loads(value))
        if not equal(flow.binding, digest(binding)):
            raise SsoFlowInvalid()
        if await self._ephemeral.take(key, now=self._clock.now()) is None:  # a concurrent finish used it
            raise SsoFlowInvalid()
        return flow

    # --- finish ---------------------------------------------------------------------------------------

    async def finish_oidc(
        self,
        *,
        state: str,
        code: str | None,
        error: str | None,
        binding: str | None,
        context: RequestContext,
        replacing: SessionRecord | None = None,
    ) -> FinishedSso:
        flow = await self._take_flow(state, binding)
        connection = await self.connections.get(flow.connection_id)
        if error or not code:
            await self._rejected(connection, "idp_error", context)
            raise SsoRejected(
                "idp_error",
                f"The identity provider did not sign you in ({(error or 'no code')[:60]}).",
            )
        try:
            identity = await self._oidc.finish(
                connection,
                code=code[:2048],
                redirect_uri=self.callback_url,
                code_verifier=flow.verifier,
                expected_nonce=flow.nonce,
            )
        except SsoRejected as rejected:
            await self._rejected(connection, rejected.reason, context)
            raise
        outcome = await self._accept(connection, identity, context, replacing)
        return FinishedSso(outcome=outcome, next_url=flow.next_url, connection=connection)

    async def finish_saml(
        self,
        connection_id: str,
        *,
        response: str,
        relay_state: str | None,
        binding: str | None,
        context: RequestContext,
        replacing: SessionRecord | None = None,
    ) -> FinishedSso:
        connection = await self.connections.get(connection_id)
        if connection.saml is None:
            raise ConnectionNotFound()
        flow: _Flow | None = None
        if relay_state:
            try:
                flow = await self._take_flow(relay_state, binding)
            except SsoFlowInvalid:
                if not connection.saml.allow_idp_initiated:
                    raise
        if flow is not None and flow.connection_id != connection.id:
            raise SsoFlowInvalid()
        if flow is None and not connection.saml.allow_idp_initiated:
            await self._rejected(connection, "unsolicited", context)
            raise SsoRejected(
                "unsolicited", N_("Sign-ins started at the identity provider are not accepted here.")
            )
        try:
            verified = self._saml.verify(
                connection, response=response, expected_request_id=flow.request_id if flow else None
            )
            now = self._clock.now()
            fresh = await self._ephemeral.add(
                ASSERTION + digest(f"{connection.id}:{verified.assertion_id}"),
                "1",
                expires_at=max(verified.not_on_or_after, now) + 300,
                now=now,
            )
            if not fresh:
                raise SsoRejected("replayed", N_("This answer from the identity provider was already used."))
        except SsoRejected as rejected:
            await self._rejected(connection, rejected.reason, context)
            raise
        outcome = await self._accept(connection, verified.identity, context, replacing)
        return FinishedSso(outcome=outcome, next_url=flow.next_url if flow else "", connection=connection)

    async def _rejected(self, connection: Connection, reason: str, context: RequestContext) -> None:
        await self._audit.record(
            AuditKind.SSO_REJECTED,
            user_id=None,
            context=context,
            connection=connection.id,
            org=connection.org_id or "",
            reason=reason[:60],
        )

    # --- accept: linking, provisioning, policy, then the engine's completion ------------------------

    async def _accept(
        self,
        connection: Connection,
        identity: AssertedIdentity,
        context: RequestContext,
        replacing: SessionRecord | None,
    ) -> SignInOutcome:
        try:
            if connection.policy.require_idp_mfa and not identity.mfa:
                raise SsoRejected(
                    "idp_mfa_missing",
                    N_("Your organization requires multi-factor authentication at its identity provider."),
                )
            user = await self._resolve(connection, identity, context)
        except SsoRejected as rejected:
            await self._rejected(connection, rejected.reason, context)
            raise
        if connection.org_id is not None:
            await self._ensure_member(connection, identity, user, context)
        if identity.upstream_session:
            await self._ephemeral.put(
                UPSTREAM_SESSION + digest(f"{connection.id}:{identity.upstream_session}"),
                user.id,
                expires_at=self._clock.now() + self._session_lifetime,
            )
        proof = upstream_proof(
            Upstream(
                connection_id=connection.id, org_id=connection.org_id, acr=identity.acr, amr=identity.amr
            ),
            mfa=identity.mfa,
        )
        epoch = user.credential_epoch
        if connection.policy.require_local_mfa:
            methods = await self._inventory.second_factors(user)
            if methods:
                return await self._signin.pending.start(user, proofs=[proof], epoch=epoch, methods=methods)
            if not user.mfa_required:  # the account page now asks for a second factor before anything else
                await self._users.set_mfa_required(user.id, True)
                user = replace(user, mfa_required=True)
        return await self._signin.continue_after(
            user, [proof], context=context, epoch=epoch, replacing=replacing
        )

    async def _resolve(
        self, connection: Connection, identity: AssertedIdentity, context: RequestContext
    ) -> User:
        linked = await self._repo.linked(connection.id, identity.subject)
        if linked is not None:
            user = await self._users.get(linked.user_id)
            if user is None or user.disabled:
                raise SsoRejected("account_disabled", N_("This account is disabled."))
            await self._repo.touch_link(connection.id, identity.subject, at=self._clock.now())
            return user
        if not identity.email:
            raise SsoRejected(
                "email_missing", N_("The identity provider did not say which email address is yours.")
            )
        try:
            address = normalize_email(identity.email)
        except EmailInvalid:
            raise SsoRejected(
                "email_invalid", N_("The identity provider's email address is not valid.")
            ) from None
        if identity.email_verified is False:
            raise SsoRejected(
                "email_unverified", N_("The identity provider says this address is not verified.")
            )
        authoritative = await self.connections.covers(connection, address.normalized)
        if not authoritative and not connection.social:  # the same answer whether an account exists
            raise SsoRejected(
                "domain_not_verified",
                N_(
                    "This identity provider can sign in addresses only at its organization's "
                    "verified domains."
                ),
            )
        if connection.social and await self.connections.managed(address.normalized):
            raise SsoRejected(
                "domain_managed",
                N_("Addresses at this domain sign in with their organization's single sign-on."),
            )
        if authoritative:  # the organization's IdP for its verified domain (core.provisioning)
            try:
                user, created = await self._provisioning.account_for(
                    address, claimant=connection.id, context=context
                )
            except UserNotFound:
                raise SsoRejected("account_disabled", N_("This account is gone.")) from None
            return await self._link(connection, identity, user, context, provisioned=created)
        refused = "An account with this address already exists. Sign in to it the way you usually do."
        if await self._users.get_by_email(address.normalized) is not None:
            raise SsoRejected("link_refused", refused)
        if identity.email_verified is not True:
            raise SsoRejected(
                "email_unverified", N_("The identity provider does not say this address is verified.")
            )
        created_user = await self._provisioning.create_verified(address)
        if created_user is None:  # a concurrent first sign-in (or sign-up) created it
            raise SsoRejected("link_refused", refused)
        return await self._link(connection, identity, created_user, context, provisioned=True)

    async def _link(
        self,
        connection: Connection,
        identity: AssertedIdentity,
        user: User,
        context: RequestContext,
        *,
        provisioned: bool,
    ) -> User:
        if user.disabled:
            raise SsoRejected("account_disabled", N_("This account is disabled."))
        now = self._clock.now()
        stored = await self._repo.link(
            LinkedIdentity(
                connection_id=connection.id,
                subject=identity.subject,
                user_id=user.id,
                email=user.email_normalized,
                created_at=now,
                last_seen_at=now,
            )
        )
        if stored.user_id != user.id:  # a concurrent first sign-in linked the subject elsewhere
            raise SsoRejected("link_refused", N_("This identity is already linked to another account."))
        await self._audit.record(
            AuditKind.SSO_USER_PROVISIONED if provisioned else AuditKind.SSO_IDENTITY_LINKED,
            user_id=user.id,
            context=context,
            connection=connection.id,
            org=connection.org_id or "",
        )
        return user

    async def _ensure_member(
        self, connection: Connection, identity: AssertedIdentity, user: User, context: RequestContext
    ) -> None:
        assert connection.org_id is not None
        memberships = await self._orgs.memberships_of(user.id)
        if any(m.org_id == connection.org_id for m in memberships):
            return
        groups = connection.policy.role_groups
        mapped = [OrgRole(groups[g]) for g in identity.groups if g in groups]
        role = highest_role(mapped) if mapped else connection.policy.default_role
        await self._orgs.put_member(
            Membership(org_id=connection.org_id, user_id=user.id, role=role, created_at=self._clock.now())
        )
        await self._audit.record(
            AuditKind.ORG_MEMBER_ADDED,
            user_id=user.id,
            context=context,
            org=connection.org_id,
            role=role.value,
            by=f"sso:{connection.id}",
        )

    # --- upstream logout ------------------------------------------------------------------------------

    async def upstream_logout(
        self, connection: Connection, logout: UpstreamLogout, *, context: RequestContext
    ) -> int:
        """End the local sessions an upstream logout names (by subject, or by its session ids); once per
        logout message. Returns how many sessions ended."""
        now = self._clock.now()
        if not await self._ephemeral.add(
            LOGOUT + digest(f"{connection.id}:{logout.replay_key}"),
            "1",
            expires_at=max(logout.expires_at, now) + 300,
            now=now,
        ):
            raise SsoRejected("replayed", N_("This logout was already received."))
        users: set[str] = set()
        if logout.subject:
            linked = await self._repo.linked(connection.id, logout.subject)
            if linked is not None:
                users.add(linked.user_id)
        for upstream_session in logout.sessions:
            user_id = await self._ephemeral.get(
                UPSTREAM_SESSION + digest(f"{connection.id}:{upstream_session}"), now=now
            )
            if user_id:
                users.add(user_id)
        ended = 0
        for user_id in sorted(users):
            records = [
                r for r in await self._sessions.list_sessions(user_id) if r.connection_id == connection.id
            ]
            done = await self._revoker.end_access(
                Reach.these(user_id, records),
                cause=Cause.UPSTREAM_LOGOUT,
                context=context,
                connection=connection.id,
            )
            ended += len(done.sessions)
            await self._audit.record(
                AuditKind.SSO_UPSTREAM_LOGOUT,
                user_id=user_id,
                context=context,
                connection=connection.id,
                sessions_ended=str(len(done.sessions)),
            )
        return ended

    async def oidc_logout(self, connection: Connection, *, token: str, context: RequestContext) -> int:
        """A back-channel logout token from the connection's OpenID provider."""
        if connection.oidc is None:
            raise ConnectionNotFound()
        return await self.upstream_logout(
            connection, await self._oidc.verify_logout_token(connection, token), context=context
        )

    async def saml_logout(
        self,
        connection: Connection,
        *,
        request: str,
        query_string: str,
        relay_state: str | None,
        context: RequestContext,
    ) -> str:
        """An IdP's LogoutRequest: end the sessions it names; where to send the browser with our answer."""
        if connection.saml is None:
            raise ConnectionNotFound()
        logout = self._saml.verify_logout_request(connection, request=request, query_string=query_string)
        await self.upstream_logout(connection, logout, context=context)
        return self._saml.logout_response_url(
            connection, in_response_to=logout.replay_key, relay_state=relay_state
        )

    def saml_metadata(self, connection: Connection) -> bytes:
        return self._saml.sp_metadata(connection)
