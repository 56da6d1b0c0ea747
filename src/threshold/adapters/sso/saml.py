"""The SAML connection of an organization, over the protocol module `threshold.saml`.

Each connection is its own service provider: entity id `{issuer}/sso/saml/{id}/metadata` (where its
metadata is served), ACS `{issuer}/sso/saml/{id}/acs`, SLO `{issuer}/sso/saml/{id}/slo`. Attributes
are read under the names Microsoft Entra ID, Okta and Google Workspace send by default, unless the
connection names others.
"""

from __future__ import annotations

import functools

import httpx

from threshold.core.clock import Clock
from threshold.core.errors import DependencyUnavailable
from threshold.core.i18n import N_
from threshold.core.sso.errors import SsoRejected
from threshold.core.sso.models import AssertedIdentity, Connection
from threshold.core.sso.ports import UpstreamLogout, VerifiedSamlAssertion
from threshold.saml import (
    IdpMetadata,
    ServiceProvider,
    VerifiedAssertion,
    authn_request_redirect_url,
    logout_response_redirect_url,
    new_request_id,
    parse_idp_metadata,
    parse_logout_request,
    sp_metadata_xml,
    verify_response,
)
from threshold.settings.sections import upstream_url_error

EMAIL_NAMES = (
    "email",
    "mail",
    "emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
)
NAME_NAMES = (
    "name",
    "displayName",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "urn:oid:2.16.840.1.113730.3.1.241",
)
GROUP_NAMES = ("groups", "memberOf", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups")
METHOD_NAMES = ("http://schemas.microsoft.com/claims/authnmethodsreferences",)
MFA_CONTEXTS = frozenset(
    {
        "http://schemas.microsoft.com/claims/multipleauthn",
        "https://refeds.org/profile/mfa",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
    }
)
PASSWORD_CONTEXTS = frozenset(
    {
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
        "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
    }
)


@functools.lru_cache(maxsize=256)
def _idp(metadata_xml: str) -> IdpMetadata:
    return parse_idp_metadata(metadata_xml.encode())


def _first(attributes: dict[str, tuple[str, ...]], names: tuple[str, ...]) -> str | None:
    for name in names:
        values = attributes.get(name)
        if values:
            return values[0]
    return None


class SamlUpstream:
    def __init__(self, *, issuer: str, clock: Clock, skew: int) -> None:
        self._issuer = issuer.rstrip("/")
        self._clock = clock
        self._skew = skew

    def _base(self, connection: Connection) -> str:
        return f"{self._issuer}/sso/saml/{connection.id}"

    def entity_id(self, connection: Connection) -> str:
        return f"{self._base(connection)}/metadata"

    def acs_url(self, connection: Connection) -> str:
        return f"{self._base(connection)}/acs"

    def _sp(self, connection: Connection) -> ServiceProvider:
        return ServiceProvider(
            entity_id=self.entity_id(connection),
            acs_url=self.acs_url(connection),
            slo_url=f"{self._base(connection)}/slo",
        )

    def _idp_of(self, connection: Connection) -> IdpMetadata:
        if connection.saml is None:
            raise SsoRejected("metadata_invalid", N_("This connection is not a SAML connection."))
        return _idp(connection.saml.metadata_xml)

    def check_metadata(self, metadata_xml: str) -> str:
        return _idp(metadata_xml).entity_id

    def sp_metadata(self, connection: Connection) -> bytes:
        return sp_metadata_xml(self._sp(connection))

    def new_request_id(self) -> str:
        return new_request_id()

    def authn_request_url(self, connection: Connection, *, request_id: str, relay_state: str) -> str:
        return authn_request_redirect_url(
            sp=self._sp(connection),
            idp=self._idp_of(connection),
            request_id=request_id,
            relay_state=relay_state,
            now=self._clock.now(),
        )

    def verify(
        self, connection: Connection, *, response: str, expected_request_id: str | None
    ) -> VerifiedSamlAssertion:
        verified = verify_response(
            response,
            sp=self._sp(connection),
            idp=self._idp_of(connection),
            expected_request_id=expected_request_id,
            now=self._clock.now(),
            skew=float(self._skew),
        )
        return VerifiedSamlAssertion(
            identity=self._identity(connection, verified),
            assertion_id=verified.assertion_id,
            not_on_or_after=verified.not_on_or_after,
        )

    def _identity(self, connection: Connection, verified: VerifiedAssertion) -> AssertedIdentity:
        assert connection.saml is not None
        config = connection.saml
        attributes = verified.attributes
        email = _first(attributes, (config.email_attribute, *EMAIL_NAMES))
        if email is None and "@" in verified.name_id:
            email = verified.name_id
        name = _first(attributes, (config.name_attribute, *NAME_NAMES))
        groups: tuple[str, ...] = ()
        for group_name in (config.groups_attribute, *GROUP_NAMES):
            if attributes.get(group_name):
                groups = tuple(g[:200] for g in attributes[group_name][:200])
                break
        acr = verified.authn_context_class
        methods = {m for n in METHOD_NAMES for m in attributes.get(n, ())}
        mfa = (acr in MFA_CONTEXTS) or bool(methods & MFA_CONTEXTS)
        amr: tuple[str, ...] = ()
        if acr in PASSWORD_CONTEXTS or methods & PASSWORD_CONTEXTS:
            amr = ("pwd",)
        if mfa:
            amr = (*amr, "mfa")
        return AssertedIdentity(
            subject=verified.name_id[:255],
            email=email[:320] if email else None,
            email_verified=None,
            name=name[:200] if name else None,
            groups=groups,
            acr=acr[:200] if acr else None,
            amr=amr,
            mfa=mfa,
            upstream_session=verified.session_index[:255] if verified.session_index else None,
        )

    def verify_logout_request(
        self, connection: Connection, *, request: str, query_string: str
    ) -> UpstreamLogout:
        now = self._clock.now()
        verified = parse_logout_request(
            request,
            query_string=query_string,
            idp=self._idp_of(connection),
            sp=self._sp(connection),
            now=now,
            skew=float(self._skew),
        )
        return UpstreamLogout(
            subject=verified.name_id[:255],
            sessions=tuple(s[:255] for s in verified.session_indexes),
            replay_key=verified.id,
            expires_at=now + 600,
        )

    def logout_response_url(
        self, connection: Connection, *, in_response_to: str, relay_state: str | None
    ) -> str:
        return logout_response_redirect_url(
            sp=self._sp(connection),
            idp=self._idp_of(connection),
            in_response_to=in_response_to,
            relay_state=relay_state,
            now=self._clock.now(),
        )


MAX_METADATA = 1024 * 1024


async def fetch_metadata(url: str, *, seconds: float) -> str:
    """An IdP's metadata from its URL (https, or http on loopback), at most 1 MiB.

    Raises:
        SsoRejected: not such a URL, not an answer of 200 with a body.
        DependencyUnavailable: the IdP did not answer.
    """
    error = upstream_url_error(url)
    if error:
        raise SsoRejected("metadata_invalid", f"The metadata URL {error}.")
    accept = {"Accept": "application/samlmetadata+xml, */*"}
    try:
        async with (
            httpx.AsyncClient(timeout=seconds, follow_redirects=False) as http,
            http.stream("GET", url, headers=accept) as response,
        ):
            if response.status_code >= 500:
                raise DependencyUnavailable("The identity provider is unavailable.", retry_after=5)
            if response.status_code != 200:
                raise SsoRejected("metadata_invalid", f"The metadata URL answered {response.status_code}.")
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_METADATA:
                    raise SsoRejected("metadata_invalid", N_("The metadata is larger than 1 MiB."))
    except httpx.HTTPError as failure:
        raise DependencyUnavailable("The identity provider did not answer.", retry_after=5) from failure
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise SsoRejected("metadata_invalid", N_("The metadata is not UTF-8 text.")) from None
