"""verify_response: what a signed assertion proves; every forgery (tests.support.saml_attacks) refused."""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration, XMLVerifier

from tests.saml.conftest import IDP_ENTITY_ID, SP
from tests.support.saml_attacks import (
    ATTACKS,
    DS,
    EMAIL_FORMAT,
    PASSWORD_PROTECTED,
    SAML,
    SAMLP,
    Attack,
    ResponseSpec,
    SigningKey,
    assertion_element,
    attack_corpus,
    comment_injected_assertion,
    encode,
    legit_spec,
    make_signing_key,
    mint_response,
    q,
    response_element,
    sign,
)
from threshold.core.sso.errors import SsoRejected
from threshold.saml import (
    IdpMetadata,
    Reason,
    VerifiedAssertion,
    new_request_id,
    verify_response,
)


def verify(response_b64: str, spec: ResponseSpec, *, skew: float = 90.0) -> VerifiedAssertion:
    return verify_response(
        response_b64,
        sp=spec.sp,
        idp=spec.idp,
        expected_request_id=spec.in_response_to,
        now=spec.now,
        skew=skew,
    )


def refusal(response_b64: str, spec: ResponseSpec) -> SsoRejected:
    """The refusal of `response_b64` by the SP of `spec`, which expects `spec.in_response_to`."""
    with pytest.raises(SsoRejected) as caught:
        verify(response_b64, spec)
    error = caught.value
    assert error.code == "sso_rejected"
    assert error.reason in set(Reason)
    assert error.detail.endswith(".") and "Traceback" not in error.detail
    return error


# --- what a legitimate response proves -------------------------------------------------------------


@pytest.mark.parametrize(
    "sign_response", [False, True], ids=["assertion-signed", "response-and-assertion-signed"]
)
def test_a_signed_assertion_is_accepted_and_read(
    spec: ResponseSpec, idp_key: SigningKey, sign_response: bool
) -> None:
    verified = verify(mint_response(spec, idp_key, sign_response=sign_response), spec)

    assert verified == VerifiedAssertion(
        assertion_id=spec.assertion_id,
        issuer=IDP_ENTITY_ID,
        name_id="alice@acme.test",
        name_id_format=EMAIL_FORMAT,
        session_index="_session-1",
        attributes={
            "email": ("alice@acme.test",),
            "givenName": ("Alice",),
            "surname": ("Liddell",),
            "groups": ("engineering", "admins"),
        },
        authn_context_class=PASSWORD_PROTECTED,
        authn_instant=float(int(spec.now)),
        not_on_or_after=float(int(spec.now + spec.lifetime)),
        in_response_to=spec.in_response_to,
    )


def test_attributes_are_found_by_name_and_by_friendly_name(spec: ResponseSpec, idp_key: SigningKey) -> None:
    spec = replace(
        spec,
        attributes=(
            ("urn:oid:0.9.2342.19200300.100.1.3", "mail", ("alice@acme.test",)),
            ("urn:oid:2.5.4.42", "givenName", ("Alice",)),
            ("memberOf", "memberOf", ("a", "b")),  # the same name twice is read once
            ("empty", None, ()),
        ),
    )
    attributes = verify(mint_response(spec, idp_key), spec).attributes

    assert attributes == {
        "urn:oid:0.9.2342.19200300.100.1.3": ("alice@acme.test",),
        "mail": ("alice@acme.test",),
        "urn:oid:2.5.4.42": ("Alice",),
        "givenName": ("Alice",),
        "memberOf": ("a", "b"),
        "empty": (),
    }


def test_the_replay_horizon_is_the_earliest_not_on_or_after(spec: ResponseSpec, idp_key: SigningKey) -> None:
    assertion = assertion_element(spec)
    conditions = assertion.find(q(SAML, "Conditions"))
    conditions.set("NotOnOrAfter", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(spec.now + 120)))
    verified = verify(encode(response_element(spec, sign(assertion, idp_key))), spec)

    assert verified.not_on_or_after == float(int(spec.now + 120))


def test_base64_wrapped_over_several_lines_is_accepted(spec: ResponseSpec, idp_key: SigningKey) -> None:
    encoded = mint_response(spec, idp_key)
    wrapped = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))

    assert verify(wrapped, spec).name_id == "alice@acme.test"


