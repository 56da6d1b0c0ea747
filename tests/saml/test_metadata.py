"""parse_idp_metadata and sp_metadata_xml."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from tests.saml.conftest import SP
from tests.support.saml_attacks import SigningKey
from threshold.core.sso.errors import SsoRejected
from threshold.saml import Reason, ServiceProvider, parse_idp_metadata, sp_metadata_xml

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


def der_b64(cert_pem: str) -> str:
    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(Encoding.DER)
    encoded = base64.b64encode(der).decode()
    return "\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))  # wrapped, as IdPs do


def key_descriptor(cert_pem: str, use: str | None = "signing") -> str:
    use_attr = f' use="{use}"' if use else ""
    return (
        f'<md:KeyDescriptor{use_attr}><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        f"<ds:X509Data><ds:X509Certificate>{der_b64(cert_pem)}</ds:X509Certificate></ds:X509Data>"
        "</ds:KeyInfo></md:KeyDescriptor>"
    )


def idp_metadata(
    *keys: str,
    entity_id: str = "https://idp.acme.test/metadata",
    sso: str = f'<md:SingleSignOnService Binding="{POST}" Location="https://idp.acme.test/sso/post"/>'
    f'<md:SingleSignOnService Binding="{REDIRECT}" Location="https://idp.acme.test/sso/redirect"/>',
    slo: str = f'<md:SingleLogoutService Binding="{REDIRECT}" Location="https://idp.acme.test/slo"/>',
    prolog: str = "",
) -> bytes:
    return (
        f'{prolog}<md:EntityDescriptor xmlns:md="{MD}" entityID="{entity_id}">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{''.join(keys)}{slo}"
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"
        f"{sso}</md:IDPSSODescriptor></md:EntityDescriptor>"
    ).encode()


def refused(xml: bytes) -> SsoRejected:
    with pytest.raises(SsoRejected) as caught:
        parse_idp_metadata(xml)
    assert caught.value.reason == Reason.METADATA_INVALID
    assert caught.value.detail.endswith(".")
    return caught.value


def test_reads_entity_id_redirect_endpoints_and_signing_certificate(idp_key: SigningKey) -> None:
    metadata = parse_idp_metadata(idp_metadata(key_descriptor(idp_key.cert_pem)))

    assert metadata.entity_id == "https://idp.acme.test/metadata"
    assert metadata.sso_url == "https://idp.acme.test/sso/redirect"  # the HTTP-Redirect one, not POST
    assert metadata.slo_url == "https://idp.acme.test/slo"
    assert metadata.certificates == (idp_key.cert_pem,)


def test_every_signing_certificate_is_kept_for_a_rollover(
    idp_key: SigningKey, next_idp_key: SigningKey
) -> None:
    metadata = parse_idp_metadata(
        idp_metadata(
            key_descriptor(idp_key.cert_pem),
            key_descriptor(next_idp_key.cert_pem, use=None),  # no `use`: signing and encryption
            key_descriptor(idp_key.cert_pem),  # repeated: kept once
        )
    )

    assert metadata.certificates == (idp_key.cert_pem, next_idp_key.cert_pem)


def test_an_encryption_only_certificate_is_not_trusted_for_signatures(
    idp_key: SigningKey, next_idp_key: SigningKey
) -> None:
    metadata = parse_idp_metadata(
        idp_metadata(
            key_descriptor(idp_key.cert_pem), key_descriptor(next_idp_key.cert_pem, use="encryption")
        )
    )

    assert metadata.certificates == (idp_key.cert_pem,)


def test_slo_is_optional(idp_key: SigningKey) -> None:
    assert parse_idp_metadata(idp_metadata(key_descriptor(idp_key.cert_pem), slo="")).slo_url is None


def test_an_entities_descriptor_with_one_identity_provider_is_read(idp_key: SigningKey) -> None:
    sp_entity = sp_metadata_xml(SP).split(b"?>", 1)[1]
    idp_entity = idp_metadata(key_descriptor(idp_key.cert_pem))
    bundle = (
        f'<md:EntitiesDescriptor xmlns:md="{MD}">'.encode()
        + sp_entity
        + idp_entity
        + b"</md:EntitiesDescriptor>"
    )

    assert parse_idp_metadata(bundle).entity_id == "https://idp.acme.test/metadata"

    two = (
        f'<md:EntitiesDescriptor xmlns:md="{MD}">'.encode()
        + idp_entity
        + idp_entity
        + b"</md:EntitiesDescriptor>"
    )
    assert "2 identity providers" in refused(two).detail


def test_loopback_http_is_allowed_for_a_local_identity_provider(idp_key: SigningKey) -> None:
    sso = f'<md:SingleSignOnService Binding="{REDIRECT}" Location="http://127.0.0.1:8080/sso"/>'
    assert parse_idp_metadata(idp_metadata(key_descriptor(idp_key.cert_pem), sso=sso)).sso_url == (
        "http://127.0.0.1:8080/sso"
    )


@pytest.mark.parametrize(
    ("location", "why"),
    [("http://idp.acme.test/sso", "not an https URL"), ("javascript:alert(1)", "not an https URL")],
)
def test_an_endpoint_that_is_not_https_is_refused(idp_key: SigningKey, location: str, why: str) -> None:
    sso = f'<md:SingleSignOnService Binding="{REDIRECT}" Location="{location}"/>'
    assert why in refused(idp_metadata(key_descriptor(idp_key.cert_pem), sso=sso)).detail


def test_without_a_redirect_sso_endpoint_it_is_refused(idp_key: SigningKey) -> None:
    sso = f'<md:SingleSignOnService Binding="{POST}" Location="https://idp.acme.test/sso/post"/>'
    assert "HTTP-Redirect" in refused(idp_metadata(key_descriptor(idp_key.cert_pem), sso=sso)).detail


def test_without_a_signing_certificate_it_is_refused(idp_key: SigningKey) -> None:
    assert "no signing certificate" in refused(idp_metadata()).detail
    assert (
        "no signing certificate"
        in refused(idp_metadata(key_descriptor(idp_key.cert_pem, "encryption"))).detail
    )


def test_a_certificate_that_does_not_parse_is_refused() -> None:
    broken = (
        '<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        "<ds:X509Data><ds:X509Certificate>bm90IGEgY2VydGlmaWNhdGU=</ds:X509Certificate></ds:X509Data>"
        "</ds:KeyInfo></md:KeyDescriptor>"
    )
    assert "not an X.509 certificate" in refused(idp_metadata(broken)).detail


def test_without_an_entity_id_it_is_refused(idp_key: SigningKey) -> None:
    assert "entityID" in refused(idp_metadata(key_descriptor(idp_key.cert_pem), entity_id="")).detail


def test_service_provider_metadata_is_not_identity_provider_metadata() -> None:
    assert "IDPSSODescriptor" in refused(sp_metadata_xml(SP)).detail


@pytest.mark.parametrize(
    "document",
    [b"", b"not xml at all", b"<md:EntityDescriptor", b"<html><body>Sign in</body></html>"],
)
def test_something_else_than_metadata_is_refused(document: bytes) -> None:
    refused(document)


def test_a_doctype_is_refused_before_any_entity_is_read(idp_key: SigningKey) -> None:
    prolog = (
        '<?xml version="1.0"?><!DOCTYPE md:EntityDescriptor [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>'
    )
    document = idp_metadata(key_descriptor(idp_key.cert_pem), entity_id="&xxe;", prolog=prolog)

    assert "DOCTYPE" in refused(document).detail


def test_oversized_metadata_is_refused(idp_key: SigningKey) -> None:
    padding = "<!-- " + "x" * (1024 * 1024) + " -->"
    assert "larger than" in refused(idp_metadata(key_descriptor(idp_key.cert_pem), slo=padding)).detail


# --- our metadata -------------------------------------------------------------------------------


def test_sp_metadata_describes_this_connection() -> None:
    root = etree.fromstring(sp_metadata_xml(SP))
    ns = {"md": MD}

    assert root.tag == f"{{{MD}}}EntityDescriptor"
    assert root.get("entityID") == SP.entity_id
    (descriptor,) = root.findall("md:SPSSODescriptor", ns)
    assert descriptor.get("AuthnRequestsSigned") == "false"
    assert descriptor.get("WantAssertionsSigned") == "true"
    assert descriptor.get("protocolSupportEnumeration") == "urn:oasis:names:tc:SAML:2.0:protocol"
    (acs,) = descriptor.findall("md:AssertionConsumerService", ns)
    assert (acs.get("Binding"), acs.get("Location"), acs.get("index")) == (POST, SP.acs_url, "0")
    (slo,) = descriptor.findall("md:SingleLogoutService", ns)
    assert (slo.get("Binding"), slo.get("Location")) == (REDIRECT, SP.slo_url)
    assert [f.text for f in descriptor.findall("md:NameIDFormat", ns)] == [
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    ]
    # saml-metadata 2.4.2/2.4.4: SingleLogoutService, then NameIDFormat, then AssertionConsumerService.
    assert [etree.QName(e).localname for e in descriptor] == [
        "SingleLogoutService",
        "NameIDFormat",
        "NameIDFormat",
        "AssertionConsumerService",
    ]


def test_sp_metadata_without_slo_offers_none() -> None:
    sp = ServiceProvider(entity_id=SP.entity_id, acs_url=SP.acs_url)
    root = etree.fromstring(sp_metadata_xml(sp))

    assert root.find(f"{{{MD}}}SPSSODescriptor/{{{MD}}}SingleLogoutService") is None
