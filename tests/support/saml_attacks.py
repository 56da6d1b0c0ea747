"""SAML responses minted in-process, and the attacks on a service provider built from them.

`mint_response` signs with signxml's `XMLSigner` and the identity provider's key, so tests get
legitimate and hostile variants quickly and deterministically. `attack_corpus` turns one legitimate
sign-in into every known way of forging one, each with the `reason` our verifier refuses it with; the
HTTP-level tests reuse it against the ACS endpoint.

The XML signature wrapping variants follow Somorovsky et al., "On Breaking SAML: Be Whoever You Want
to Be" (USENIX Security 2012), with SAML Raider's XSW1-XSW8 naming.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod
from signxml.signer import XMLSigner

from threshold.saml import IdpMetadata, ServiceProvider

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A throwaway key (RSA unless asked otherwise) and its self-signed certificate (PEM)."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert_pem: str


def make_signing_key(
    common_name: str,
    *,
    valid_from: float | None = None,
    days: int = 365,
    curve: ec.EllipticCurve | None = None,
) -> SigningKey:
    """A key and a certificate valid from a day before `valid_from` (default: now) for `days` days."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(curve)
        if curve
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = (
        dt.datetime.fromtimestamp(valid_from, dt.UTC) if valid_from is not None else dt.datetime.now(dt.UTC)
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(days=1))
        .not_valid_after(start + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return SigningKey(key=key, cert_pem=certificate.public_bytes(Encoding.PEM).decode("ascii"))


# --- legitimate responses -----------------------------------------------------------------------


DEFAULT_ATTRIBUTES: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("email", None, ("alice@acme.test",)),
    ("givenName", None, ("Alice",)),
    ("surname", None, ("Liddell",)),
    ("groups", None, ("engineering", "admins")),
)


@dataclass(frozen=True)
class ResponseSpec:
    """Every value of a Response and its Assertion; `legit_spec` fills in the right ones."""

    sp: ServiceProvider
    idp: IdpMetadata
    now: float
    issuer: str
    response_issuer: str | None
    destination: str | None
    in_response_to: str | None
    recipient: str
    audience: str
    name_id: str = "alice@acme.test"
    name_id_format: str = EMAIL_FORMAT
    session_index: str = "_session-1"
    authn_context_class: str = PASSWORD_PROTECTED
    attributes: tuple[tuple[str, str | None, tuple[str, ...]], ...] = DEFAULT_ATTRIBUTES
    status: str = SUCCESS
    issued_offset: float = 0.0  # IssueInstant = now + offset
    not_before_offset: float = -60.0  # Conditions NotBefore
    lifetime: float = 300.0  # Conditions and SubjectConfirmationData NotOnOrAfter = now + lifetime
    assertion_id: str = field(default_factory=lambda: "_a" + secrets.token_hex(16))
    response_id: str = field(default_factory=lambda: "_r" + secrets.token_hex(16))


def legit_spec(*, sp: ServiceProvider, idp: IdpMetadata, request_id: str | None, now: float) -> ResponseSpec:
    return ResponseSpec(
        sp=sp,
        idp=idp,
        now=now,
        issuer=idp.entity_id,
        response_issuer=idp.entity_id,
        destination=sp.acs_url,
        in_response_to=request_id,
        recipient=sp.acs_url,
        audience=sp.entity_id,
    )