@pytest.mark.parametrize(
    ("signature_algorithm", "digest_algorithm", "curve"),
    [
        ("rsa-sha384", "sha384", None),
        ("rsa-sha512", "sha512", None),
        ("ecdsa-sha256", "sha256", ec.SECP256R1()),
        ("ecdsa-sha384", "sha512", ec.SECP384R1()),
    ],
)
def test_every_allowed_algorithm_verifies(
    spec: ResponseSpec,
    signature_algorithm: str,
    digest_algorithm: str,
    curve: ec.EllipticCurve | None,
) -> None:
    key = make_signing_key("idp.acme.test", curve=curve)
    spec = replace(spec, idp=replace(spec.idp, certificates=(key.cert_pem,)))
    assertion = sign(
        assertion_element(spec),
        key,
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
    )

    assert verify(encode(response_element(spec, assertion)), spec).name_id == "alice@acme.test"


# --- certificates --------------------------------------------------------------------------------


def test_during_a_rollover_either_pinned_certificate_verifies(
    spec: ResponseSpec, idp_key: SigningKey, next_idp_key: SigningKey
) -> None:
    spec = replace(spec, idp=replace(spec.idp, certificates=(idp_key.cert_pem, next_idp_key.cert_pem)))

    assert verify(mint_response(spec, idp_key), spec).name_id == "alice@acme.test"
    assert (
        verify(mint_response(replace(spec, assertion_id="_a2"), next_idp_key), spec).name_id
        == "alice@acme.test"
    )
    outsider = make_signing_key("idp.acme.test")
    assert refusal(mint_response(spec, outsider), spec).reason == Reason.SIGNATURE_INVALID


def test_a_pinned_certificate_past_its_validity_is_refused(spec: ResponseSpec) -> None:
    expired = make_signing_key("idp.acme.test", valid_from=spec.now - 400 * 86400, days=365)
    spec = replace(spec, idp=replace(spec.idp, certificates=(expired.cert_pem,)))
    error = refusal(mint_response(spec, expired), spec)

    assert error.reason == Reason.SIGNATURE_INVALID
    assert "validity period" in error.detail


# --- the attack corpus ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    spec: ResponseSpec
    legit: str
    attacks: dict[str, Attack]


@pytest.fixture(scope="module")
def corpus(idp_key: SigningKey) -> Corpus:
    request_id = new_request_id()
    now = time.time()
    idp = IdpMetadata(
        entity_id=IDP_ENTITY_ID,
        sso_url="https://idp.acme.test/sso",
        slo_url=None,
        certificates=(idp_key.cert_pem,),
    )
    spec = legit_spec(sp=SP, idp=idp, request_id=request_id, now=now)
    assert isinstance(idp_key.key, rsa.RSAPrivateKey)
    built = attack_corpus(
        idp_key=idp_key.key,
        idp_cert_pem=idp_key.cert_pem,
        sp=SP,
        idp=idp,
        request_id=request_id,
        now=now,
    )
    return Corpus(
        spec=spec, legit=mint_response(spec, idp_key), attacks={attack.name: attack for attack in built}
    )


def test_the_corpus_covers_every_named_attack(corpus: Corpus) -> None:
    assert [(a.name, a.reason) for a in corpus.attacks.values()] == list(ATTACKS)
    assert {f"xsw{i}" for i in range(1, 9)} <= {name.split("_")[0] for name in corpus.attacks}
    assert {reason for _, reason in ATTACKS} <= set(Reason)


@pytest.mark.parametrize(("name", "reason"), ATTACKS, ids=[name for name, _ in ATTACKS])
def test_every_attack_is_refused_and_the_real_sign_in_still_works(
    corpus: Corpus, name: str, reason: str
) -> None:
    error = refusal(corpus.attacks[name].response_b64, corpus.spec)

    assert error.reason == reason, error.detail
    assert error.details == {"reason": reason}
    assert verify(corpus.legit, corpus.spec).name_id == "alice@acme.test"


