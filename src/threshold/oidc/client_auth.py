"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 2.3, OIDC Core 9).

client_secret_basic, client_secret_post, private_key_jwt (RFC 7523 as updated by RFC 10070), and none
for public clients.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import unquote

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from threshold.core.clock import Clock
from threshold.core.secrets import digest, equal
from threshold.oidc.errors import InvalidClient, InvalidRequest
from threshold.oidc.models import SECRET_METHODS, AuthMethod, Client
from threshold.oidc.ports import ClientRepo, MarkStore

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["ES256", "RS256", "Ed25519", "PS256"]
MAX_ASSERTION_LIFETIME = 600


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What the request presented; one of the methods at most."""

    method: AuthMethod
    client_id: str
    secret: str | None = None
    assertion: str | None = None


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 section 2.3.1: both parts are form-urlencoded before base64."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidClient("Malformed Basic credentials.") from exc
    client_id, sep, secret = raw.partition(":")
    if not sep:
        raise InvalidClient("Malformed Basic credentials.")
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def presented_credentials(*, authorization: str | None, form: dict[str, str]) -> ClientCredentials:
    """Which authentication the request used. More than one method is an error (RFC 6749 2.3)."""
    basic = parse_basic(authorization)
    methods: list[ClientCredentials] = []
    if basic:
        methods.append(ClientCredentials(AuthMethod.CLIENT_SECRET_BASIC, basic[0], secret=basic[1]))
    if form.get("client_secret"):
        methods.append(
            ClientCredentials(
                AuthMethod.CLIENT_SECRET_POST, form.get("client_id", ""), secret=form["client_secret"]
            )
        )
    if form.get("client_assertion") or form.get("client_assertion_type"):
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise InvalidClient("Unsupported client_assertion_type.")
        methods.append(
            ClientCredentials(
                AuthMethod.PRIVATE_KEY_JWT, form.get("client_id", ""), assertion=form["client_assertion"]
            )
        )
    if len(methods) > 1:
        raise InvalidRequest("Use exactly one client authentication method.")
    if methods:
        return methods[0]
    if not form.get("client_id"):
        raise InvalidClient("Client authentication is required.")
    return ClientCredentials(AuthMethod.NONE, form["client_id"])


async def authenticate_client(
    credentials: ClientCredentials,
    *,
    clients: ClientRepo,
    marks: MarkStore,
    clock: Clock,
    expected_audience: str,
    legacy_audience: str,
) -> Client:
    """Return the authenticated client or raise InvalidClient.

    A client with a secret may present it either way (RFC 6749 section 2.3.1 lets the server support
    both; openid-client sends client_secret_post by default, Authlib client_secret_basic). When the
    method is what is wrong, the error says which method the client uses: that is registration data,
    not a secret. A wrong secret and an unknown client get the same answer.

    Args:
        expected_audience: the issuer identifier, the `aud` of a client assertion at every endpoint.
        legacy_audience: the token endpoint URL, also accepted (as a single string only) from clients
            that predate RFC 10070.
    """
    client_id = credentials.client_id
    if credentials.method is AuthMethod.PRIVATE_KEY_JWT and not client_id:
        client_id = _assertion_issuer(credentials.assertion or "")
    client = await clients.get(client_id[:64]) if client_id else None
    if client is None:
        raise InvalidClient(UNKNOWN_OR_WRONG_SECRET)
    if not _method_allowed(client, credentials.method):
        raise InvalidClient(_method_hint(client, credentials.method))
    if credentials.method in SECRET_METHODS:
        if not client.secret_digest or not equal(digest(credentials.secret or ""), client.secret_digest):
            raise InvalidClient(UNKNOWN_OR_WRONG_SECRET)
    elif credentials.method is AuthMethod.PRIVATE_KEY_JWT:
        await _check_assertion(
            client,
            credentials.assertion or "",
            marks,
            clock,
            expected_audience=expected_audience,
            legacy_audience=legacy_audience,
        )
    elif not client.public:
        raise InvalidClient(_method_hint(client, credentials.method))
    return client


UNKNOWN_OR_WRONG_SECRET = "Client authentication failed: unknown client_id or wrong client_secret."


def _method_allowed(client: Client, method: AuthMethod) -> bool:
    if method in SECRET_METHODS:
        return client.accepts_secret
    return method is client.token_endpoint_auth_method


def _method_hint(client: Client, presented: AuthMethod) -> str:
    """What to send instead, for a client that used the wrong authentication method."""
    if client.accepts_secret:
        how = (
            "its client_secret, in an HTTP Basic Authorization header (client_secret_basic) "
            "or as the client_secret form field (client_secret_post)"
        )
    elif client.token_endpoint_auth_method is AuthMethod.PRIVATE_KEY_JWT:
        how = "a signed client_assertion (private_key_jwt, RFC 7523)"
    else:
        how = "no secret (a public client: send client_id only)"
    used = "no credentials" if presented is AuthMethod.NONE else presented.value
    return f"Client authentication failed: this client authenticates with {how}; the request used {used}."


def _assertion_issuer(assertion: str) -> str:
    """The unverified `iss` of an assertion, only to find which client's keys verify it."""
    try:
        value = json.loads(jws.extract_compact(assertion.encode()).payload).get("iss")
    except (JoseError, ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _audience_accepted(audience: object, *, expected_audience: str, legacy_audience: str) -> bool:
    """RFC 10070 section 3 and OpenID Connect Core 1.0 (errata set 2) section 9: the audience of a client
    assertion is the authorization server's issuer identifier, as a single string, whichever endpoint
    it is sent to. A JSON array is refused even when it holds the issuer: an assertion made for several
    audiences is the one a malicious server can replay here (the 2025 private_key_jwt audience-injection
    advisory). The token endpoint URL is still accepted as a single string, for clients that predate the
    update; no other endpoint URL is.
    """
    return isinstance(audience, str) and audience in (expected_audience, legacy_audience)


async def _check_assertion(
    client: Client,
    assertion: str,
    marks: MarkStore,
    clock: Clock,
    *,
    expected_audience: str,
    legacy_audience: str,
) -> None:
    """RFC 7523 section 3: iss = sub = client_id, aud = us (one string), exp in the future, jti used once."""
    if not client.jwks:
        raise InvalidClient()
    try:
        keys = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        token = jwt.decode(assertion, keys, algorithms=ASSERTION_ALGORITHMS)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidClient() from exc
    claims = token.claims
    now = clock.now()
    exp, jti = claims.get("exp"), claims.get("jti")
    if (
        claims.get("iss") != client.client_id
        or claims.get("sub") != client.client_id
        or not _audience_accepted(
            claims.get("aud"), expected_audience=expected_audience, legacy_audience=legacy_audience
        )
        or not isinstance(exp, int | float)
        or exp < now - 30
        or exp > now + MAX_ASSERTION_LIFETIME
        or not isinstance(jti, str)
        or not jti
    ):
        raise InvalidClient()
    if not await marks.add(f"assertion:{client.client_id}:{digest(jti)[:40]}", expires_at=float(exp) + 60):
        raise InvalidClient("The client assertion was already used.")
