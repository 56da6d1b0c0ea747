"""new_request_id and authn_request_redirect_url (HTTP-Redirect binding, SAML bindings 3.4)."""

from __future__ import annotations

import base64
import re
import zlib
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from threshold.saml import IdpMetadata, ServiceProvider, authn_request_redirect_url, new_request_id

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def decode(url: str) -> tuple[etree._Element, dict[str, list[str]]]:
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), wbits=-15)
    assert b"<!DOCTYPE" not in xml
    return etree.fromstring(xml), query


def test_request_ids_are_fresh_ncnames() -> None:
    ids = {new_request_id() for _ in range(200)}

    assert len(ids) == 200
    assert all(re.fullmatch(r"_[0-9a-f]{40}", value) for value in ids)


def test_the_redirect_carries_an_unsigned_authn_request(sp: ServiceProvider, idp: IdpMetadata) -> None:
    url = authn_request_redirect_url(sp=sp, idp=idp, request_id="_abc123", relay_state="st-1", now=NOW)
    request, query = decode(url)

    assert url.startswith(idp.sso_url + "?")
    assert query["RelayState"] == ["st-1"]
    assert "Signature" not in query and "SigAlg" not in query
    assert request.tag == f"{{{SAMLP}}}AuthnRequest"
    assert request.get("ID") == "_abc123"
    assert request.get("Version") == "2.0"
    assert request.get("IssueInstant") == "2026-01-01T00:00:00Z"
    assert request.get("Destination") == idp.sso_url
    assert request.get("AssertionConsumerServiceURL") == sp.acs_url
    assert request.get("ProtocolBinding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert request.findtext(f"{{{SAML}}}Issuer") == sp.entity_id
    policy = request.find(f"{{{SAMLP}}}NameIDPolicy")
    assert policy is not None
    assert policy.get("AllowCreate") == "true"
    assert request.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None


def test_an_sso_url_with_a_query_keeps_it(sp: ServiceProvider, idp: IdpMetadata) -> None:
    with_query = replace(idp, sso_url="https://idp.acme.test/sso?tenant=acme")
    url = authn_request_redirect_url(sp=sp, idp=with_query, request_id="_r1", relay_state="x", now=NOW)
    request, query = decode(url)

    assert url.startswith("https://idp.acme.test/sso?tenant=acme&SAMLRequest=")
    assert query["tenant"] == ["acme"]
    assert request.get("Destination") == "https://idp.acme.test/sso?tenant=acme"


def test_an_empty_relay_state_is_left_out(sp: ServiceProvider, idp: IdpMetadata) -> None:
    _, query = decode(authn_request_redirect_url(sp=sp, idp=idp, request_id="_r1", relay_state="", now=NOW))

    assert "RelayState" not in query


def test_relay_state_is_limited_to_80_bytes(sp: ServiceProvider, idp: IdpMetadata) -> None:
    authn_request_redirect_url(sp=sp, idp=idp, request_id="_r1", relay_state="a" * 80, now=NOW)
    with pytest.raises(ValueError, match="80 bytes"):
        authn_request_redirect_url(sp=sp, idp=idp, request_id="_r1", relay_state="a" * 81, now=NOW)


@pytest.mark.parametrize("bad", ["", "1abc", "a b", 'x"/><evil', "a:b"])
def test_a_request_id_that_is_not_an_ncname_is_a_programming_error(
    sp: ServiceProvider, idp: IdpMetadata, bad: str
) -> None:
    with pytest.raises(ValueError, match="NCName"):
        authn_request_redirect_url(sp=sp, idp=idp, request_id=bad, relay_state="x", now=NOW)


def test_values_are_escaped_in_the_xml(idp: IdpMetadata) -> None:
    sp = ServiceProvider(entity_id='https://sp.test/m?a=1&b="2"', acs_url="https://sp.test/acs?x=<y>")
    request, _ = decode(
        authn_request_redirect_url(sp=sp, idp=idp, request_id="_r1", relay_state="x", now=NOW)
    )

    assert request.findtext(f"{{{SAML}}}Issuer") == sp.entity_id
    assert request.get("AssertionConsumerServiceURL") == sp.acs_url
