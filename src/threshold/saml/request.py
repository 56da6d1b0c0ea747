"""The AuthnRequest (SAML core 3.4.1) sent by the HTTP-Redirect binding (SAML bindings 3.4).

Unsigned (our metadata says AuthnRequestsSigned="false"): nothing in it needs protecting, and the
answer is bound to it by `InResponseTo`, which the caller stores and passes to `verify_response`.
"""

from __future__ import annotations

import re
import secrets

from lxml import etree

from threshold.saml._binding import deflate_encode, redirect_url
from threshold.saml._xml import BINDING_POST, SAML, SAMLP, format_instant, serialize, tag
from threshold.saml.metadata import IdpMetadata, ServiceProvider

# SAML bindings 3.4.3: "RelayState data MUST NOT exceed 80 bytes in length".
MAX_RELAY_STATE_BYTES = 80
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*", re.ASCII)


def new_request_id() -> str:
    """A fresh message ID: 160 random bits, prefixed so it is a valid xs:ID (an NCName)."""
    return "_" + secrets.token_hex(20)


def authn_request_redirect_url(
    *, sp: ServiceProvider, idp: IdpMetadata, request_id: str, relay_state: str, now: float
) -> str:
    """The URL that sends the browser to the identity provider with an AuthnRequest.

    Args:
        sp: This connection's service provider (entity id and ACS).
        idp: The identity provider's metadata (its HTTP-Redirect SSO location).
        request_id: From `new_request_id()`; store it and pass it as `expected_request_id` later.
        relay_state: An opaque handle of at most 80 bytes, returned unchanged with the response.
        now: The current time (seconds since the epoch), for IssueInstant.

    Returns:
        `idp.sso_url` with `SAMLRequest` and `RelayState` added.

    Raises:
        ValueError: `request_id` is not an NCName, or `relay_state` is longer than 80 bytes.
    """
    if not _NCNAME.fullmatch(request_id):
        raise ValueError("request_id must be an XML NCName; use new_request_id().")
    if len(relay_state.encode()) > MAX_RELAY_STATE_BYTES:
        raise ValueError("relay_state must not exceed 80 bytes (SAML bindings 3.4.3).")
    request = etree.Element(
        tag(SAMLP, "AuthnRequest"),
        nsmap={"samlp": SAMLP, "saml": SAML},
        ID=request_id,
        Version="2.0",
        IssueInstant=format_instant(now),
        Destination=idp.sso_url,
        AssertionConsumerServiceURL=sp.acs_url,
        ProtocolBinding=BINDING_POST,
    )
    etree.SubElement(request, tag(SAML, "Issuer")).text = sp.entity_id
    etree.SubElement(request, tag(SAMLP, "NameIDPolicy"), AllowCreate="true")
    parameters = [("SAMLRequest", deflate_encode(serialize(request)))]
    if relay_state:
        parameters.append(("RelayState", relay_state))
    return redirect_url(idp.sso_url, parameters)
