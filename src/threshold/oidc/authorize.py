"""The authorization request (RFC 6749 section 4.1.1, OIDC Core 3.1.2.1), one rule per check.

Errors about the client or the redirect_uri are never redirected (RFC 6749 section 4.1.2.1): there is
no trusted place to send them. Every later error is returned to the client's redirect_uri with the
`state` and `iss` (RFC 9207).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from threshold.oidc.errors import (
    InvalidRedirectUri,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnknownClient,
    UnsupportedResponseType,
)
from threshold.oidc.models import Client, GrantType
from threshold.oidc.organization import ORG_ADMIN_SCOPE, ORGANIZATION_SCOPE
from threshold.oidc.pkce import check_code_challenge
from threshold.oidc.ports import ClientRepo

MAX_PARAM = 2048
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
SUPPORTED_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    started_at: float | None = None
    """When the provider first sent this request to sign in, from the sealed value it carries through its
    own sign-in and consent hops (threshold.oidc.authorize_decision); None until then."""

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


class RedirectableError(Exception):
    """An OAuthError to deliver at the client's redirect_uri."""

    def __init__(self, error: OAuthError, *, redirect_uri: str, state: str | None) -> None:
        super().__init__(error.code)
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state


def _single(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > MAX_PARAM:
        raise InvalidRequest(f"{name} is too long.")
    return value or None


async def check_client(params: Mapping[str, str], clients: ClientRepo) -> Client:
    client_id = _single(params, "client_id")
    client = await clients.get(client_id) if client_id and len(client_id) <= 64 else None
    if client is None:
        raise UnknownClient()
    return client


def check_redirect_uri(client: Client, redirect_uri: str | None) -> str:
    """Exact string match against a registered URI (OAuth 2.0 Security BCP, RFC 9700 section 4.1.3),
    but for the port of a loopback IP redirect (`loopback_match`)."""
    if redirect_uri is None or not (
        redirect_uri in client.redirect_uris
        or any(loopback_match(registered, redirect_uri) for registered in client.redirect_uris)
    ):
        raise InvalidRedirectUri()
    return redirect_uri


_LOOPBACK_NETLOC = re.compile(r"^(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?$")


def loopback_match(registered: str, requested: str) -> bool:
    """RFC 8252 section 7.3: a native app listens on a loopback IP on whatever port the operating system
    gave it, so for a registered `http://127.0.0.1/...` or `http://[::1]/...` redirect any port is
    accepted; everything else (scheme, address, path, query, no fragment, no user part) must be the same.
    Not `localhost` (section 8.3: a name may resolve elsewhere)."""
    want, got = urlsplit(registered), urlsplit(requested)
    if want.scheme != "http" or got.scheme != "http" or got.fragment or "#" in requested:
        return False
    want_host, got_host = _LOOPBACK_NETLOC.match(want.netloc), _LOOPBACK_NETLOC.match(got.netloc)
    if want_host is None or got_host is None or want_host.group(1) != got_host.group(1):
        return False
    port = got_host.group(2)
    if port is not None and not 0 < int(port) <= 65535:
        return False
    return (want.path, want.query) == (got.path, got.query)


def check_response_type(params: Mapping[str, str]) -> None:
    if params.get("response_type") != "code":
        raise UnsupportedResponseType()
    if params.get("response_mode") not in (None, "", "query"):
        raise InvalidRequest("Only response_mode=query is supported.")


def check_request_objects(params: Mapping[str, str]) -> None:
    """OIDC Core 6: request objects are not supported, so their parameters are refused."""
    if params.get("request"):
        raise _named("request_not_supported", "Request objects are not supported.")
    if params.get("request_uri"):
        raise _named("request_uri_not_supported", "request_uri is not supported.")


def _named(code: str, message: str) -> OAuthError:
    error = InvalidRequest(message)
    error.code = code
    return error


def check_grant_allowed(client: Client) -> None:
    if GrantType.AUTHORIZATION_CODE not in client.grant_types:
        raise UnauthorizedClient()


def check_scope(client: Client, requested: str | None) -> tuple[str, ...]:
    """`openid` is required (this is an OpenID Connect provider); every scope must be allowed (registered
    for the client); `threshold:org_admin` comes with `organization` (it administers the organization
    the token names, oidc.organization)."""
    scopes = tuple(dict.fromkeys((requested or "").split()))
    if "openid" not in scopes:
        raise InvalidScope("The openid scope is required.")
    if any(scope not in client.scopes for scope in scopes):
        raise InvalidScope()
    if ORG_ADMIN_SCOPE in scopes and ORGANIZATION_SCOPE not in scopes:
        raise InvalidScope(f"{ORG_ADMIN_SCOPE} needs the {ORGANIZATION_SCOPE} scope.")
    return scopes


def check_prompt(params: Mapping[str, str]) -> frozenset[str]:
    """OIDC Core 3.1.2.1: `none` must not be combined with any other value."""
    prompt = frozenset((params.get("prompt") or "").split())
    if not prompt <= PROMPTS:
        raise InvalidRequest("Unsupported prompt value.")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values.")
    return prompt


def check_max_age(params: Mapping[str, str]) -> int | None:
    raw = params.get("max_age")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 10:
        raise InvalidRequest("max_age must be a non-negative integer.")
    return int(raw)


async def parse_authorization_request(params: Mapping[str, str], clients: ClientRepo) -> AuthorizationRequest:
    """Validate an authorization request.

    Raises:
        UnknownClient, InvalidRedirectUri: shown as an error page, never redirected.
        RedirectableError: any other problem, to send back to the client.
    """
    client = await check_client(params, clients)
    redirect_uri = check_redirect_uri(client, params.get("redirect_uri"))
    state = params.get("state") or None
    if state is not None and len(state) > MAX_PARAM:
        state = None
    try:
        check_request_objects(params)
        check_response_type(params)
        check_grant_allowed(client)
        scopes = check_scope(client, _single(params, "scope"))
        code_challenge = check_code_challenge(
            code_challenge=_single(params, "code_challenge"), method=_single(params, "code_challenge_method")
        )
        prompt = check_prompt(params)
        max_age = check_max_age(params)
        nonce = _single(params, "nonce")
    except OAuthError as error:
        raise RedirectableError(error, redirect_uri=redirect_uri, state=state) from None
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        nonce=nonce,
        code_challenge=code_challenge,
        prompt=prompt,
        max_age=max_age,
    )
