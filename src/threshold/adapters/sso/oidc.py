"""Relying-party work against an upstream OpenID Provider.

Authlib's async OAuth 2.0 client builds the authorization URL (state, nonce, PKCE S256) and exchanges
the code; joserfc verifies the ID token against the provider's published keys. The issuer is compared
exactly (OpenID Connect Discovery 1.0, section 4.3; Core 1.0, section 3.1.3.7), including Microsoft's
multi-tenant template `https://login.microsoftonline.com/{tenantid}/v2.0`, resolved with the token's
own `tid` before the comparison. Discovery documents and key sets are cached for a few minutes per
process (public data; a key the cache lacks triggers one refetch).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from threshold.core.crypto import SecretBox
from threshold.core.errors import DependencyUnavailable
from threshold.core.i18n import N_
from threshold.core.sso.connections import MS_TENANT, SECRET_PURPOSE
from threshold.core.sso.errors import SsoRejected
from threshold.core.sso.models import AssertedIdentity, Connection
from threshold.core.sso.ports import UpstreamLogout
from threshold.settings.sections import upstream_url_error

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Asymmetric signatures only: never `none`, never an HMAC keyed with the client secret."""
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
TENANT = re.compile(r"^[0-9a-fA-F-]{36}$")
MFA_ACR = frozenset(
    {
        "aal2",
        "aal3",
        "mfa",
        "https://refeds.org/profile/mfa",
        "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
        "http://schemas.openid.net/pape/policies/2007/06/multi-factor-physical",
    }
)
FACTORS = {
    "pwd": "knowledge",
    "pin": "knowledge",
    "otp": "possession",
    "hwk": "possession",
    "swk": "possession",
    "sms": "possession",
    "tel": "possession",
    "fpt": "inherence",
    "face": "inherence",
    "iris": "inherence",
}
CACHE_SECONDS = 300
LOGOUT_MAX_AGE = 300
"""Seconds a logout token (by its iat) or logout request is accepted; its id is kept longer than that."""
GOOGLE = "https://accounts.google.com"
REFETCH = 30


def said_mfa(amr: tuple[str, ...], acr: str | None) -> bool:
    """Whether an IdP's `amr`/`acr` say more than one factor was used (RFC 8176 section 2)."""
    if "mfa" in amr or (acr is not None and acr in MFA_ACR):
        return True
    return len({FACTORS[a] for a in amr if a in FACTORS}) >= 2


@dataclass(frozen=True, slots=True)
class _Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    auth_methods: tuple[str, ...]


