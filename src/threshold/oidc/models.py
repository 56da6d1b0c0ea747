"""OAuth/OIDC records."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from threshold.core.clock import iso


class GrantType(StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"
    CLIENT_CREDENTIALS = "client_credentials"


class AuthMethod(StrEnum):
    """Client authentication at the token endpoint (OIDC Core section 9)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt"
    NONE = "none"


SECRET_METHODS = frozenset({AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST})
NOT_APP_SCHEMES = frozenset(
    {"javascript", "data", "blob", "filesystem", "about", "vbscript", "file", "ws", "wss", "ftp"}
)
"""URI schemes that name no application (RFC 8252 section 7.1): never a redirect URI, never a CSP source."""


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"


SIGNING_ALGORITHMS = ("Ed25519", "ES256", "RS256")
ID_TOKEN_DEFAULT_ALG = "RS256"
"""OIDC Core 2 / Registration 2: RS256 is the `id_token_signed_response_alg` every relying party verifies
without options (Authlib, openid-client, oauthlib, Spring Security, Microsoft.Identity.Web, go-oidc)."""
ACCESS_TOKEN_DEFAULT_ALG = "Ed25519"
"""Access tokens are read by resource servers with our verifier (or any RFC 9068 library)."""


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    secret_digest: str | None
    public: bool
    first_party: bool
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[GrantType, ...]
    scopes: tuple[str, ...]
    token_endpoint_auth_method: AuthMethod
    jwks: dict[str, Any] | None
    access_token_lifetime: int
    signing_alg: str
    """The access tokens' JWS algorithm."""
    created_at: float
    id_token_alg: str = ID_TOKEN_DEFAULT_ALG
    """The ID tokens' JWS algorithm (`id_token_signed_response_alg`)."""
    logo_uri: str | None = None
    """Shown on the hosted pages of this client's authorizations (https only)."""
    backchannel_logout_uri: str | None = None
    deletion_event_uri: str | None = None
    """Where a Security Event Token saying the person's account was erased is posted (RISC
    account-purged, RFC 8417 pushed as RFC 8935 says), for each person the application held a grant of."""
    """Where logout tokens are posted (OIDC Back-Channel Logout 1.0): https, or http on loopback."""
    backchannel_logout_session_required: bool = False
    """The client needs `sid` in logout tokens (Threshold always sends it)."""

    @property
    def accepts_secret(self) -> bool:
        """A client with a secret may present it in the Basic header or the form (RFC 6749 2.3.1)."""
        return self.token_endpoint_auth_method in SECRET_METHODS


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    state: KeyState
    public_jwk: dict[str, Any]
    private_jwk: str
    """Sealed with the key-encryption key (core.crypto.SecretBox, purpose "signing-key")."""
    created_at: float
    activated_at: float | None = None
    retired_at: float | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    digest: str
    client_id: str
    user_id: str
    session_digest: str
    sid: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    auth_time: float
    acr: str
    amr: tuple[str, ...]
    created_at: float
    expires_at: float
    used_at: float | None = None
    access_token_jti: str | None = None
    refresh_family: str | None = None
    org_id: str | None = None
    """The organization selected in the session when the code was issued, for a request with the
    `organization` scope (oidc.organization); None otherwise."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One authorization of a client by a user in a session, from one code exchange.

    Every token issued under it names it: its refresh tokens form the family with the same id, its access
    tokens carry the id as `grant_id`. It ends when revoked (reuse, RFC 7009 revocation, logout, consent
    withdrawn, client deleted) or when its session, user or client does (see oidc.live_grant).
    """

    id: str
    client_id: str
    user_id: str
    session_digest: str
    created_at: float
    expires_at: float
    """Its session's absolute expiry: nothing issued under it outlives that."""
    revoked_at: float | None = None
    org_id: str | None = None
    """The organization it was issued for (the `organization` scope): it stands only while its user is
    a member there (oidc.live_grant)."""


@dataclass(frozen=True, slots=True)
class RefreshToken:
    digest: str
    family_id: str
    parent_digest: str | None
    client_id: str
    user_id: str
    session_digest: str
    sid: str
    scope: str
    auth_time: float
    acr: str
    amr: tuple[str, ...]
    created_at: float
    expires_at: float
    used_at: float | None = None
    revoked_at: float | None = None
    successor: str | None = None
    org_id: str | None = None
    """Its grant's organization (see Grant.org_id)."""


@dataclass(frozen=True, slots=True)
class Consent:
    user_id: str
    client_id: str
    scopes: frozenset[str]
    granted_at: float


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    expires_in: int
    scope: str
    id_token: str | None = None
    refresh_token: str | None = None
    token_type: str = "Bearer"
    extra: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    """The user the tokens were issued for (the access log's user); not part of the response."""

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.id_token:
            body["id_token"] = self.id_token
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


def key_summary(key: SigningKey) -> dict[str, Any]:
    """The public description of a signing key (CLI, admin API, console): never key material."""
    return {
        "kid": key.kid,
        "alg": key.alg,
        "state": key.state.value,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at) if key.expires_at else None,
    }


def client_summary(client: Client, secret: str | None = None) -> dict[str, Any]:
    """The public description of a client (CLI and admin API); the secret only when just created."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.public,
        "first_party": client.first_party,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": [g.value for g in client.grant_types],
        "scopes": list(client.scopes),
        "token_endpoint_auth_method": client.token_endpoint_auth_method.value,
        "signing_alg": client.signing_alg,
        "id_token_signed_response_alg": client.id_token_alg,
        "logo_uri": client.logo_uri,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "deletion_event_uri": client.deletion_event_uri,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "access_token_lifetime": client.access_token_lifetime,
        "created_at": iso(client.created_at),
    }
    if secret is not None:
        body["client_secret"] = secret
    return body


ACCOUNT_PURGED = "account_purged"
"""The kind of a queued delivery that is a deletion event rather than a logout token."""


@dataclass(frozen=True, slots=True)
class LogoutDelivery:
    """One logout token to deliver: to `client_id`'s back-channel logout URI, for the person's session
    `sid` that ended for `cause` (signed when sent; `id` is its `jti`)."""

    id: str
    client_id: str
    user_id: str
    sid: str | None
    cause: str
    created_at: float
    attempts: int = 0
    kind: str = "logout"
    """"logout" (a logout token to the back-channel logout URI) or ACCOUNT_PURGED (a security event
    token to the deletion event URI, queued by the erasure of the person's account)."""
