"""The Response to an AuthnRequest, by the HTTP-POST binding (SAML core 3.2.2 and 2.3.3; profiles
4.1.4: Web Browser SSO), verified before anything in it is believed.

The rules, in the order they are applied:
- the document is small, base64, XML without a DOCTYPE, a samlp:Response with Status Success;
- it holds exactly one saml:Assertion anywhere and no EncryptedAssertion, so no wrapping attack
  (XSW) can put a second, unsigned assertion where a careless reader would look;
- if the Response is signed, its signature verifies too, and its Destination is then required;
- the Assertion itself is signed (a signed Response alone is not enough), with a pinned certificate,
  an allowed algorithm, and a Reference to its own ID;
- every claim is read from the element signxml returned as signed, never from the posted tree;
- Issuer, bearer SubjectConfirmation (Recipient, NotOnOrAfter, InResponseTo), Conditions (validity
  window, AudienceRestriction) and the AuthnStatement are checked with a small clock skew.

Replay is the caller's: it keeps `assertion_id` until `not_on_or_after` and refuses a second use.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from lxml import etree

from threshold.core.sso.errors import SsoRejected
from threshold.saml._binding import decode_base64
from threshold.saml._signature import signature_of, verify_signed_element
from threshold.saml._xml import (
    CM_BEARER,
    SAML,
    SAMLP,
    STATUS_SUCCESS,
    child,
    children,
    only_child,
    parse_instant,
    parse_untrusted,
    plain_text,
    tag,
    text_of,
)
from threshold.saml.errors import Reason, reject, shown
from threshold.saml.metadata import IdpMetadata, ServiceProvider


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """What a correctly signed, current assertion addressed to this service says."""

    assertion_id: str
    issuer: str
    name_id: str
    name_id_format: str | None
    session_index: str | None
    attributes: dict[str, tuple[str, ...]]  # by Name, and by FriendlyName too when it has one
    authn_context_class: str | None
    authn_instant: float | None
    not_on_or_after: float  # keep assertion_id in the replay cache until then
    in_response_to: str | None


def verify_response(
    saml_response_b64: str,
    *,
    sp: ServiceProvider,
    idp: IdpMetadata,
    expected_request_id: str | None,
    now: float,
    skew: float = 90.0,
) -> VerifiedAssertion:
    """Verify a SAMLResponse posted to the ACS and return what its signed assertion proves.

    Args:
        saml_response_b64: The `SAMLResponse` form value, as posted.
        sp: This connection's service provider (entity id = audience, ACS = destination and recipient).
        idp: The identity provider's metadata; its certificates are the only keys accepted.
        expected_request_id: The ID of the AuthnRequest this sign-in sent, or None when the identity
            provider started the sign-in (then the response must not claim to answer a request;
            whether to accept such a sign-in at all is the caller's decision).
        now: The current time (seconds since the epoch).
        skew: Seconds of clock difference tolerated on every time bound.

    Returns:
        The verified assertion.

    Raises:
        SsoRejected: with a `Reason` and a sentence the identity provider's administrator can act on.
    """
    document = decode_base64(saml_response_b64, what="SAML response")
    root = parse_untrusted(document, what="SAML response")
    if root.tag != tag(SAMLP, "Response"):
        reject(Reason.MALFORMED, "The message posted is not a SAML 2.0 Response.")
    _check_status(root)
    assertion = _the_assertion(root)
    response = _verified_response(root, idp=idp, now=now)
    _check_destination(response, sp=sp, signed=response is not root)
    _check_response_issuer(response, idp=idp)
    _check_in_response_to(response.get("InResponseTo"), expected_request_id, what="response", required=False)
    _refuse_comments(assertion)
    signed = verify_signed_element(assertion, certificates=idp.certificates, now=now, what="assertion")
    return _read_assertion(
        signed, sp=sp, idp=idp, expected_request_id=expected_request_id, now=now, skew=skew
    )


# --- the Response ------------------------------------------------------------------------------


def _check_status(response: etree._Element) -> None:
    """SAML core 3.2.2.2: only a top-level StatusCode of Success carries an answer."""
    status = child(response, SAMLP, "Status")
    code = child(status, SAMLP, "StatusCode") if status is not None else None
    value = code.get("Value") if code is not None else None
    if value is None:
        reject(Reason.MALFORMED, "The SAML response has no Status.")
    if value == STATUS_SUCCESS:
        return
    assert code is not None and status is not None
    detail = value
    second = child(code, SAMLP, "StatusCode")
    if second is not None and second.get("Value"):
        detail += f" / {second.get('Value')}"
    # Its StatusMessage is not shown: nothing in the response is signed at this point.
    reject(Reason.STATUS_NOT_SUCCESS, f"The identity provider did not sign the person in (status {detail}).")


def _the_assertion(response: etree._Element) -> etree._Element:
    """Exactly one Assertion in the whole document, where SAML puts it: a child of the Response."""
    if next(response.iter(tag(SAML, "EncryptedAssertion")), None) is not None:
        reject(
            Reason.ENCRYPTED_UNSUPPORTED,
            "The identity provider encrypted the assertion; this service does not accept encrypted "
            "assertions. Turn assertion encryption off for this application at the identity provider "
            "(the assertion is signed and travels over HTTPS).",
        )
    assertions = list(response.iter(tag(SAML, "Assertion")))
    if len(assertions) > 1:
        reject(
            Reason.MULTIPLE_ASSERTIONS,
            f"The SAML response contains {len(assertions)} assertions; exactly one is accepted.",
        )
    if not assertions:
        reject(Reason.MALFORMED, "The SAML response contains no assertion.")
    if assertions[0].getparent() is not response:
        reject(Reason.MALFORMED, "The assertion is not a direct child of the SAML Response.")
    return assertions[0]


def _verified_response(root: etree._Element, *, idp: IdpMetadata, now: float) -> etree._Element:
    """The Response as signed, when it is signed (its signature must then verify); else as posted."""
    if signature_of(root) is None:
        return root
    return verify_signed_element(root, certificates=idp.certificates, now=now, what="response")


def _check_destination(response: etree._Element, *, sp: ServiceProvider, signed: bool) -> None:
    """SAML bindings 3.5.5.2: a signed message by HTTP-POST MUST name its Destination, which must be us."""
    destination = response.get("Destination")
    if destination is None:
        if signed:
            reject(
                Reason.DESTINATION_MISMATCH,
                "The signed SAML response does not name its Destination, which SAML requires.",
            )
        return
    if destination != sp.acs_url:
        reject(
            Reason.DESTINATION_MISMATCH,
            f"The SAML response is addressed to {shown(destination)}, not to this service's ACS URL "
            f"{shown(sp.acs_url)}. Check the ACS URL configured at the identity provider.",
        )


def _check_response_issuer(response: etree._Element, *, idp: IdpMetadata) -> None:
    issuer = child(response, SAML, "Issuer")
    if issuer is None:
        return  # optional on the Response (SAML profiles 4.1.4.2); required on the assertion
    _check_issuer(plain_text(issuer, what="response's Issuer"), idp=idp, what="response")


def _check_issuer(issuer: str, *, idp: IdpMetadata, what: str) -> None:
    if issuer != idp.entity_id:
        reject(
            Reason.ISSUER_MISMATCH,
            f"The {what} was issued by {shown(issuer)}, not by this connection's identity provider "
            f"{shown(idp.entity_id)}.",
        )


def _check_in_response_to(value: str | None, expected: str | None, *, what: str, required: bool) -> None:
    """SAML profiles 4.1.4.2: InResponseTo must be the AuthnRequest's ID; IdP-initiated has none."""
    if expected is None:
        if value is not None:
            reject(
                Reason.IN_RESPONSE_TO_MISMATCH,
                f"The {what} answers a request ({shown(value)}) this sign-in did not send.",
            )
        return
    if value is None:
        if required:
            reject(
                Reason.UNSOLICITED,
                f"The {what} does not answer this service's sign-in request (it has no InResponseTo): "
                "it was started at the identity provider, and a request from here was pending.",
            )
        return
    if not secrets.compare_digest(value.encode(), expected.encode()):
        reject(
            Reason.IN_RESPONSE_TO_MISMATCH,
            f"The {what} answers another sign-in request ({shown(value)}), not the one this browser started.",
        )


def _refuse_comments(assertion: etree._Element) -> None:
    """No comment or processing instruction inside the assertion, in the tree as posted.

    Canonicalization drops comments before the digest, so `admin@acme.test<!---->.evil.test` verifies
    as signed; a reader stopping at the comment would see `admin@acme.test`. Identity providers never
    put comments in assertions, so one is refused rather than read around.
    """
    for node in assertion.iter(etree.Comment, etree.ProcessingInstruction):
        parent = node.getparent()
        where = etree.QName(parent).localname if parent is not None else "the assertion"
        reject(
            Reason.MALFORMED,
            f"The assertion contains an XML comment or processing instruction (in {where}); identity "
            "providers never send one, and it is how a signed NameID is made to read differently.",
        )


# --- the signed Assertion ----------------------------------------------------------------------


def _read_assertion(
    signed: etree._Element,
    *,
    sp: ServiceProvider,
    idp: IdpMetadata,
    expected_request_id: str | None,
    now: float,
    skew: float,
) -> VerifiedAssertion:
    if signed.get("Version") != "2.0":
        reject(Reason.MALFORMED, "The assertion is not a SAML 2.0 assertion.")
    issuer = plain_text(only_child(signed, SAML, "Issuer", what="assertion"), what="assertion's Issuer")
    _check_issuer(issuer, idp=idp, what="assertion")
    issued = parse_instant(signed.get("IssueInstant"), what="assertion's IssueInstant")
    if issued > now + skew:
        reject(
            Reason.NOT_YET_VALID,
            "The assertion was issued in the future; check the identity provider's clock.",
        )

    subject = only_child(signed, SAML, "Subject", what="assertion")
    name_id = _name_id(subject)
    confirmed_until, in_response_to = _bearer_confirmation(
        subject, sp=sp, expected_request_id=expected_request_id, now=now, skew=skew
    )
    valid_until = _check_conditions(signed, sp=sp, now=now, skew=skew)
    session_index, context_class, authn_instant = _authn_statement(signed, now=now, skew=skew)
    return VerifiedAssertion(
        assertion_id=str(signed.get("ID")),
        issuer=issuer,
        name_id=plain_text(name_id, what="NameID"),
        name_id_format=name_id.get("Format"),
        session_index=session_index,
        attributes=_attributes(signed),
        authn_context_class=context_class,
        authn_instant=authn_instant,
        not_on_or_after=min(confirmed_until, valid_until),
        in_response_to=in_response_to,
    )


def _name_id(subject: etree._Element) -> etree._Element:
    if child(subject, SAML, "EncryptedID") is not None:
        reject(
            Reason.ENCRYPTED_UNSUPPORTED,
            "The identity provider encrypted the NameID; this service does not accept encrypted NameIDs.",
        )
    return only_child(subject, SAML, "NameID", what="assertion's Subject")


def _bearer_confirmation(
    subject: etree._Element,
    *,
    sp: ServiceProvider,
    expected_request_id: str | None,
    now: float,
    skew: float,
) -> tuple[float, str | None]:
    """SAML profiles 4.1.4.2: at least one bearer SubjectConfirmation must hold entirely."""
    bearers = [
        confirmation
        for confirmation in children(subject, SAML, "SubjectConfirmation")
        if confirmation.get("Method") == CM_BEARER
    ]
    if not bearers:
        reject(Reason.MALFORMED, "The assertion has no bearer SubjectConfirmation.")
    first_refusal: SsoRejected | None = None
    for confirmation in bearers:
        try:
            return _check_confirmation(
                confirmation, sp=sp, expected_request_id=expected_request_id, now=now, skew=skew
            )
        except SsoRejected as refusal:
            first_refusal = first_refusal or refusal
    assert first_refusal is not None
    raise first_refusal


def _check_confirmation(
    confirmation: etree._Element,
    *,
    sp: ServiceProvider,
    expected_request_id: str | None,
    now: float,
    skew: float,
) -> tuple[float, str | None]:
    data = child(confirmation, SAML, "SubjectConfirmationData")
    if data is None:
        reject(Reason.MALFORMED, "The bearer SubjectConfirmation has no SubjectConfirmationData.")
    recipient = data.get("Recipient")
    if recipient != sp.acs_url:
        reject(
            Reason.RECIPIENT_MISMATCH,
            f"The assertion is meant for the recipient {shown(recipient)}, not for this service's ACS URL "
            f"{shown(sp.acs_url)}.",
        )
    not_on_or_after = parse_instant(data.get("NotOnOrAfter"), what="SubjectConfirmationData NotOnOrAfter")
    _check_window(data.get("NotBefore"), not_on_or_after, now=now, skew=skew, what="subject confirmation")
    in_response_to = data.get("InResponseTo")
    _check_in_response_to(in_response_to, expected_request_id, what="assertion", required=True)
    return not_on_or_after, in_response_to


def _check_window(
    not_before: str | None, not_on_or_after: float | None, *, now: float, skew: float, what: str
) -> None:
    if not_before is not None and now + skew < parse_instant(not_before, what=f"{what} NotBefore"):
        reject(
            Reason.NOT_YET_VALID,
            f"The assertion's {what} has not begun yet; check the clocks of the identity provider and "
            "of this service.",
        )
    if not_on_or_after is not None and now - skew >= not_on_or_after:
        reject(Reason.EXPIRED, f"The assertion's {what} has expired; sign in again.")


_ACCEPTED_CONDITIONS = frozenset(
    {tag(SAML, "AudienceRestriction"), tag(SAML, "OneTimeUse"), tag(SAML, "ProxyRestriction")}
)


def _check_conditions(signed: etree._Element, *, sp: ServiceProvider, now: float, skew: float) -> float:
    """SAML core 2.5.1: the validity window, every AudienceRestriction naming us, no unknown condition."""
    conditions = only_child(signed, SAML, "Conditions", what="assertion")
    not_on_or_after = conditions.get("NotOnOrAfter")
    until = parse_instant(not_on_or_after, what="Conditions NotOnOrAfter") if not_on_or_after else math.inf
    _check_window(conditions.get("NotBefore"), until, now=now, skew=skew, what="validity period")
    restrictions = 0
    for condition in conditions.iterchildren(tag=etree.Element):
        if condition.tag not in _ACCEPTED_CONDITIONS:
            reject(
                Reason.MALFORMED,
                f"The assertion has a condition this service does not understand "
                f"({etree.QName(condition).localname}).",
            )
        if condition.tag == tag(SAML, "AudienceRestriction"):
            restrictions += 1
            audiences = [plain_text(a, what="Audience") for a in children(condition, SAML, "Audience")]
            if sp.entity_id not in audiences:
                reject(
                    Reason.AUDIENCE_MISMATCH,
                    f"The assertion is meant for {', '.join(shown(a) for a in audiences) or 'no audience'}, "
                    f"not for this service ({shown(sp.entity_id)}). Check the SP entity ID configured at "
                    "the identity provider.",
                )
    if not restrictions:
        reject(
            Reason.AUDIENCE_MISMATCH,
            "The assertion names no audience; SAML requires an AudienceRestriction naming this service.",
        )
    return until


def _authn_statement(
    signed: etree._Element, *, now: float, skew: float
) -> tuple[str | None, str | None, float | None]:
    statement = child(signed, SAML, "AuthnStatement")
    if statement is None:
        reject(Reason.MALFORMED, "The assertion has no AuthnStatement: it does not say the person signed in.")
    instant = statement.get("AuthnInstant")
    authn_instant = parse_instant(instant, what="AuthnInstant") if instant else None
    session_end = statement.get("SessionNotOnOrAfter")
    if session_end is not None and now - skew >= parse_instant(session_end, what="SessionNotOnOrAfter"):
        reject(Reason.EXPIRED, "The identity provider's session for this sign-in has ended; sign in again.")
    class_ref = statement.find(f"{tag(SAML, 'AuthnContext')}/{tag(SAML, 'AuthnContextClassRef')}")
    context_class = plain_text(class_ref, what="AuthnContextClassRef") if class_ref is not None else None
    return statement.get("SessionIndex"), context_class, authn_instant


def _attributes(signed: etree._Element) -> dict[str, tuple[str, ...]]:
    collected: dict[str, list[str]] = {}
    for statement in children(signed, SAML, "AttributeStatement"):
        if child(statement, SAML, "EncryptedAttribute") is not None:
            reject(
                Reason.ENCRYPTED_UNSUPPORTED,
                "The identity provider encrypted some attributes; this service does not accept encrypted "
                "attributes.",
            )
        for attribute in children(statement, SAML, "Attribute"):
            name = attribute.get("Name")
            if not name:
                reject(Reason.MALFORMED, "An attribute of the assertion has no Name.")
            values = [text_of(value) for value in children(attribute, SAML, "AttributeValue")]
            friendly = attribute.get("FriendlyName")
            for key in dict.fromkeys(k for k in (name, friendly) if k):
                collected.setdefault(key, []).extend(values)
    return {key: tuple(values) for key, values in collected.items()}