def test_the_comment_injection_is_validly_signed_and_would_fool_a_naive_reader(
    spec: ResponseSpec, idp_key: SigningKey
) -> None:
    assertion = comment_injected_assertion(spec, idp_key)
    verified = XMLVerifier().verify(etree.tostring(assertion), x509_cert=idp_key.cert_pem, id_attribute="ID")
    name_id = assertion.find(f"{q(SAML, 'Subject')}/{q(SAML, 'NameID')}")

    assert not isinstance(verified, list)
    assert name_id.text == "admin@acme.test"  # what lxml's .text gives: the attack
    error = refusal(encode(response_element(spec, assertion)), spec)
    assert error.reason == Reason.MALFORMED
    assert "comment" in error.detail


@pytest.mark.parametrize(
    ("signature_algorithm", "digest_algorithm"), [("rsa-sha1", "sha256"), ("rsa-sha256", "sha1")]
)
def test_sha1_is_refused_even_when_the_signature_is_genuine(
    spec: ResponseSpec, idp_key: SigningKey, signature_algorithm: str, digest_algorithm: str
) -> None:
    assertion = sign(
        assertion_element(spec),
        idp_key,
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
    )
    legacy = SignatureConfiguration(
        signature_methods=frozenset(SignatureMethod), digest_algorithms=frozenset(DigestAlgorithm)
    )
    XMLVerifier().verify(
        etree.tostring(assertion), x509_cert=idp_key.cert_pem, id_attribute="ID", expect_config=legacy
    )

    assert refusal(encode(response_element(spec, assertion)), spec).reason == Reason.ALGORITHM_FORBIDDEN


# --- InResponseTo and IdP-initiated sign-in --------------------------------------------------------


def test_an_idp_initiated_response_is_accepted_when_no_request_was_sent(
    spec: ResponseSpec, idp_key: SigningKey
) -> None:
    spec = replace(spec, in_response_to=None)
    verified = verify_response(
        mint_response(spec, idp_key), sp=spec.sp, idp=spec.idp, expected_request_id=None, now=spec.now
    )

    assert verified.in_response_to is None
    assert verified.name_id == "alice@acme.test"


def test_a_solicited_response_is_refused_when_no_request_was_sent(
    spec: ResponseSpec, idp_key: SigningKey
) -> None:
    error = refusal(mint_response(spec, idp_key), replace(spec, in_response_to=None))

    assert error.reason == Reason.IN_RESPONSE_TO_MISMATCH


def test_the_response_in_response_to_must_match_too(spec: ResponseSpec, idp_key: SigningKey) -> None:
    assertion = sign(assertion_element(spec), idp_key)
    response = response_element(replace(spec, in_response_to=new_request_id()), assertion)

    assert refusal(encode(response), spec).reason == Reason.IN_RESPONSE_TO_MISMATCH


# --- time ----------------------------------------------------------------------------------------


def test_clock_skew_is_tolerated_within_the_window(spec: ResponseSpec, idp_key: SigningKey) -> None:
    just_expired = replace(spec, issued_offset=-300.0, not_before_offset=-300.0, lifetime=-30.0)
    early = replace(spec, not_before_offset=60.0, issued_offset=60.0)

    assert verify(mint_response(just_expired, idp_key), just_expired).name_id == "alice@acme.test"
    assert verify(mint_response(early, idp_key), early).name_id == "alice@acme.test"
    with pytest.raises(SsoRejected) as caught:
        verify(mint_response(just_expired, idp_key), just_expired, skew=0.0)
    assert caught.value.reason == Reason.EXPIRED
    with pytest.raises(SsoRejected) as caught:
        verify(mint_response(early, idp_key), early, skew=10.0)
    assert caught.value.reason == Reason.NOT_YET_VALID


# --- assertion shapes ----------------------------------------------------------------------------


def _subject(assertion: etree._Element) -> etree._Element:
    subject: etree._Element = assertion.find(q(SAML, "Subject"))
    return subject


def _drop(path: str) -> Callable[[etree._Element], None]:
    def mutate(assertion: etree._Element) -> None:
        element = assertion.find(path)
        element.getparent().remove(element)

    return mutate


def _unknown_condition(assertion: etree._Element) -> None:
    etree.SubElement(assertion.find(q(SAML, "Conditions")), "{urn:example:conditions}OnlyOnTuesdays")


