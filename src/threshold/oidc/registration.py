"""Client registration by the operator (CLI and admin API): create, update, list and delete clients,
under one set of rules for every new client and every change to one.

The rules follow RFC 6749 section 3.1.2 (redirect URIs: absolute, no fragment), RFC 8252 section 7
(native apps: loopback http, private-use schemes), RFC 9700 section 2.1 (exact redirect URIs),
OIDC Dynamic Client Registration 1.0 section 2 (the metadata's meaning) and RFC 7591 section 2
(jwks holds public keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.errors import Conflict
from threshold.core.models import AuditKind, RequestContext
from threshold.core.secrets import digest, new_id, new_token
from threshold.oidc.errors import InvalidRequest
from threshold.oidc.models import (
    ACCESS_TOKEN_DEFAULT_ALG,
    ID_TOKEN_DEFAULT_ALG,
    NOT_APP_SCHEMES,
    SECRET_METHODS,
    SIGNING_ALGORITHMS,
    AuthMethod,
    Client,
    GrantType,
)
from threshold.oidc.ports import ClientRepo
from threshold.oidc.tokens import MAX_ACCESS_TOKEN_LIFETIME
from threshold.settings import LOOPBACK_NAMES, OidcSettings
from threshold.settings.sections import upstream_url_error

MAX_URIS = 20


@dataclass(frozen=True, slots=True)
class IssuedClient:
    client: Client
    secret: str | None


class Registration:
    def __init__(
        self, *, clients: ClientRepo, auditor: Auditor, clock: Clock, settings: OidcSettings
    ) -> None:
        self._clients = clients
        self._audit = auditor
        self._clock = clock
        self._settings = settings

    async def create_client(
        self,
        *,
        name: str,
        redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] = (),
        public: bool = False,
        first_party: bool = False,
        grant_types: Sequence[str] = (),
        scopes: Sequence[str] = (),
        token_endpoint_auth_method: str | None = None,
        jwks: dict[str, Any] | None = None,
        access_token_lifetime: int | None = None,
        signing_alg: str = ACCESS_TOKEN_DEFAULT_ALG,
        id_token_alg: str = ID_TOKEN_DEFAULT_ALG,
        logo_uri: str | None = None,
        backchannel_logout_uri: str | None = None,
        backchannel_logout_session_required: bool = False,
        deletion_event_uri: str | None = None,
        context: RequestContext | None = None,
    ) -> IssuedClient:
        """Register a client; a confidential client's secret is returned once and stored as a digest.

        Raises:
            InvalidRequest: the client breaks a rule of registration.
        """
        grants = tuple(GrantType(g) for g in (grant_types or ("authorization_code", "refresh_token")))
        method = AuthMethod(
            token_endpoint_auth_method
            or ("none" if public else "private_key_jwt" if jwks else "client_secret_basic")
        )
        secret = new_token() if method in SECRET_METHODS else None
        client = Client(
            client_id=new_id(),
            name=name,
            secret_digest=digest(secret) if secret else None,
            public=public,
            first_party=first_party,
            redirect_uris=tuple(redirect_uris),
            post_logout_redirect_uris=tuple(post_logout_redirect_uris),
            grant_types=grants,
            scopes=tuple(dict.fromkeys(scopes or ("openid", "email", "offline_access"))),
            token_endpoint_auth_method=method,
            jwks=jwks,
            access_token_lifetime=access_token_lifetime or self._settings.access_token_lifetime,
            signing_alg=signing_alg,
            created_at=self._clock.now(),
            id_token_alg=id_token_alg,
            logo_uri=logo_uri or None,
            backchannel_logout_uri=backchannel_logout_uri or None,
            backchannel_logout_session_required=backchannel_logout_session_required,
            deletion_event_uri=deletion_event_uri or None,
        )
        _check_client(client)
        await self._clients.add(client)
        await self._audit.record(
            AuditKind.CLIENT_CREATED, user_id=None, context=context, client=client.client_id, name=name
        )
        return IssuedClient(client=client, secret=secret)

    async def update_client(
        self,
        client_id: str,
        *,
        name: str | None = None,
        redirect_uris: Sequence[str] | None = None,
        add_redirect_uris: Sequence[str] = (),
        remove_redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] | None = None,
        add_post_logout_redirect_uris: Sequence[str] = (),
        remove_post_logout_redirect_uris: Sequence[str] = (),
        first_party: bool | None = None,
        id_token_alg: str | None = None,
        logo_uri: str | None = None,
        backchannel_logout_uri: str | None = None,
        backchannel_logout_session_required: bool | None = None,
        deletion_event_uri: str | None = None,
        rotate_secret: bool = False,
        context: RequestContext | None = None,
    ) -> IssuedClient | None:
        """Change a registered client under the rules of registration (None and unchanged values keep it).

        A list of URIs is either replaced or edited (added to, removed from), not both. `logo_uri` ""
        removes the logo, `backchannel_logout_uri` "" the back-channel logout URI. A rotated secret is
        returned once and replaces the old one at once, on every process. Each change is audited
        (`client_updated`, with the secret rotation named).

        Returns:
            The client as stored now, with the new secret if one was made; None when there is no such client.

        Raises:
            InvalidRequest: the changed client breaks a rule of registration, a URI to remove is not
                registered, or a client that does not authenticate with a secret is asked to rotate one.
            Conflict: another update changed the client meanwhile.
        """
        current = await self._clients.get(client_id)
        if current is None:
            return None
        redirects = _edited_uris(
            "redirect URI", current.redirect_uris, redirect_uris, add_redirect_uris, remove_redirect_uris
        )
        post_logout = _edited_uris(
            "post-logout redirect URI",
            current.post_logout_redirect_uris,
            post_logout_redirect_uris,
            add_post_logout_redirect_uris,
            remove_post_logout_redirect_uris,
        )
        if rotate_secret and not current.accepts_secret:
            raise InvalidRequest(
                "Only a client that authenticates with a secret (client_secret_basic or "
                "client_secret_post) has one to rotate."
            )
        secret = new_token() if rotate_secret else None
        changed = replace(
            current,
            name=current.name if name is None else name,
            redirect_uris=redirects,
            post_logout_redirect_uris=post_logout,
            first_party=current.first_party if first_party is None else first_party,
            secret_digest=digest(secret) if secret else current.secret_digest,
            id_token_alg=current.id_token_alg if id_token_alg is None else id_token_alg,
            logo_uri=current.logo_uri if logo_uri is None else (logo_uri or None),
            backchannel_logout_uri=(
                current.backchannel_logout_uri
                if backchannel_logout_uri is None
                else (backchannel_logout_uri or None)
            ),
            backchannel_logout_session_required=(
                current.backchannel_logout_session_required
                if backchannel_logout_session_required is None
                else backchannel_logout_session_required
            ),
            deletion_event_uri=(
                current.deletion_event_uri if deletion_event_uri is None else (deletion_event_uri or None)
            ),
        )
        _check_client(changed)
        if not await self._clients.update(changed, expected=current):
            if await self._clients.get(client_id) is None:
                return None  # deleted meanwhile
            raise Conflict("The client was changed meanwhile (another update): read it and try again.")
        fields = [
            f.name for f in dataclass_fields(Client) if getattr(current, f.name) != getattr(changed, f.name)
        ]
        details = {
            "changed": " ".join("secret" if f == "secret_digest" else f for f in fields),
            **_uri_changes("redirect_uris", current.redirect_uris, changed.redirect_uris),
            **_uri_changes(
                "post_logout_redirect_uris",
                current.post_logout_redirect_uris,
                changed.post_logout_redirect_uris,
            ),
        }
        await self._audit.record(
            AuditKind.CLIENT_UPDATED, user_id=None, context=context, client=client_id, **details
        )
        return IssuedClient(client=changed, secret=secret)

    async def list_clients(self) -> Sequence[Client]:
        return await self._clients.list()

    async def get_client(self, client_id: str) -> Client | None:
        return await self._clients.get(client_id)

    async def delete_client(self, client_id: str, *, context: RequestContext | None = None) -> bool:
        deleted = await self._clients.delete(client_id)
        if deleted:
            await self._audit.record(
                AuditKind.CLIENT_DELETED, user_id=None, context=context, client=client_id
            )
        return deleted


def _edited_uris(
    kind: str,
    registered: Sequence[str],
    replaced: Sequence[str] | None,
    added: Sequence[str],
    removed: Sequence[str],
) -> tuple[str, ...]:
    """A client's URIs of one kind after an update: replaced, or edited (removed from, then added to)."""
    if replaced is not None and (added or removed):
        raise InvalidRequest(f"Either replace the {kind}s or add and remove some, not both.")
    base = list(registered if replaced is None else replaced)
    for uri in removed:
        if uri not in base:
            raise InvalidRequest(f"{uri[:100]} is not a registered {kind} of this client.")
    return tuple(dict.fromkeys([*(u for u in base if u not in removed), *added]))