class OidcUpstream:
    def __init__(self, *, box: SecretBox, timeout: float, skew: int) -> None:
        self._box = box
        self._timeout = timeout
        self._skew = skew
        self._providers: dict[str, tuple[float, _Provider]] = {}
        self._keys: dict[str, tuple[float, KeySet]] = {}
        self._lock = asyncio.Lock()

    # --- discovery and keys ---------------------------------------------------------------------------

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as http:
                response = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise DependencyUnavailable("The identity provider did not answer.", retry_after=5) from error
        if response.status_code >= 500:
            raise DependencyUnavailable("The identity provider is unavailable.", retry_after=5)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            raise SsoRejected(
                "discovery_failed", N_("The identity provider's configuration could not be read.")
            )
        return body

    async def _provider(self, connection: Connection) -> _Provider:
        assert connection.oidc is not None
        issuer = connection.oidc.issuer
        cached = self._providers.get(issuer)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        base = issuer.replace(MS_TENANT, "organizations").rstrip("/")
        document = await self._get_json(f"{base}/.well-known/openid-configuration")
        if document.get("issuer") != issuer:  # Discovery 1.0 section 4.3: exactly the configured issuer
            raise SsoRejected(
                "issuer_mismatch", N_("The identity provider's configuration names another issuer.")
            )
        try:
            provider = _Provider(
                issuer=issuer,
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
                userinfo_endpoint=str(document["userinfo_endpoint"])
                if document.get("userinfo_endpoint")
                else None,
                auth_methods=tuple(
                    document.get("token_endpoint_auth_methods_supported") or ("client_secret_basic",)
                ),
            )
        except KeyError:
            raise SsoRejected(
                "discovery_failed", N_("The identity provider's configuration is incomplete.")
            ) from None
        endpoints = (provider.authorization_endpoint, provider.token_endpoint, provider.jwks_uri)
        if any(upstream_url_error(url) for url in (*endpoints, provider.userinfo_endpoint or issuer)):
            raise SsoRejected("discovery_failed", N_("The identity provider's endpoints must be https URLs."))
        self._providers[issuer] = (time.monotonic() + CACHE_SECONDS, provider)
        return provider

    async def _keyset(self, provider: _Provider, *, refresh: bool = False) -> KeySet:
        cached = self._keys.get(provider.jwks_uri)
        if cached and cached[0] > time.monotonic() and not refresh:
            return cached[1]
        document = await self._get_json(provider.jwks_uri)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise SsoRejected(
                "discovery_failed", N_("The identity provider's keys could not be read.")
            ) from None
        self._keys[provider.jwks_uri] = (time.monotonic() + CACHE_SECONDS, keys)
        return keys

    async def _decode(self, provider: _Provider, token: str) -> dict[str, Any]:
        """Verify the signature with the provider's keys; a failure with keys older than a few seconds
        refetches them once (the provider may have rotated a key in), at most every REFETCH seconds."""
        keys = await self._keyset(provider)
        try:
            return dict(jwt.decode(token, keys, algorithms=list(ALGORITHMS)).claims)
        except (JoseError, ValueError):
            pass
        fetched_at = self._keys[provider.jwks_uri][0] - CACHE_SECONDS
        if time.monotonic() - fetched_at >= REFETCH:
            keys = await self._keyset(provider, refresh=True)
            try:
                return dict(jwt.decode(token, keys, algorithms=list(ALGORITHMS)).claims)
            except (JoseError, ValueError):
                pass
        raise SsoRejected("signature_invalid", N_("The identity provider's token is not valid."))

    def _expected_issuer(self, connection: Connection, claims: dict[str, Any]) -> str:
        assert connection.oidc is not None
        issuer = connection.oidc.issuer
        if MS_TENANT in issuer:
            tenant = claims.get("tid")
            if not isinstance(tenant, str) or not TENANT.match(tenant):
                raise SsoRejected("issuer_mismatch", N_("The token names no tenant."))
            issuer = issuer.replace(MS_TENANT, tenant)
        return issuer

    def _client(self, connection: Connection, provider: _Provider, redirect_uri: str) -> AsyncOAuth2Client:
        assert connection.oidc is not None
        method = (
            "client_secret_basic" if "client_secret_basic" in provider.auth_methods else "client_secret_post"
        )
        return AsyncOAuth2Client(
            client_id=connection.oidc.client_id,
            client_secret=self._box.open(connection.oidc.client_secret, purpose=SECRET_PURPOSE).decode(),
            token_endpoint_auth_method=method,
            scope=" ".join(connection.oidc.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self._timeout,
        )

    # --- the port -------------------------------------------------------------------------------------

    async def authorization_url(
        self,
        connection: Connection,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_verifier: str,
        login_hint: str | None,
    ) -> str:
        provider = await self._provider(connection)
        extra = {"login_hint": login_hint} if login_hint else {}
        async with self._client(connection, provider, redirect_uri) as client:
            url, _ = client.create_authorization_url(
                provider.authorization_endpoint,
                state=state,
                code_verifier=code_verifier,
                nonce=nonce,
                **extra,
            )
        return str(url)

    async def finish(
        self,
        connection: Connection,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        expected_nonce: str,
    ) -> AssertedIdentity:
        assert connection.oidc is not None
        provider = await self._provider(connection)
        try:
            async with self._client(connection, provider, redirect_uri) as client:
                token = await client.fetch_token(
                    provider.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except AuthlibBaseError as error:
            raise SsoRejected(
                "token_refused", f"The identity provider refused the code ({error.error})."
            ) from None
        except httpx.HTTPError as error:
            raise DependencyUnavailable("The identity provider did not answer.", retry_after=5) from error
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SsoRejected("id_token_missing", N_("The identity provider sent no ID token."))
        claims = await self._decode(provider, id_token)
        client_id = connection.oidc.client_id
        registry = jwt.JWTClaimsRegistry(
            leeway=self._skew,
            iss={"essential": True, "value": self._expected_issuer(connection, claims)},
            aud={"essential": True, "value": client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": expected_nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise SsoRejected(
                _claim_reason(error), N_("The identity provider's ID token is not for this sign-in.")
            ) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != client_id:  # Core 1.0 section 3.1.3.7, items 4 and 5
            raise SsoRejected("audience_mismatch", N_("The ID token was issued to another party."))
        if (
            "email" not in claims
            and provider.userinfo_endpoint
            and isinstance(token.get("access_token"), str)
        ):
            claims = {**await self._userinfo(provider, str(token["access_token"]), claims["sub"]), **claims}
        return self._identity(connection, claims)

    async def _userinfo(self, provider: _Provider, access_token: str, subject: str) -> dict[str, Any]:
        assert provider.userinfo_endpoint is not None
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.get(
                    provider.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
                )
        except httpx.HTTPError as error:
            raise DependencyUnavailable("The identity provider did not answer.", retry_after=5) from error
        try:
            info = response.json()
        except ValueError:
            info = None
        if response.status_code != 200 or not isinstance(info, dict) or info.get("sub") != subject:
            return {}  # Core 1.0 section 5.3.2: a userinfo for another subject is not used
        return {k: v for k, v in info.items() if k in ("email", "email_verified", "name", "groups")}

    def _identity(self, connection: Connection, claims: dict[str, Any]) -> AssertedIdentity:
        assert connection.oidc is not None
        config = connection.oidc
        email = claims.get(config.email_claim)
        verified = claims.get("email_verified")
        if isinstance(verified, str):  # some providers send "true"/"false"
            verified = verified.lower() == "true"
        if MS_TENANT in config.issuer and verified is None:
            # Any Entra tenant can put any address in `email` ("nOAuth"): across tenants, an address is
            # taken as verified only with Entra's optional claim saying its domain owner verified it.
            verified = claims.get("xms_edov") in (True, "true", "True", "1", 1)
        # A consumer Google account can carry a Workspace domain's address: for an organization, only the
        # Workspace itself (`hd`, the hosted domain) speaks for addresses at its domain.
        google = connection.org_id is not None and config.issuer.rstrip("/") == GOOGLE
        if google and isinstance(email, str) and claims.get("hd") != email.rpartition("@")[2].lower():
            verified = False
        amr_value = claims.get("amr")
        amr = tuple(str(a)[:40] for a in amr_value[:10]) if isinstance(amr_value, list) else ()
        acr = str(claims["acr"])[:200] if isinstance(claims.get("acr"), str) else None
        groups_value = claims.get(config.groups_claim)
        groups = tuple(str(g)[:200] for g in groups_value[:200]) if isinstance(groups_value, list) else ()
        name = claims.get(config.name_claim)
        subject = str(claims["sub"])
        if MS_TENANT in config.issuer:  # a subject is unique per tenant only
            subject = f"{claims['tid']}:{subject}"
        return AssertedIdentity(
            subject=subject[:255],
            email=str(email)[:320] if isinstance(email, str) else None,
            email_verified=verified if isinstance(verified, bool) else None,
            name=str(name)[:200] if isinstance(name, str) else None,
            groups=groups,
            acr=acr,
            amr=amr,
            mfa=said_mfa(amr, acr),
            upstream_session=str(claims["sid"])[:255] if isinstance(claims.get("sid"), str) else None,
        )

    async def verify_logout_token(self, connection: Connection, token: str) -> UpstreamLogout:
        """OpenID Connect Back-Channel Logout 1.0, section 2.6 (validation of the logout token)."""
        assert connection.oidc is not None
        if len(token) > 16_384:
            raise SsoRejected("malformed", N_("The logout token is too large."))
        provider = await self._provider(connection)
        claims = await self._decode(provider, token)
        registry = jwt.JWTClaimsRegistry(
            leeway=self._skew,
            iss={"essential": True, "value": self._expected_issuer(connection, claims)},
            aud={"essential": True, "value": connection.oidc.client_id},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise SsoRejected(_claim_reason(error), N_("The logout token is not for this service.")) from None
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
            raise SsoRejected("malformed", N_("The logout token carries no back-channel logout event."))
        if time.time() - float(claims["iat"]) > LOGOUT_MAX_AGE + self._skew:  # a captured token goes stale
            raise SsoRejected("expired", N_("The logout token is too old."))
        if "nonce" in claims:  # section 2.4: prohibited, so an ID token cannot pass for a logout token
            raise SsoRejected("malformed", N_("A logout token must not carry a nonce."))
        subject, sid = claims.get("sub"), claims.get("sid")
        if not isinstance(subject, str) and not isinstance(sid, str):
            raise SsoRejected("malformed", N_("The logout token names neither a subject nor a session."))
        if isinstance(subject, str) and MS_TENANT in connection.oidc.issuer:
            subject = f"{claims['tid']}:{subject}"
        exp = claims.get("exp")
        return UpstreamLogout(
            subject=subject if isinstance(subject, str) else None,
            sessions=(sid,) if isinstance(sid, str) else (),
            replay_key=str(claims["jti"])[:200],
            expires_at=float(exp) if isinstance(exp, int | float) else float(claims["iat"]) + 600,
        )


def _claim_reason(error: JoseError) -> str:
    text = f"{type(error).__name__} {error}".lower()
    for word, reason in (
        ("iss", "issuer_mismatch"),
        ("aud", "audience_mismatch"),
        ("nonce", "nonce_mismatch"),
        ("exp", "expired"),
        ("nbf", "not_yet_valid"),
        ("iat", "not_yet_valid"),
    ):
        if f'"{word}"' in text or f"'{word}'" in text or f" {word}" in text:
            return reason
    return "claims_invalid"
