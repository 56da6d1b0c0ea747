"""SAML 2.0 metadata (saml-metadata-2.0-os): the identity provider's, read; ours, written.

From the IdP's EntityDescriptor we keep what the SP profile needs and nothing else: the entity id, the
HTTP-Redirect SingleSignOnService and SingleLogoutService locations, and every signing certificate
(KeyDescriptor use="signing", or without `use`), so a certificate rollover announced in metadata
verifies with either certificate. Those certificates are the only keys a response is ever checked with.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from threshold.saml._xml import (
    BINDING_POST,
    BINDING_REDIRECT,
    DS,
    MD,
    NAMEID_EMAIL,
    NAMEID_PERSISTENT,
    PROTOCOL,
    children,
    parse_untrusted,
    serialize,
    tag,
    text_of,
)
from threshold.saml.errors import Reason, reject

MAX_METADATA_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IdpMetadata:
    """What this service trusts about one identity provider, read from its metadata."""

    entity_id: str
    sso_url: str  # SingleSignOnService with the HTTP-Redirect binding
    slo_url: str | None  # SingleLogoutService with the HTTP-Redirect binding, if it has one
    certificates: tuple[str, ...]  # PEM; every signing certificate (several during a rollover)


@dataclass(frozen=True, slots=True)
class ServiceProvider:
    """This service as one connection's SP: `{issuer}/sso/saml/{connection_id}/metadata` and `.../acs`."""

    entity_id: str
    acs_url: str
    slo_url: str | None = None


def parse_idp_metadata(xml: bytes) -> IdpMetadata:
    """Read an identity provider's metadata document.

    Args:
        xml: An EntityDescriptor (or an EntitiesDescriptor holding exactly one IdP) as uploaded by
            the operator.

    Returns:
        The entity id, endpoints and pinned signing certificates.

    Raises:
        SsoRejected: `metadata_invalid`, with a sentence naming what is missing or wrong.
    """
    root = parse_untrusted(
        xml,
        what="metadata document",
        malformed=Reason.METADATA_INVALID,
        dtd=Reason.METADATA_INVALID,
        limit=MAX_METADATA_BYTES,
    )
    entity = _idp_entity(root)
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        _invalid("The EntityDescriptor has no entityID.")
    descriptor = _idp_descriptor(entity)
    sso_url = _endpoint(descriptor, "SingleSignOnService")
    if sso_url is None:
        _invalid("The identity provider offers no SingleSignOnService with the HTTP-Redirect binding.")
    certificates = _signing_certificates(descriptor)
    if not certificates:
        _invalid("The identity provider's metadata holds no signing certificate (KeyDescriptor).")
    return IdpMetadata(
        entity_id=entity_id,
        sso_url=sso_url,
        slo_url=_endpoint(descriptor, "SingleLogoutService"),
        certificates=certificates,
    )


def _invalid(message: str) -> NoReturn:
    reject(Reason.METADATA_INVALID, message)


def _idp_entity(root: etree._Element) -> etree._Element:
    if root.tag == tag(MD, "EntityDescriptor"):
        return root
    if root.tag == tag(MD, "EntitiesDescriptor"):
        idps = [
            entity
            for entity in root.iter(tag(MD, "EntityDescriptor"))
            if entity.find(tag(MD, "IDPSSODescriptor")) is not None
        ]
        if len(idps) == 1:
            return idps[0]
        reject(
            Reason.METADATA_INVALID,
            f"The EntitiesDescriptor describes {len(idps)} identity providers; upload the metadata of one.",
        )
    reject(Reason.METADATA_INVALID, "The document is not SAML 2.0 metadata (no md:EntityDescriptor).")


def _idp_descriptor(entity: etree._Element) -> etree._Element:
    descriptors = [
        descriptor
        for descriptor in children(entity, MD, "IDPSSODescriptor")
        if PROTOCOL in (descriptor.get("protocolSupportEnumeration") or "").split()
    ]
    if len(descriptors) != 1:
        reject(
            Reason.METADATA_INVALID,
            "The metadata must describe exactly one identity provider role (IDPSSODescriptor) "
            "supporting SAML 2.0.",
        )
    return descriptors[0]


def _endpoint(descriptor: etree._Element, kind: str) -> str | None:
    for endpoint in children(descriptor, MD, kind):
        if endpoint.get("Binding") == BINDING_REDIRECT:
            location = (endpoint.get("Location") or "").strip()
            _check_url(location, what=f"{kind} location")
            return location
    return None


def _check_url(url: str, *, what: str) -> None:
    """https, or http on loopback only (a local identity provider, the tests)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        reject(Reason.METADATA_INVALID, f"The {what} {url[:120]!r} is not a URL.")
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    reject(Reason.METADATA_INVALID, f"The {what} {url[:120]!r} is not an https URL.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _signing_certificates(descriptor: etree._Element) -> tuple[str, ...]:
    found: list[str] = []
    for key_descriptor in children(descriptor, MD, "KeyDescriptor"):
        if key_descriptor.get("use", "signing") != "signing":
            continue
        for element in key_descriptor.iterfind(
            f"{tag(DS, 'KeyInfo')}/{tag(DS, 'X509Data')}/{tag(DS, 'X509Certificate')}"
        ):
            pem = _pem(text_of(element))
            if pem not in found:
                found.append(pem)
    return tuple(found)


def _pem(base64_der: str) -> str:
    try:
        der = base64.b64decode("".join(base64_der.split()), validate=True)
        certificate = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        reject(Reason.METADATA_INVALID, "A KeyDescriptor holds something that is not an X.509 certificate.")
    return certificate.public_bytes(Encoding.PEM).decode("ascii")


def sp_metadata_xml(sp: ServiceProvider) -> bytes:
    """This service's SPSSODescriptor for one connection, to hand to the identity provider.

    AuthnRequests are not signed; assertions must be (WantAssertionsSigned). The ACS takes HTTP-POST;
    single logout, when offered, is HTTP-Redirect. Element order follows the metadata schema.
    """
    entity = etree.Element(tag(MD, "EntityDescriptor"), nsmap={"md": MD}, entityID=sp.entity_id)
    descriptor = etree.SubElement(
        entity,
        tag(MD, "SPSSODescriptor"),
        AuthnRequestsSigned="false",
        WantAssertionsSigned="true",
        protocolSupportEnumeration=PROTOCOL,
    )
    if sp.slo_url is not None:
        etree.SubElement(
            descriptor, tag(MD, "SingleLogoutService"), Binding=BINDING_REDIRECT, Location=sp.slo_url
        )
    for name_id_format in (NAMEID_EMAIL, NAMEID_PERSISTENT):
        etree.SubElement(descriptor, tag(MD, "NameIDFormat")).text = name_id_format
    etree.SubElement(
        descriptor,
        tag(MD, "AssertionConsumerService"),
        Binding=BINDING_POST,
        Location=sp.acs_url,
        index="0",
        isDefault="true",
    )
    return serialize(entity)