def _uri_changes(kind: str, before: Sequence[str], after: Sequence[str]) -> dict[str, str]:
    """The URIs an update added and removed, for the audit trail (who can be sent where is security)."""
    added = [u for u in after if u not in before]
    removed = [u for u in before if u not in after]
    return {
        **({f"{kind}_added": " ".join(added)} if added else {}),
        **({f"{kind}_removed": " ".join(removed)} if removed else {}),
    }


def _check_backchannel_uri(uri: str, name: str = "backchannel_logout_uri") -> None:
    """OIDC Back-Channel Logout 1.0 section 2.2: an absolute URL, no fragment; like redirect URIs here,
    https, or http on loopback only (a logout token is a bearer of the person's identity). The deletion
    event URI follows the same rule."""
    if len(uri) > 2048 or urlsplit(uri).fragment or upstream_url_error(uri):
        raise InvalidRequest(
            f"{name} must be an absolute https URL (http only on loopback) without a fragment."
        )


def _check_client(client: Client) -> None:
    """The rules of registration, for a new client and for every update of one."""
    if not client.name or len(client.name) > 200:
        raise InvalidRequest("name is required (at most 200 characters).")
    if client.signing_alg not in SIGNING_ALGORITHMS:
        raise InvalidRequest(f"signing_alg must be one of {', '.join(SIGNING_ALGORITHMS)}.")
    if client.id_token_alg not in SIGNING_ALGORITHMS:
        raise InvalidRequest(f"id_token_signed_response_alg must be one of {', '.join(SIGNING_ALGORITHMS)}.")
    if client.logo_uri:
        logo = urlsplit(client.logo_uri)
        if logo.scheme != "https" or not logo.netloc or len(client.logo_uri) > 2048:
            raise InvalidRequest("logo_uri must be an https URL (at most 2048 characters).")
    if client.backchannel_logout_uri is not None:
        _check_backchannel_uri(client.backchannel_logout_uri)
    if client.deletion_event_uri is not None:
        _check_backchannel_uri(client.deletion_event_uri, "deletion_event_uri")
    if not 30 <= client.access_token_lifetime <= MAX_ACCESS_TOKEN_LIFETIME:
        raise InvalidRequest(f"access_token_lifetime must be 30..{MAX_ACCESS_TOKEN_LIFETIME} seconds.")
    if len(client.redirect_uris) > MAX_URIS or len(client.post_logout_redirect_uris) > MAX_URIS:
        raise InvalidRequest(f"A client has at most {MAX_URIS} redirect URIs of each kind.")
    if GrantType.AUTHORIZATION_CODE in client.grant_types and not client.redirect_uris:
        raise InvalidRequest("The authorization_code grant needs at least one redirect URI.")
    for uri in (*client.redirect_uris, *client.post_logout_redirect_uris):
        parts = urlsplit(uri)
        if parts.fragment or not parts.scheme or (parts.scheme in ("http", "https") and not parts.netloc):
            raise InvalidRequest(f"Invalid redirect URI: {uri[:100]}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_NAMES:
            raise InvalidRequest("http redirect URIs are allowed only on loopback; use https.")
        if parts.scheme in NOT_APP_SCHEMES:
            raise InvalidRequest(f"Invalid redirect URI: {uri[:100]}")
    if client.public and client.token_endpoint_auth_method is not AuthMethod.NONE:
        raise InvalidRequest("Public clients do not authenticate (token_endpoint_auth_method none).")
    if not client.public and client.token_endpoint_auth_method is AuthMethod.NONE:
        raise InvalidRequest("Confidential clients must authenticate.")
    if client.public and GrantType.CLIENT_CREDENTIALS in client.grant_types:
        raise InvalidRequest("Public clients cannot use client_credentials.")
    if client.token_endpoint_auth_method is AuthMethod.PRIVATE_KEY_JWT and not client.jwks:
        raise InvalidRequest("private_key_jwt needs the client's public keys (jwks).")
    if client.jwks is not None:
        try:
            from joserfc.jwk import KeySet

            keys = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidRequest("jwks is not a valid JWK set.") from exc
        if any(key.is_private for key in keys):
            raise InvalidRequest("jwks must contain public keys only.")
