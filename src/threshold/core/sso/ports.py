"""What upstream sign-in needs from storage and from the protocol adapters (OIDC over HTTP, SAML)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from threshold.core.sso.models import AssertedIdentity, Connection, LinkedIdentity


class ConnectionRepo(Protocol):
    """Connections of organizations (implemented in adapters/sql/sso_repos.py)."""

    async def add(self, connection: Connection) -> None: ...

    async def get(self, connection_id: str) -> Connection | None: ...

    async def for_org(self, org_id: str) -> Sequence[Connection]: ...

    async def remove(self, connection_id: str) -> bool: ...

    async def link(self, identity: LinkedIdentity) -> LinkedIdentity:
        """Store the link, or return the one a concurrent first sign-in stored for the same subject."""
        ...

    async def linked(self, connection_id: str, subject: str) -> LinkedIdentity | None: ...

    async def touch_link(self, connection_id: str, subject: str, *, at: float) -> None: ...

    async def links_of(self, user_id: str) -> Sequence[LinkedIdentity]: ...


@dataclass(frozen=True, slots=True)
class VerifiedSamlAssertion:
    identity: AssertedIdentity
    assertion_id: str
    not_on_or_after: float


@dataclass(frozen=True, slots=True)
class UpstreamLogout:
    """A verified logout from an upstream IdP: who (subject) and/or which of its sessions."""

    subject: str | None
    sessions: tuple[str, ...]
    replay_key: str
    """A value unique to this logout message (jti or request ID), for the replay cache."""
    expires_at: float


class UpstreamOidc(Protocol):
    """OpenID Connect relying-party work against an upstream provider (adapters/sso/oidc.py)."""

    async def authorization_url(
        self,
        connection: Connection,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_verifier: str,
        login_hint: str | None,
    ) -> str: ...

    async def finish(
        self,
        connection: Connection,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        expected_nonce: str,
    ) -> AssertedIdentity:
        """Exchange the code and validate the ID token (issuer, audience, nonce, signature, times).

        Raises:
            SsoRejected: anything the provider answered that cannot be accepted.
            DependencyUnavailable: the provider did not answer.
        """
        ...

    async def verify_logout_token(self, connection: Connection, token: str) -> UpstreamLogout:
        """OpenID Connect Back-Channel Logout 1.0, section 2.6. Raises SsoRejected."""
        ...


class UpstreamSaml(Protocol):
    """SAML 2.0 service-provider work for one connection (adapters/sso/saml.py over threshold.saml)."""

    def check_metadata(self, metadata_xml: str) -> str:
        """The IdP's entity id. Raises SsoRejected(metadata_invalid)."""
        ...

    def sp_metadata(self, connection: Connection) -> bytes: ...

    def entity_id(self, connection: Connection) -> str: ...

    def acs_url(self, connection: Connection) -> str: ...

    def authn_request_url(self, connection: Connection, *, request_id: str, relay_state: str) -> str: ...

    def new_request_id(self) -> str: ...

    def verify(
        self, connection: Connection, *, response: str, expected_request_id: str | None
    ) -> VerifiedSamlAssertion:
        """Raises SsoRejected with the reason."""
        ...

    def verify_logout_request(
        self, connection: Connection, *, request: str, query_string: str
    ) -> UpstreamLogout:
        """HTTP-Redirect LogoutRequest with its query-string signature. Raises SsoRejected."""
        ...

    def logout_response_url(
        self, connection: Connection, *, in_response_to: str, relay_state: str | None
    ) -> str: ...
