"""Interoperability with an independent identity provider: pysaml2, signing with xmlsec1.

Our AuthnRequest is parsed by pysaml2, whose signed Response we verify; its metadata is read by our
parser; its HTTP-Redirect LogoutRequest is verified by us and our LogoutResponse is read back by it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.saml.conftest import SP
from tests.support.saml_attacks import PASSWORD_PROTECTED, SigningKey, make_signing_key
from tests.support.saml_idp import RSA_SHA1, RSA_SHA256, SHA1, SHA256, IdpAnswer, Pysaml2Idp
from threshold.core.sso.errors import SsoRejected
from threshold.saml import (
    IdpMetadata,
    Reason,
    authn_request_redirect_url,
    logout_response_redirect_url,
    new_request_id,
    parse_idp_metadata,
    parse_logout_request,
    verify_response,
)

ATTRIBUTES = {
    "email": ["alice@acme.test"],
    "givenName": ["Alice"],
    "surname": ["Liddell"],
    "groups": ["engineering", "admins"],
}
EMAIL_OID = "urn:oid:1.2.840.113549.1.9.1.1"
GIVEN_NAME_OID = "urn:oid:2.5.4.42"
MFA = "https://refeds.org/profile/mfa"


@pytest.fixture(scope="module")
def pysaml2_idp(tmp_path_factory: pytest.TempPathFactory) -> Pysaml2Idp:
    return Pysaml2Idp(workdir=tmp_path_factory.mktemp("pysaml2-idp"), sp=SP)


@pytest.fixture(scope="module")
def metadata(pysaml2_idp: Pysaml2Idp) -> IdpMetadata:
    return parse_idp_metadata(pysaml2_idp.metadata_xml())


def sign_in(
    idp: Pysaml2Idp,
    metadata: IdpMetadata,
    *,
    sign_response: bool = False,
    authn_context_class: str = PASSWORD_PROTECTED,
    sign_alg: str = RSA_SHA256,
    digest_alg: str = SHA256,
) -> tuple[str, IdpAnswer]:
    """Our AuthnRequest through pysaml2: (the request's ID, pysaml2's answer)."""
    request_id = new_request_id()
    url = authn_request_redirect_url(
        sp=SP, idp=metadata, request_id=request_id, relay_state="rs-42", now=time.time()
    )
    answer = idp.respond(
        url,
        name_id="alice@acme.test",
        attributes=ATTRIBUTES,
        sign_response=sign_response,
        authn_context_class=authn_context_class,
        sign_alg=sign_alg,
        digest_alg=digest_alg,
    )
    return request_id, answer


def test_pysaml2_metadata_is_read(pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata) -> None:
    assert metadata == IdpMetadata(
        entity_id=pysaml2_idp.entity_id,
        sso_url=pysaml2_idp.sso_url,
        slo_url=pysaml2_idp.slo_url,
        certificates=(pysaml2_idp.key.cert_pem,),
    )


@pytest.mark.parametrize(
    "sign_response", [False, True], ids=["assertion-signed", "response-and-assertion-signed"]
)
def test_our_authn_request_and_pysaml2s_response(
    pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata, sign_response: bool
) -> None:
    request_id, answer = sign_in(pysaml2_idp, metadata, sign_response=sign_response, authn_context_class=MFA)

    assert answer.in_response_to == request_id  # pysaml2 read our request's ID
    assert answer.acs_url == SP.acs_url  # ... and our ACS, checked against our SP metadata
    assert answer.relay_state == "rs-42"
    verified = verify_response(
        answer.saml_response_b64, sp=SP, idp=metadata, expected_request_id=request_id, now=time.time()
    )
    assert verified.issuer == pysaml2_idp.entity_id
    assert verified.name_id == "alice@acme.test"
    assert verified.name_id_format == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    assert verified.assertion_id == answer.assertion_id
    assert verified.session_index == answer.session_index
    assert verified.authn_context_class == MFA
    assert verified.in_response_to == request_id
    assert verified.authn_instant is not None and abs(verified.authn_instant - time.time()) < 60
    assert time.time() < verified.not_on_or_after <= time.time() + 5 * 60 + 5
    attributes = verified.attributes
    assert attributes["email"] == attributes[EMAIL_OID] == ("alice@acme.test",)  # FriendlyName and Name
    assert attributes["givenName"] == attributes[GIVEN_NAME_OID] == ("Alice",)
    assert attributes["surname"] == ("Liddell",)
    assert attributes["groups"] == ("engineering", "admins")


def test_the_default_authn_context_is_passed_through(pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata) -> None:
    request_id, answer = sign_in(pysaml2_idp, metadata)
    verified = verify_response(
        answer.saml_response_b64, sp=SP, idp=metadata, expected_request_id=request_id, now=time.time()
    )

    assert verified.authn_context_class == PASSWORD_PROTECTED


def test_a_pysaml2_response_signed_with_sha1_is_refused(
    pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata
) -> None:
    request_id, answer = sign_in(pysaml2_idp, metadata, sign_alg=RSA_SHA1, digest_alg=SHA1)

    with pytest.raises(SsoRejected) as caught:
        verify_response(
            answer.saml_response_b64, sp=SP, idp=metadata, expected_request_id=request_id, now=time.time()
        )
    assert caught.value.reason == Reason.ALGORITHM_FORBIDDEN


def test_a_pysaml2_response_to_another_request_is_refused(
    pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata
) -> None:
    _, answer = sign_in(pysaml2_idp, metadata)

    with pytest.raises(SsoRejected) as caught:
        verify_response(
            answer.saml_response_b64,
            sp=SP,
            idp=metadata,
            expected_request_id=new_request_id(),
            now=time.time(),
        )
    assert caught.value.reason == Reason.IN_RESPONSE_TO_MISMATCH


def test_a_pysaml2_response_is_refused_with_another_pinned_certificate(
    pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata, idp_key: SigningKey
) -> None:
    request_id, answer = sign_in(pysaml2_idp, metadata)
    other = replace(metadata, certificates=(make_signing_key("idp.acme.test").cert_pem,))

    with pytest.raises(SsoRejected) as caught:
        verify_response(
            answer.saml_response_b64, sp=SP, idp=other, expected_request_id=request_id, now=time.time()
        )
    assert caught.value.reason == Reason.SIGNATURE_INVALID
    rollover = replace(metadata, certificates=(idp_key.cert_pem, *metadata.certificates))
    assert verify_response(
        answer.saml_response_b64, sp=SP, idp=rollover, expected_request_id=request_id, now=time.time()
    ).name_id == ("alice@acme.test")


# --- single logout -------------------------------------------------------------------------------


def refusal_of_logout(url: str, metadata: IdpMetadata) -> SsoRejected:
    query = urlsplit(url).query
    with pytest.raises(SsoRejected) as caught:
        parse_logout_request(
            parse_qs(query)["SAMLRequest"][0], query_string=query, idp=metadata, sp=SP, now=time.time()
        )
    return caught.value


def test_a_pysaml2_logout_request_is_verified_and_answered(
    pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata
) -> None:
    url = pysaml2_idp.logout_request_url(
        name_id="alice@acme.test", session_index="_sess-9", relay_state="rs-7"
    )
    query = urlsplit(url).query
    assert url.startswith(f"{SP.slo_url}?")

    verified = parse_logout_request(
        parse_qs(query)["SAMLRequest"][0], query_string=query, idp=metadata, sp=SP, now=time.time()
    )

    assert verified.issuer == pysaml2_idp.entity_id
    assert verified.name_id == "alice@acme.test"
    assert verified.session_indexes == ("_sess-9",)
    answer = logout_response_redirect_url(
        sp=SP, idp=metadata, in_response_to=verified.id, relay_state="rs-7", now=time.time()
    )
    assert answer.startswith(f"{pysaml2_idp.slo_url}?")
    assert pysaml2_idp.read_logout_response(answer) == (
        verified.id,
        SP.entity_id,
        "urn:oasis:names:tc:SAML:2.0:status:Success",
    )


def test_a_pysaml2_logout_request_after_a_sign_in_names_its_session(
    pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata
) -> None:
    request_id, answer = sign_in(pysaml2_idp, metadata)
    session_index = verify_response(
        answer.saml_response_b64, sp=SP, idp=metadata, expected_request_id=request_id, now=time.time()
    ).session_index
    assert session_index is not None
    url = pysaml2_idp.logout_request_url(name_id="alice@acme.test", session_index=session_index)
    query = urlsplit(url).query

    verified = parse_logout_request(
        parse_qs(query)["SAMLRequest"][0], query_string=query, idp=metadata, sp=SP, now=time.time()
    )
    assert verified.session_indexes == (session_index,)


def test_an_unsigned_pysaml2_logout_request_is_refused(
    pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata
) -> None:
    url = pysaml2_idp.logout_request_url(name_id="alice@acme.test", session_index="_s", sign=False)

    assert refusal_of_logout(url, metadata).reason == Reason.NOT_SIGNED


def test_a_pysaml2_logout_request_signed_with_sha1_is_refused(
    pysaml2_idp: Pysaml2Idp, metadata: IdpMetadata
) -> None:
    url = pysaml2_idp.logout_request_url(name_id="alice@acme.test", session_index="_s", sign_alg=RSA_SHA1)

    assert refusal_of_logout(url, metadata).reason == Reason.ALGORITHM_FORBIDDEN