def _name_id_with_child(assertion: etree._Element) -> None:
    etree.SubElement(_subject(assertion).find(q(SAML, "NameID")), q(SAML, "Extra")).text = ".evil.test"


def _encrypted_id(assertion: etree._Element) -> None:
    name_id = _subject(assertion).find(q(SAML, "NameID"))
    encrypted = etree.Element(q(SAML, "EncryptedID"))
    etree.SubElement(encrypted, "{http://www.w3.org/2001/04/xmlenc#}EncryptedData")
    name_id.getparent().replace(name_id, encrypted)


def _holder_of_key_only(assertion: etree._Element) -> None:
    _subject(assertion).find(q(SAML, "SubjectConfirmation")).set(
        "Method", "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
    )


def _second_audience_restriction_elsewhere(assertion: etree._Element) -> None:
    restriction = etree.SubElement(assertion.find(q(SAML, "Conditions")), q(SAML, "AudienceRestriction"))
    etree.SubElement(restriction, q(SAML, "Audience")).text = "https://other-sp.evil.test/metadata"


def _session_ended(assertion: etree._Element) -> None:
    assertion.find(q(SAML, "AuthnStatement")).set("SessionNotOnOrAfter", "2001-01-01T00:00:00Z")


def _issued_in_the_future(assertion: etree._Element) -> None:
    assertion.set("IssueInstant", "2999-01-01T00:00:00Z")


def _version_1(assertion: etree._Element) -> None:
    assertion.set("Version", "1.1")


def _bad_time(assertion: etree._Element) -> None:
    _subject(assertion).find(f"{q(SAML, 'SubjectConfirmation')}/{q(SAML, 'SubjectConfirmationData')}").set(
        "NotOnOrAfter", "tomorrow"
    )


def _encrypted_attribute(assertion: etree._Element) -> None:
    statement = assertion.find(q(SAML, "AttributeStatement"))
    etree.SubElement(statement, q(SAML, "EncryptedAttribute"))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_drop(f"{q(SAML, 'Conditions')}/{q(SAML, 'AudienceRestriction')}"), Reason.AUDIENCE_MISMATCH),
        (_second_audience_restriction_elsewhere, Reason.AUDIENCE_MISMATCH),
        (_unknown_condition, Reason.MALFORMED),
        (_drop(q(SAML, "Conditions")), Reason.MALFORMED),
        (_drop(q(SAML, "AuthnStatement")), Reason.MALFORMED),
        (_drop(q(SAML, "Issuer")), Reason.MALFORMED),
        (_name_id_with_child, Reason.MALFORMED),
        (_encrypted_id, Reason.ENCRYPTED_UNSUPPORTED),
        (_encrypted_attribute, Reason.ENCRYPTED_UNSUPPORTED),
        (_holder_of_key_only, Reason.MALFORMED),
        (_session_ended, Reason.EXPIRED),
        (_issued_in_the_future, Reason.NOT_YET_VALID),
        (_version_1, Reason.MALFORMED),
        (_bad_time, Reason.MALFORMED),
    ],
    ids=lambda value: getattr(value, "__name__", None) or str(value),
)
def test_a_signed_assertion_that_breaks_a_rule_is_refused(
    spec: ResponseSpec, idp_key: SigningKey, mutate: Callable[[etree._Element], None], reason: Reason
) -> None:
    assertion = assertion_element(spec)
    mutate(assertion)

    assert refusal(encode(response_element(spec, sign(assertion, idp_key))), spec).reason == reason


def test_an_audience_list_naming_this_service_among_others_is_accepted(
    spec: ResponseSpec, idp_key: SigningKey
) -> None:
    assertion = assertion_element(spec)
    restriction = assertion.find(f"{q(SAML, 'Conditions')}/{q(SAML, 'AudienceRestriction')}")
    restriction.insert(0, copy.deepcopy(restriction[0]))
    restriction[0].text = "https://another-app.acme.test"

    assert verify(encode(response_element(spec, sign(assertion, idp_key))), spec).name_id == "alice@acme.test"


