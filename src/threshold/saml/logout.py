"""Single logout started by the identity provider (SAML profiles 4.4), by the HTTP-Redirect binding.

A LogoutRequest by HTTP-Redirect is not signed inside the XML: the signature covers the query string
(SAML bindings 3.4.4.1), i.e. the octets `SAMLRequest=value&RelayState=value&SigAlg=value` exactly as
URL-encoded in the request (RelayState only when present). It is verified with `cryptography` against
the pinned certificates of the identity provider's metadata; an unsigned request, or one signed with
SHA-1, is refused. The answer is an unsigned LogoutResponse, by HTTP-Redirect as well.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from threshold.saml._binding import deflate_encode, inflate_decode, redirect_url
from threshold.saml._xml import (
    SAML,
    SAMLP,
    STATUS_SUCCESS,
    child,
    children,
    format_instant,
    only_child,
    parse_instant,
    parse_untrusted,
    plain_text,
    serialize,
    tag,
)
from threshold.saml.errors import Reason, reject, shown
from threshold.saml.metadata import IdpMetadata, ServiceProvider
from threshold.saml.request import MAX_RELAY_STATE_BYTES, new_request_id

_XMLDSIG_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_SIG_ALGS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    _XMLDSIG_MORE + "rsa-sha256": ("rsa", hashes.SHA256),
    _XMLDSIG_MORE + "rsa-sha384": ("rsa", hashes.SHA384),
    _XMLDSIG_MORE + "rsa-sha512": ("rsa", hashes.SHA512),
    _XMLDSIG_MORE + "ecdsa-sha256": ("ec", hashes.SHA256),
    _XMLDSIG_MORE + "ecdsa-sha384": ("ec", hashes.SHA384),
    _XMLDSIG_MORE + "ecdsa-sha512": ("ec", hashes.SHA512),
}


MAX_AGE = 300.0
"""Seconds after its IssueInstant a LogoutRequest is accepted (its ID is remembered for longer)."""


@dataclass(frozen=True, slots=True)
class VerifiedLogoutRequest:
    """A logout request the identity provider signed, for this service, still current."""

    id: str
    issuer: str
    name_id: str
    session_indexes: tuple[str, ...]


def parse_logout_request(
    saml_request_b64_deflated: str,
    *,
    query_string: str,
    idp: IdpMetadata,
    sp: ServiceProvider,
    now: float,
    skew: float = 90.0,
) -> VerifiedLogoutRequest:
    """Verify an identity provider's LogoutRequest received at this service's SLO URL.

    Args:
        saml_request_b64_deflated: The `SAMLRequest` query parameter, URL-decoded.
        query_string: The raw query string of the request (still URL-encoded), whose signature is
            checked over the parameters exactly as they were sent.
        idp: The identity provider's metadata; its certificates are the only keys accepted.
        sp: This connection's service provider; `sp.slo_url` must be the request's Destination.
        now: The current time (seconds since the epoch).
        skew: Seconds of clock difference tolerated on NotOnOrAfter.

    Returns:
        The request's ID (for InResponseTo), issuer, NameID and SessionIndex values.

    Raises:
        SsoRejected: unsigned, badly signed, SHA-1, not for us, expired or malformed.
    """
    raw = _raw_parameters(query_string)
    if unquote_plus(raw.get("SAMLRequest", "")) != saml_request_b64_deflated:
        reject(Reason.MALFORMED, "The SAMLRequest given is not the one in the query string.")
    _verify_query_signature(raw, idp=idp, now=now)
    document = inflate_decode(saml_request_b64_deflated, what="logout request")
    request = parse_untrusted(document, what="logout request")
    if request.tag != tag(SAMLP, "LogoutRequest") or request.get("Version") != "2.0":
        reject(Reason.MALFORMED, "The message is not a SAML 2.0 LogoutRequest.")
    request_id = request.get("ID")
    if not request_id:
        reject(Reason.MALFORMED, "The logout request has no ID.")
    _check_destination(request.get("Destination"), sp=sp)
    issuer = plain_text(only_child(request, SAML, "Issuer", what="logout request"), what="Issuer")
    if issuer != idp.entity_id:
        reject(
            Reason.ISSUER_MISMATCH,
            f"The logout request was issued by {shown(issuer)}, not by {shown(idp.entity_id)}.",
        )
    issue_instant = request.get("IssueInstant")
    if issue_instant is None:
        reject(Reason.MALFORMED, "The logout request has no IssueInstant.")
    issued = parse_instant(issue_instant, what="IssueInstant")
    if issued > now + skew:
        reject(Reason.NOT_YET_VALID, "The logout request was issued in the future.")
    if now - issued > MAX_AGE + skew:  # a logout URL from a history or a log cannot be replayed later
        reject(Reason.EXPIRED, "The logout request is too old.")
    not_on_or_after = request.get("NotOnOrAfter")
    if not_on_or_after is not None and now - skew >= parse_instant(not_on_or_after, what="NotOnOrAfter"):
        reject(Reason.EXPIRED, "The logout request has expired.")
    if child(request, SAML, "EncryptedID") is not None:
        reject(
            Reason.ENCRYPTED_UNSUPPORTED, "The logout request's NameID is encrypted; this is not supported."
        )
    name_id = plain_text(only_child(request, SAML, "NameID", what="logout request"), what="NameID")
    sessions = tuple(
        plain_text(index, what="SessionIndex") for index in children(request, SAMLP, "SessionIndex")
    )
    return VerifiedLogoutRequest(id=request_id, issuer=issuer, name_id=name_id, session_indexes=sessions)


def _raw_parameters(query_string: str) -> dict[str, str]:
    """The query's parameters by name, values still URL-encoded; a repeated SAML parameter is refused."""
    raw: dict[str, str] = {}
    for part in query_string.lstrip("?").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if name in raw and name in ("SAMLRequest", "RelayState", "SigAlg", "Signature"):
            reject(Reason.MALFORMED, f"The query string repeats the {name} parameter.")
        raw[name] = value
    return raw