def _instant(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(
    parent: etree._Element, namespace: str, local: str, text: str | None = None, **attrs: str
) -> etree._Element:
    element = etree.SubElement(parent, q(namespace, local), **attrs)
    if text is not None:
        element.text = text
    return element


def assertion_element(spec: ResponseSpec) -> etree._Element:
    """The unsigned Assertion of `spec`."""
    issued = _instant(spec.now + spec.issued_offset)
    until = _instant(spec.now + spec.lifetime)
    assertion = etree.Element(
        q(SAML, "Assertion"),
        nsmap={"saml": SAML},
        ID=spec.assertion_id,
        Version="2.0",
        IssueInstant=issued,
    )
    _sub(assertion, SAML, "Issuer", spec.issuer)
    subject = _sub(assertion, SAML, "Subject")
    _sub(subject, SAML, "NameID", spec.name_id, Format=spec.name_id_format)
    confirmation = _sub(subject, SAML, "SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
    data_attrs = {"Recipient": spec.recipient, "NotOnOrAfter": until}
    if spec.in_response_to is not None:
        data_attrs["InResponseTo"] = spec.in_response_to
    _sub(confirmation, SAML, "SubjectConfirmationData", **data_attrs)
    conditions = _sub(
        assertion,
        SAML,
        "Conditions",
        NotBefore=_instant(spec.now + spec.not_before_offset),
        NotOnOrAfter=until,
    )
    _sub(_sub(conditions, SAML, "AudienceRestriction"), SAML, "Audience", spec.audience)
    statement = _sub(assertion, SAML, "AuthnStatement", AuthnInstant=issued, SessionIndex=spec.session_index)
    _sub(_sub(statement, SAML, "AuthnContext"), SAML, "AuthnContextClassRef", spec.authn_context_class)
    if spec.attributes:
        attributes = _sub(assertion, SAML, "AttributeStatement")
        for name, friendly, values in spec.attributes:
            attrs = {"Name": name, "NameFormat": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}
            if friendly is not None:
                attrs["FriendlyName"] = friendly
            attribute = _sub(attributes, SAML, "Attribute", **attrs)
            for value in values:
                _sub(attribute, SAML, "AttributeValue", value)
    return assertion


def response_element(spec: ResponseSpec, *assertions: etree._Element) -> etree._Element:
    """A Response of `spec` holding `assertions` (copied), as they are."""
    attrs = {
        "ID": spec.response_id,
        "Version": "2.0",
        "IssueInstant": _instant(spec.now + spec.issued_offset),
    }
    if spec.destination is not None:
        attrs["Destination"] = spec.destination
    if spec.in_response_to is not None:
        attrs["InResponseTo"] = spec.in_response_to
    response = etree.Element(q(SAMLP, "Response"), nsmap={"samlp": SAMLP, "saml": SAML}, **attrs)
    if spec.response_issuer is not None:
        _sub(response, SAML, "Issuer", spec.response_issuer)
    status = _sub(response, SAMLP, "Status")
    _sub(status, SAMLP, "StatusCode", Value=spec.status)
    for assertion in assertions:
        response.append(copy.deepcopy(assertion))
    return response


class _LegacySigner(XMLSigner):
    """XMLSigner that also signs with SHA-1, which signxml rightly refuses by default (attacks only)."""

    def check_deprecated_methods(self) -> None:
        return None


def sign(
    element: etree._Element,
    key: SigningKey,
    *,
    signature_algorithm: str = "rsa-sha256",
    digest_algorithm: str = "sha256",
    cert_pem: str | None = None,
    with_certificate: bool = True,
) -> etree._Element:
    """A signed copy of `element`: enveloped, exclusive c14n, the Signature right after the Issuer.

    KeyInfo carries `cert_pem` (default: the key's own certificate), or only a KeyValue when
    `with_certificate` is false.
    """
    element = copy.deepcopy(element)
    placeholder = etree.Element(q(DS, "Signature"), nsmap={"ds": DS}, Id="placeholder")
    issuer = element.find(q(SAML, "Issuer"))
    element.insert(element.index(issuer) + 1 if issuer is not None else 0, placeholder)
    signer_class = XMLSigner if "sha1" not in signature_algorithm + digest_algorithm else _LegacySigner
    signer = signer_class(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
        c14n_algorithm=EXC_C14N,
    )
    signed: etree._Element = signer.sign(
        element,
        key=key.key,
        cert=(cert_pem or key.cert_pem) if with_certificate else None,
        reference_uri="#" + str(element.get("ID")),
        id_attribute="ID",
    )
    return signed


def encode(response: etree._Element) -> str:
    return base64.b64encode(etree.tostring(response, xml_declaration=True, encoding="UTF-8")).decode("ascii")


def signed_assertion(spec: ResponseSpec, key: SigningKey) -> etree._Element:
    return sign(assertion_element(spec), key)


def mint_response(
    spec: ResponseSpec, key: SigningKey, *, sign_assertion: bool = True, sign_response: bool = False
) -> str:
    """The base64 SAMLResponse of `spec`, signed by `key` as asked."""
    assertion = assertion_element(spec)
    if sign_assertion:
        assertion = sign(assertion, key)
    response = response_element(spec, assertion)
    if sign_response:
        response = sign(response, key)
    return encode(response)


# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    name: str
    reason: str  # the threshold.saml.Reason value our verifier refuses it with
    response_b64: str


EVIL_NAME_ID = "admin@acme.test"


def _evil(assertion: etree._Element, *, new_id: bool = True) -> etree._Element:
    """An unsigned copy of `assertion` naming the attacker's victim (and, by default, with its own ID)."""
    evil = copy.deepcopy(assertion)
    for signature in evil.findall(q(DS, "Signature")):
        evil.remove(signature)
    name_id = evil.find(f"{q(SAML, 'Subject')}/{q(SAML, 'NameID')}")
    name_id.text = EVIL_NAME_ID
    if new_id:
        evil.set("ID", "_evil" + secrets.token_hex(8))
    return evil


def _evil_keeping_signature(assertion: etree._Element) -> etree._Element:
    """`assertion` with the victim's NameID and its (now stale) signature kept in place."""
    evil = copy.deepcopy(assertion)
    evil.find(f"{q(SAML, 'Subject')}/{q(SAML, 'NameID')}").text = EVIL_NAME_ID
    return evil


def _strip_signature(element: etree._Element) -> etree._Element:
    stripped = copy.deepcopy(element)
    for signature in stripped.findall(q(DS, "Signature")):
        stripped.remove(signature)
    return stripped


def comment_injected_assertion(spec: ResponseSpec, key: SigningKey) -> etree._Element:
    """An assertion validly signed over the NameID `admin@acme.test<!---->.evil.test`."""
    assertion = assertion_element(replace(spec, name_id="admin@acme.test"))
    name_id = assertion.find(f"{q(SAML, 'Subject')}/{q(SAML, 'NameID')}")
    comment = etree.Comment("")
    comment.tail = ".evil.test"
    name_id.append(comment)
    return sign(assertion, key)


def _with_doctype(
    spec: ResponseSpec, key: SigningKey, doctype: str, entity: str, encoding: str = "utf-8"
) -> str:
    body = etree.tostring(response_element(spec, signed_assertion(spec, key))).decode()
    body = body.replace(f">{spec.name_id}<", f">&{entity};<", 1)
    document = f'<?xml version="1.0" encoding="{encoding}"?>\n{doctype}\n{body}'
    return base64.b64encode(document.encode(encoding)).decode("ascii")


BILLION_LAUGHS = (
    '<!DOCTYPE samlp:Response [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]>"
)
EXTERNAL_ENTITY = '<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def _encrypted_assertion_response(spec: ResponseSpec) -> str:
    response = response_element(spec)
    encrypted = _sub(response, SAML, "EncryptedAssertion")
    data = etree.SubElement(encrypted, q(XENC, "EncryptedData"), nsmap={"xenc": XENC})
    cipher = etree.SubElement(data, q(XENC, "CipherData"))
    etree.SubElement(cipher, q(XENC, "CipherValue")).text = base64.b64encode(secrets.token_bytes(64)).decode()
    return encode(response)


@dataclass(frozen=True)
class _Sources:
    """What every attack starts from: one legitimate sign-in, the IdP's key and an attacker's."""

    spec: ResponseSpec
    key: SigningKey
    attacker: SigningKey
    signed: etree._Element  # the legitimately signed assertion
    signed_response: etree._Element  # a Response holding it, signed as well

    def variant(self, **changes: Any) -> str:
        """A properly signed response with `changes` to the legitimate values."""
        return mint_response(replace(self.spec, **changes), self.key)


_BUILDERS: list[tuple[str, str, Callable[[_Sources], str]]] = []


def _attack(name: str, reason: str) -> Callable[[Callable[[_Sources], str]], Callable[[_Sources], str]]:
    def register(build: Callable[[_Sources], str]) -> Callable[[_Sources], str]:
        _BUILDERS.append((name, reason, build))
        return build

    return register


# XSW1/XSW2: a new Response around an evil assertion; the signed original Response is moved into
# (XSW1) or next to (XSW2) the copied signature, where a careless verifier still finds it.
@_attack("xsw1_response_clone_in_signature", "multiple_assertions")
def _xsw1(s: _Sources) -> str:
    evil_response = _strip_signature(s.signed_response)
    evil_response.set("ID", "_evil" + secrets.token_hex(8))
    evil_response.replace(evil_response.find(q(SAML, "Assertion")), _evil(s.signed))
    signature = copy.deepcopy(s.signed_response.find(q(DS, "Signature")))
    signature.append(copy.deepcopy(s.signed_response))
    evil_response.insert(1, signature)
    return encode(evil_response)


@_attack("xsw2_response_clone_before_signature", "multiple_assertions")
def _xsw2(s: _Sources) -> str:
    evil_response = _strip_signature(s.signed_response)
    evil_response.set("ID", "_evil" + secrets.token_hex(8))
    evil_response.replace(evil_response.find(q(SAML, "Assertion")), _evil(s.signed))
    evil_response.insert(1, copy.deepcopy(s.signed_response))
    evil_response.insert(2, copy.deepcopy(s.signed_response.find(q(DS, "Signature"))))
    return encode(evil_response)


# XSW3: an unsigned evil assertion before the signed one.
@_attack("xsw3_evil_assertion_before_signed", "multiple_assertions")
def _xsw3(s: _Sources) -> str:
    return encode(response_element(s.spec, _evil(s.signed), s.signed))


# XSW4: the signed assertion moved inside an unsigned evil one.
@_attack("xsw4_signed_assertion_inside_evil", "multiple_assertions")
def _xsw4(s: _Sources) -> str:
    evil = _evil(s.signed)
    evil.append(copy.deepcopy(s.signed))
    return encode(response_element(s.spec, evil))


# XSW5: the signed assertion changed in place (signature kept), an unsigned copy of the original
# appended at the end of the Response.
@_attack("xsw5_modified_signed_plus_original_copy", "multiple_assertions")
def _xsw5(s: _Sources) -> str:
    return encode(response_element(s.spec, _evil_keeping_signature(s.signed), _strip_signature(s.signed)))


# XSW6: as XSW5, with the original copy hidden inside the modified assertion's Signature.
@_attack("xsw6_original_copy_inside_signature", "multiple_assertions")
def _xsw6(s: _Sources) -> str:
    evil = _evil_keeping_signature(s.signed)
    evil.find(q(DS, "Signature")).append(_strip_signature(s.signed))
    return encode(response_element(s.spec, evil))


# XSW7: the signed assertion tucked into an Extensions block, an evil one in its place.
@_attack("xsw7_signed_assertion_in_extensions", "multiple_assertions")
def _xsw7(s: _Sources) -> str:
    response = response_element(s.spec, _evil(s.signed))
    extensions = etree.Element(q(SAMLP, "Extensions"))
    extensions.append(copy.deepcopy(s.signed))
    response.insert(1, extensions)
    return encode(response)


# XSW8: the original (signature removed) inside a ds:Object of the modified assertion's Signature.
@_attack("xsw8_original_in_signature_object", "multiple_assertions")
def _xsw8(s: _Sources) -> str:
    evil = _evil_keeping_signature(s.signed)
    holder = etree.SubElement(evil.find(q(DS, "Signature")), q(DS, "Object"))
    holder.append(_strip_signature(s.signed))
    return encode(response_element(s.spec, evil))


# A single assertion, so counting does not help: the signature must cover this very assertion.
@_attack("signature_for_another_id", "signature_invalid")
def _other_id(s: _Sources) -> str:
    evil = _evil(s.signed)
    evil.insert(1, copy.deepcopy(s.signed.find(q(DS, "Signature"))))
    return encode(response_element(s.spec, evil))


@_attack("modified_after_signing", "signature_invalid")
def _modified(s: _Sources) -> str:
    return encode(response_element(s.spec, _evil_keeping_signature(s.signed)))


# Comment injection (Duo Labs, CVE-2017-11427 and siblings): validly signed over
# "admin@acme.test<!---->.evil.test"; a reader that stops at the comment sees admin@acme.test.
@_attack("comment_in_name_id", "malformed")
def _comment(s: _Sources) -> str:
    return encode(response_element(s.spec, comment_injected_assertion(s.spec, s.key)))


@_attack("second_unsigned_assertion", "multiple_assertions")
def _second(s: _Sources) -> str:
    return encode(response_element(s.spec, s.signed, _evil(s.signed)))


@_attack("signed_by_another_key_claiming_idp_certificate", "signature_invalid")
def _other_key(s: _Sources) -> str:
    return encode(
        response_element(s.spec, sign(assertion_element(s.spec), s.attacker, cert_pem=s.key.cert_pem))
    )


@_attack("attacker_certificate_in_keyinfo", "signature_invalid")
def _attacker_cert(s: _Sources) -> str:
    return encode(response_element(s.spec, sign(assertion_element(s.spec), s.attacker)))


@_attack("attacker_key_value_in_keyinfo", "signature_invalid")
def _attacker_key_value(s: _Sources) -> str:
    return encode(
        response_element(s.spec, sign(assertion_element(s.spec), s.attacker, with_certificate=False))
    )


@_attack("sha1_signature", "algorithm_forbidden")
def _sha1_signature(s: _Sources) -> str:
    return encode(
        response_element(s.spec, sign(assertion_element(s.spec), s.key, signature_algorithm="rsa-sha1"))
    )


@_attack("sha1_digest", "algorithm_forbidden")
def _sha1_digest(s: _Sources) -> str:
    return encode(response_element(s.spec, sign(assertion_element(s.spec), s.key, digest_algorithm="sha1")))


@_attack("dtd_billion_laughs", "dtd_forbidden")
def _laughs(s: _Sources) -> str:
    return _with_doctype(s.spec, s.key, BILLION_LAUGHS, "lol9")


@_attack("dtd_external_entity", "dtd_forbidden")
def _xxe(s: _Sources) -> str:
    return _with_doctype(s.spec, s.key, EXTERNAL_ENTITY, "xxe")


@_attack("dtd_external_entity_utf16", "dtd_forbidden")
def _xxe_utf16(s: _Sources) -> str:
    return _with_doctype(s.spec, s.key, EXTERNAL_ENTITY, "xxe", encoding="utf-16")


@_attack("expired", "expired")
def _expired(s: _Sources) -> str:
    return s.variant(issued_offset=-900.0, not_before_offset=-900.0, lifetime=-600.0)


@_attack("not_yet_valid", "not_yet_valid")
def _not_yet_valid(s: _Sources) -> str:
    return s.variant(not_before_offset=600.0)


@_attack("wrong_audience", "audience_mismatch")
def _audience(s: _Sources) -> str:
    return s.variant(audience="https://other-sp.evil.test/metadata")


@_attack("wrong_recipient", "recipient_mismatch")
def _recipient(s: _Sources) -> str:
    return s.variant(recipient="https://other-sp.evil.test/acs")


@_attack("wrong_destination", "destination_mismatch")
def _destination(s: _Sources) -> str:
    return s.variant(destination="https://other-sp.evil.test/acs")


@_attack("wrong_in_response_to", "in_response_to_mismatch")
def _in_response_to(s: _Sources) -> str:
    return s.variant(in_response_to="_" + secrets.token_hex(20))


@_attack("unsolicited_when_a_request_was_sent", "unsolicited")
def _unsolicited(s: _Sources) -> str:
    return s.variant(in_response_to=None)


@_attack("signed_response_unsigned_assertion", "not_signed")
def _response_only(s: _Sources) -> str:
    return mint_response(s.spec, s.key, sign_assertion=False, sign_response=True)


@_attack("unsigned", "not_signed")
def _unsigned(s: _Sources) -> str:
    return mint_response(s.spec, s.key, sign_assertion=False)


@_attack("encrypted_assertion", "encrypted_unsupported")
def _encrypted(s: _Sources) -> str:
    return _encrypted_assertion_response(s.spec)


@_attack("wrong_issuer", "issuer_mismatch")
def _issuer(s: _Sources) -> str:
    return s.variant(issuer="https://idp.evil.test", response_issuer="https://idp.evil.test")


@_attack("status_not_success", "status_not_success")
def _status(s: _Sources) -> str:
    failed = replace(s.spec, status="urn:oasis:names:tc:SAML:2.0:status:Responder")
    return encode(sign(response_element(failed), s.key))


@_attack("not_base64", "malformed")
def _not_base64(s: _Sources) -> str:
    return "this is %% not base64!"


@_attack("not_xml", "malformed")
def _not_xml(s: _Sources) -> str:
    return base64.b64encode(b"<samlp:Response unclosed").decode()


@_attack("oversized", "malformed")
def _oversized(s: _Sources) -> str:
    return base64.b64encode(b"<x>" + b"A" * (257 * 1024) + b"</x>").decode()


ATTACKS: tuple[tuple[str, str], ...] = tuple((name, reason) for name, reason, _ in _BUILDERS)
"""Every attack's (name, expected reason), known without building any (for test parametrization)."""


def attack_corpus(
    *,
    idp_key: rsa.RSAPrivateKey,
    idp_cert_pem: str,
    sp: ServiceProvider,
    idp: IdpMetadata,
    request_id: str,
    now: float,
) -> list[Attack]:
    """Every forged or unacceptable response to the sign-in `request_id`, with the expected reason.

    `idp_cert_pem` must be one of `idp.certificates`. Responses not meant to fail on their signature
    are properly signed with `idp_key`, so each attack isolates one rule. Verify them with the same
    `sp`, `idp`, `expected_request_id=request_id` and `now`.
    """
    key = SigningKey(key=idp_key, cert_pem=idp_cert_pem)
    spec = legit_spec(sp=sp, idp=idp, request_id=request_id, now=now)
    signed = signed_assertion(spec, key)
    sources = _Sources(
        spec=spec,
        key=key,
        attacker=make_signing_key("attacker.evil.test"),
        signed=signed,
        signed_response=sign(response_element(spec, signed), key),
    )
    return [
        Attack(name=name, reason=reason, response_b64=build(sources)) for name, reason, build in _BUILDERS
    ]