def test_one_satisfied_bearer_confirmation_is_enough(spec: ResponseSpec, idp_key: SigningKey) -> None:
    assertion = assertion_element(spec)
    subject = _subject(assertion)
    good = subject.find(q(SAML, "SubjectConfirmation"))
    wrong = copy.deepcopy(good)
    wrong.find(q(SAML, "SubjectConfirmationData")).set("Recipient", "https://elsewhere.test/acs")
    subject.insert(1, wrong)

    assert verify(encode(response_element(spec, sign(assertion, idp_key))), spec).name_id == "alice@acme.test"
    subject.remove(good)
    assert (
        refusal(encode(response_element(spec, sign(assertion, idp_key))), spec).reason
        == Reason.RECIPIENT_MISMATCH
    )


# --- the Response around the assertion -------------------------------------------------------------


def test_a_signed_response_must_name_its_destination(spec: ResponseSpec, idp_key: SigningKey) -> None:
    no_destination = replace(spec, destination=None)

    assert (
        verify(mint_response(no_destination, idp_key), spec).name_id == "alice@acme.test"
    )  # unsigned: optional
    error = refusal(mint_response(no_destination, idp_key, sign_response=True), spec)
    assert error.reason == Reason.DESTINATION_MISMATCH


def test_the_response_issuer_is_optional_but_must_match(spec: ResponseSpec, idp_key: SigningKey) -> None:
    assert verify(mint_response(replace(spec, response_issuer=None), idp_key), spec).issuer == IDP_ENTITY_ID
    error = refusal(mint_response(replace(spec, response_issuer="https://idp.evil.test"), idp_key), spec)
    assert error.reason == Reason.ISSUER_MISMATCH


def test_a_signed_response_changed_after_signing_is_refused(spec: ResponseSpec, idp_key: SigningKey) -> None:
    response = sign(response_element(spec, sign(assertion_element(spec), idp_key)), idp_key)
    response.set("IssueInstant", "2001-01-01T00:00:00Z")

    assert refusal(encode(response), spec).reason == Reason.SIGNATURE_INVALID


def test_a_failed_status_names_the_identity_providers_codes(spec: ResponseSpec) -> None:
    response = response_element(replace(spec, status="urn:oasis:names:tc:SAML:2.0:status:Responder"))
    code = response.find(f"{q(SAMLP, 'Status')}/{q(SAMLP, 'StatusCode')}")
    etree.SubElement(code, q(SAMLP, "StatusCode"), Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed")
    etree.SubElement(response.find(q(SAMLP, "Status")), q(SAMLP, "StatusMessage")).text = "Wrong password"
    error = refusal(encode(response), spec)

    assert error.reason == Reason.STATUS_NOT_SUCCESS
    assert "urn:oasis:names:tc:SAML:2.0:status:Responder" in error.detail
    assert "AuthnFailed" in error.detail
    assert "Wrong password" not in error.detail  # StatusMessage is unsigned: an attacker's words


def test_an_assertion_outside_its_place_is_refused(spec: ResponseSpec, idp_key: SigningKey) -> None:
    response = response_element(spec)
    extensions = etree.SubElement(response, q(SAMLP, "Extensions"))
    extensions.append(sign(assertion_element(spec), idp_key))

    assert refusal(encode(response), spec).reason == Reason.MALFORMED


def test_a_bare_assertion_is_not_a_response(spec: ResponseSpec, idp_key: SigningKey) -> None:
    assert refusal(encode(sign(assertion_element(spec), idp_key)), spec).reason == Reason.MALFORMED


def test_a_response_without_an_assertion_is_refused(spec: ResponseSpec) -> None:
    assert refusal(encode(response_element(spec)), spec).reason == Reason.MALFORMED


def test_two_signatures_on_the_assertion_are_refused(spec: ResponseSpec, idp_key: SigningKey) -> None:
    assertion = sign(assertion_element(spec), idp_key)
    assertion.insert(2, copy.deepcopy(assertion.find(q(DS, "Signature"))))

    assert refusal(encode(response_element(spec, assertion)), spec).reason == Reason.SIGNATURE_INVALID


def test_non_ascii_input_is_malformed(spec: ResponseSpec) -> None:
    assert refusal("SAML\u00e9Response", spec).reason == Reason.MALFORMED
    assert refusal(base64.b64encode("<é".encode("latin-1")).decode(), spec).reason == Reason.MALFORMED