def _verify_query_signature(raw: dict[str, str], *, idp: IdpMetadata, now: float) -> None:
    """SAML bindings 3.4.4.1: the signature over `SAMLRequest=...&RelayState=...&SigAlg=...`."""
    if "Signature" not in raw or "SigAlg" not in raw:
        reject(
            Reason.NOT_SIGNED, "The logout request is not signed; only signed logout requests are accepted."
        )
    algorithm = unquote_plus(raw["SigAlg"])
    if algorithm not in _SIG_ALGS:
        reject(
            Reason.ALGORITHM_FORBIDDEN,
            f"The logout request is signed with {shown(algorithm)}; this service accepts RSA or ECDSA with "
            "SHA-256, SHA-384 or SHA-512 only (never SHA-1).",
        )
    kind, hash_type = _SIG_ALGS[algorithm]
    signed = f"SAMLRequest={raw['SAMLRequest']}"
    if "RelayState" in raw:
        signed += f"&RelayState={raw['RelayState']}"
    signed += f"&SigAlg={raw['SigAlg']}"
    if not signed.isascii():
        reject(Reason.MALFORMED, "The query string is not URL-encoded ASCII.")
    try:
        signature = base64.b64decode(unquote_plus(raw["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        reject(Reason.SIGNATURE_INVALID, "The logout request's Signature is not base64.")
    message = signed.encode("ascii")
    moment = datetime.fromtimestamp(now, UTC)
    outdated = False
    for pem in idp.certificates:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
        if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
            outdated = True
            continue
        key = certificate.public_key()
        try:
            if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, message, padding.PKCS1v15(), hash_type())
                return
            if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(_der_ecdsa(signature, key), message, ec.ECDSA(hash_type()))
                return
        except (InvalidSignature, ValueError):
            continue
    detail = " (a pinned certificate is outside its validity period)" if outdated else ""
    reject(
        Reason.SIGNATURE_INVALID,
        "The logout request's signature does not verify with any certificate in the identity provider's "
        f"metadata{detail}.",
    )


def _der_ecdsa(signature: bytes, key: ec.EllipticCurvePublicKey) -> bytes:
    """XML-DSig ECDSA signatures are r || s (RFC 4051); some senders use DER, which passes through."""
    size = (key.curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        return signature
    return encode_dss_signature(
        int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    )


def _check_destination(destination: str | None, *, sp: ServiceProvider) -> None:
    """SAML bindings 3.4.5.2: a signed message MUST name its Destination, which must be our SLO URL."""
    if sp.slo_url is None:
        reject(
            Reason.DESTINATION_MISMATCH, "This connection has no single-logout URL to receive requests at."
        )
    if destination != sp.slo_url:
        reject(
            Reason.DESTINATION_MISMATCH,
            f"The logout request is addressed to {shown(destination)}, not to this service's single-logout "
            f"URL {shown(sp.slo_url)}.",
        )


def logout_response_redirect_url(
    *, sp: ServiceProvider, idp: IdpMetadata, in_response_to: str, relay_state: str | None, now: float
) -> str:
    """The URL that sends the browser back to the identity provider with a Success LogoutResponse.

    Args:
        sp: This connection's service provider (the Issuer).
        idp: The identity provider's metadata; its `slo_url` is the Destination.
        in_response_to: The verified LogoutRequest's `id`.
        relay_state: The request's RelayState, returned unchanged (or None).
        now: The current time (seconds since the epoch), for IssueInstant.

    Raises:
        SsoRejected: `metadata_invalid` when the identity provider has no HTTP-Redirect SLO endpoint.
        ValueError: `relay_state` is longer than 80 bytes.
    """
    if idp.slo_url is None:
        reject(Reason.METADATA_INVALID, "The identity provider's metadata names no single-logout URL.")
    if relay_state is not None and len(relay_state.encode()) > MAX_RELAY_STATE_BYTES:
        raise ValueError("relay_state must not exceed 80 bytes (SAML bindings 3.4.3).")
    response = etree.Element(
        tag(SAMLP, "LogoutResponse"),
        nsmap={"samlp": SAMLP, "saml": SAML},
        ID=new_request_id(),
        Version="2.0",
        IssueInstant=format_instant(now),
        Destination=idp.slo_url,
        InResponseTo=in_response_to,
    )
    etree.SubElement(response, tag(SAML, "Issuer")).text = sp.entity_id
    status = etree.SubElement(response, tag(SAMLP, "Status"))
    etree.SubElement(status, tag(SAMLP, "StatusCode"), Value=STATUS_SUCCESS)
    parameters = [("SAMLResponse", deflate_encode(serialize(response)))]
    if relay_state:
        parameters.append(("RelayState", relay_state))
    return redirect_url(idp.slo_url, parameters)
