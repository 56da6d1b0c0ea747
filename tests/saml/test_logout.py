"""parse_logout_request (query-string signatures, SAML bindings 3.4.4.1) and logout_response_redirect_url."""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

from tests.saml.conftest import IDP_ENTITY_ID, SP
from tests.support.saml_attacks import SigningKey, make_signing_key
from threshold.core.sso.errors import SsoRejected
from threshold.saml import (
    IdpMetadata,
    Reason,
    ServiceProvider,
    VerifiedLogoutRequest,
    logout_response_redirect_url,
    parse_logout_request,
)

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def logout_request(
    *,
    destination: str | None = SP.slo_url,
    issuer: str = IDP_ENTITY_ID,
    name_id: str = "alice@acme.test",
    session_indexes: tuple[str, ...] = ("_session-1",),
    not_on_or_after: float | None = None,
    root: str = "LogoutRequest",
    prolog: str = "",
    issued: float | None = None,
) -> bytes:
    attrs = f' Destination="{destination}"' if destination is not None else ""
    instant = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if issued is None else issued))
    if not_on_or_after is not None:
        attrs += time.strftime(' NotOnOrAfter="%Y-%m-%dT%H:%M:%SZ"', time.gmtime(not_on_or_after))
    sessions = "".join(f"<samlp:SessionIndex>{index}</samlp:SessionIndex>" for index in session_indexes)
    return (
        f'{prolog}<samlp:{root} xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="_lr1" Version="2.0" '
        f'IssueInstant="{instant}"{attrs}><saml:Issuer>{issuer}</saml:Issuer>'
        f'<saml:NameID Format="{EMAIL_FORMAT}">{name_id}</saml:NameID>'
        f"{sessions}</samlp:{root}>"
    ).encode()


def deflated(xml: bytes) -> str:
    compressor = zlib.compressobj(wbits=-15)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode()


def raw_signature(key: SigningKey, message: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
    if isinstance(key.key, rsa.RSAPrivateKey):
        return key.key.sign(message, padding.PKCS1v15(), hash_algorithm)
    r, s = decode_dss_signature(key.key.sign(message, ec.ECDSA(hash_algorithm)))
    size = (key.key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")  # XML-DSig's r || s


def signed_query(
    xml: bytes,
    key: SigningKey | None,
    *,
    relay_state: str | None = "back-to-app",
    sig_alg: str = RSA_SHA256,
    hash_algorithm: hashes.HashAlgorithm | None = None,
    encode: str = "upper",
) -> str:
    """The query string an IdP sends; `encode="lower"` percent-encodes with lowercase hex digits."""
    params = [("SAMLRequest", deflated(xml))]
    if relay_state is not None:
        params.append(("RelayState", relay_state))
    params.append(("SigAlg", sig_alg))
    query = urlencode(params)
    if encode == "lower":
        query = "&".join(
            f"{name}={''.join(c if c.isalnum() else '%' + format(ord(c), '02x') for c in value)}"
            for name, value in params
        )
    if key is None:
        return query
    signature = raw_signature(key, query.encode(), hash_algorithm or hashes.SHA256())
    return query + "&" + urlencode([("Signature", base64.b64encode(signature).decode())])


def parse(
    query: str, idp: IdpMetadata, *, sp: ServiceProvider = SP, now: float | None = None
) -> VerifiedLogoutRequest:
    return parse_logout_request(
        parse_qs(query)["SAMLRequest"][0], query_string=query, idp=idp, sp=sp, now=now or time.time()
    )


def refused(
    query: str, idp: IdpMetadata, *, sp: ServiceProvider = SP, now: float | None = None
) -> SsoRejected:
    with pytest.raises(SsoRejected) as caught:
        parse(query, idp, sp=sp, now=now)
    assert caught.value.detail.endswith(".")
    return caught.value


# --- accepted ------------------------------------------------------------------------------------


def test_a_signed_logout_request_is_read(idp: IdpMetadata, idp_key: SigningKey) -> None:
    query = signed_query(logout_request(session_indexes=("_s1", "_s2")), idp_key)

    assert parse(query, idp) == VerifiedLogoutRequest(
        id="_lr1", issuer=IDP_ENTITY_ID, name_id="alice@acme.test", session_indexes=("_s1", "_s2")
    )


def test_relay_state_is_optional(idp: IdpMetadata, idp_key: SigningKey) -> None:
    assert parse(signed_query(logout_request(), idp_key, relay_state=None), idp).id == "_lr1"


def test_the_signature_covers_the_parameters_exactly_as_encoded(
    idp: IdpMetadata, idp_key: SigningKey
) -> None:
    query = signed_query(logout_request(), idp_key, relay_state="a/b c+d", encode="lower")

    assert "%2f" in query
    assert parse(query, idp).name_id == "alice@acme.test"


def test_ecdsa_is_accepted(idp: IdpMetadata) -> None:
    key = make_signing_key("idp.acme.test", curve=ec.SECP256R1())
    idp = replace(idp, certificates=(key.cert_pem,))

    assert parse(signed_query(logout_request(), key, sig_alg=ECDSA_SHA256), idp).id == "_lr1"


def test_either_certificate_of_a_rollover_verifies(
    idp: IdpMetadata, idp_key: SigningKey, next_idp_key: SigningKey
) -> None:
    idp = replace(idp, certificates=(idp_key.cert_pem, next_idp_key.cert_pem))

    assert parse(signed_query(logout_request(), idp_key), idp).id == "_lr1"
    assert parse(signed_query(logout_request(), next_idp_key), idp).id == "_lr1"


def test_not_on_or_after_is_honoured_with_skew(idp: IdpMetadata, idp_key: SigningKey) -> None:
    now = time.time()

    assert parse(signed_query(logout_request(not_on_or_after=now - 30), idp_key), idp, now=now).id == "_lr1"
    error = refused(signed_query(logout_request(not_on_or_after=now - 300), idp_key), idp, now=now)
    assert error.reason == Reason.EXPIRED


# --- refused -------------------------------------------------------------------------------------


def test_an_unsigned_request_is_refused(idp: IdpMetadata) -> None:
    assert refused(signed_query(logout_request(), None), idp).reason == Reason.NOT_SIGNED


def test_a_signature_without_its_algorithm_is_refused(idp: IdpMetadata, idp_key: SigningKey) -> None:
    query = signed_query(logout_request(), idp_key).replace("&SigAlg=", "&Ignored=")

    assert refused(query, idp).reason == Reason.NOT_SIGNED


def test_sha1_is_refused_even_when_genuinely_signed(idp: IdpMetadata, idp_key: SigningKey) -> None:
    query = signed_query(logout_request(), idp_key, sig_alg=RSA_SHA1, hash_algorithm=hashes.SHA1())

    assert refused(query, idp).reason == Reason.ALGORITHM_FORBIDDEN


def test_an_unknown_algorithm_is_refused(idp: IdpMetadata, idp_key: SigningKey) -> None:
    query = signed_query(
        logout_request(), idp_key, sig_alg="http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
    )

    assert refused(query, idp).reason == Reason.ALGORITHM_FORBIDDEN


def test_another_key_is_refused(idp: IdpMetadata) -> None:
    attacker = make_signing_key("attacker.evil.test")

    assert refused(signed_query(logout_request(), attacker), idp).reason == Reason.SIGNATURE_INVALID


def test_a_changed_relay_state_breaks_the_signature(idp: IdpMetadata, idp_key: SigningKey) -> None:
    query = signed_query(logout_request(), idp_key, relay_state="back-to-app")
    tampered = query.replace("RelayState=back-to-app", "RelayState=https%3A%2F%2Fevil.test")

    assert refused(tampered, idp).reason == Reason.SIGNATURE_INVALID


def test_a_request_swapped_under_a_signature_is_refused(idp: IdpMetadata, idp_key: SigningKey) -> None:
    genuine = parse_qs(signed_query(logout_request(), idp_key))
    forged = (
        f"SAMLRequest={quote(deflated(logout_request(name_id='bob@acme.test')), safe='')}"
        f"&RelayState=back-to-app&SigAlg={quote(RSA_SHA256, safe='')}"
        f"&Signature={quote(genuine['Signature'][0], safe='')}"
    )

    assert refused(forged, idp).reason == Reason.SIGNATURE_INVALID


def test_a_signature_that_is_not_base64_is_refused(idp: IdpMetadata, idp_key: SigningKey) -> None:
    query = signed_query(logout_request(), None) + "&Signature=%%%"

    assert refused(query, idp).reason == Reason.SIGNATURE_INVALID


def test_the_request_must_be_the_one_in_the_query(idp: IdpMetadata, idp_key: SigningKey) -> None:
    query = signed_query(logout_request(), idp_key)
    with pytest.raises(SsoRejected) as caught:
        parse_logout_request(
            deflated(logout_request(name_id="bob@acme.test")),
            query_string=query,
            idp=idp,
            sp=SP,
            now=time.time(),
        )

    assert caught.value.reason == Reason.MALFORMED


def test_a_repeated_parameter_is_refused(idp: IdpMetadata, idp_key: SigningKey) -> None:
    query = signed_query(logout_request(), idp_key)
    repeated = query + "&" + query.split("&")[0]

    assert refused(repeated, idp).reason == Reason.MALFORMED


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: logout_request(destination="https://other-sp.evil.test/slo"), Reason.DESTINATION_MISMATCH),
        (lambda: logout_request(destination=None), Reason.DESTINATION_MISMATCH),
        (lambda: logout_request(issuer="https://idp.evil.test"), Reason.ISSUER_MISMATCH),
        (lambda: logout_request(name_id="admin@acme.test<!---->.evil.test"), Reason.MALFORMED),
        (lambda: logout_request(name_id='<saml:EncryptedData xmlns:saml="urn:x"/>'), Reason.MALFORMED),
        (lambda: logout_request(root="AuthnRequest"), Reason.MALFORMED),
        (
            lambda: logout_request(
                prolog='<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', name_id="&xxe;"
            ),
            Reason.DTD_FORBIDDEN,
        ),
        (lambda: b"not xml", Reason.MALFORMED),
    ],
    ids=[
        "wrong_destination",
        "no_destination",
        "wrong_issuer",
        "comment_in_name_id",
        "markup_in_name_id",
        "not_a_logout_request",
        "dtd",
        "not_xml",
    ],
)
def test_a_signed_request_that_breaks_a_rule_is_refused(
    idp: IdpMetadata, idp_key: SigningKey, make: Callable[[], bytes], reason: Reason
) -> None:
    xml = make()  # now, not at collection: the request must be recent
    assert refused(signed_query(xml, idp_key), idp).reason == reason


def test_an_encrypted_name_id_is_refused(idp: IdpMetadata, idp_key: SigningKey) -> None:
    xml = logout_request().replace(
        b"<saml:NameID", b"<saml:EncryptedID><x/></saml:EncryptedID><saml:NameID", 1
    )

    assert refused(signed_query(xml, idp_key), idp).reason == Reason.ENCRYPTED_UNSUPPORTED


def test_a_connection_without_slo_takes_no_logout_request(idp: IdpMetadata, idp_key: SigningKey) -> None:
    sp = ServiceProvider(entity_id=SP.entity_id, acs_url=SP.acs_url)

    assert refused(signed_query(logout_request(), idp_key), idp, sp=sp).reason == Reason.DESTINATION_MISMATCH


def test_a_deflate_bomb_is_refused(idp: IdpMetadata, idp_key: SigningKey) -> None:
    bomb = logout_request(name_id="a" * (2 * 1024 * 1024))

    assert len(deflated(bomb)) < 10_000
    error = refused(signed_query(bomb, idp_key), idp)
    assert error.reason == Reason.MALFORMED
    assert "inflates" in error.detail


def test_an_outdated_pinned_certificate_is_refused(idp: IdpMetadata) -> None:
    old = make_signing_key("idp.acme.test", valid_from=time.time() - 400 * 86400, days=365)
    idp = replace(idp, certificates=(old.cert_pem,))
    error = refused(signed_query(logout_request(), old), idp)

    assert error.reason == Reason.SIGNATURE_INVALID
    assert "validity period" in error.detail


# --- the answer ----------------------------------------------------------------------------------


def test_the_logout_response_goes_back_to_the_identity_provider(
    sp: ServiceProvider, idp: IdpMetadata
) -> None:
    url = logout_response_redirect_url(
        sp=sp, idp=idp, in_response_to="_lr1", relay_state="back-to-app", now=1_767_225_600.0
    )
    query = parse_qs(urlsplit(url).query)
    response = etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLResponse"][0]), wbits=-15))

    assert url.startswith(f"{idp.slo_url}?SAMLResponse=")
    assert query["RelayState"] == ["back-to-app"]
    assert "Signature" not in query
    assert response.tag == f"{{{SAMLP}}}LogoutResponse"
    assert response.get("InResponseTo") == "_lr1"
    assert response.get("Destination") == idp.slo_url
    assert response.get("IssueInstant") == "2026-01-01T00:00:00Z"
    assert response.get("ID", "").startswith("_")
    assert response.findtext(f"{{{SAML}}}Issuer") == sp.entity_id
    code = response.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    assert code is not None
    assert code.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Success"


def test_without_relay_state_none_is_sent(sp: ServiceProvider, idp: IdpMetadata) -> None:
    url = logout_response_redirect_url(
        sp=sp, idp=idp, in_response_to="_lr1", relay_state=None, now=time.time()
    )

    assert "RelayState" not in parse_qs(urlsplit(url).query)


def test_an_identity_provider_without_slo_cannot_be_answered(sp: ServiceProvider, idp: IdpMetadata) -> None:
    with pytest.raises(SsoRejected) as caught:
        logout_response_redirect_url(
            sp=sp, idp=replace(idp, slo_url=None), in_response_to="_lr1", relay_state=None, now=time.time()
        )

    assert caught.value.reason == Reason.METADATA_INVALID


def test_an_old_or_future_logout_request_is_refused(idp: IdpMetadata, idp_key: SigningKey) -> None:
    """A logout URL kept in a browser history or a log cannot end the person's sessions later."""
    now = time.time()
    assert parse(signed_query(logout_request(issued=now - 200), idp_key), idp, now=now).id == "_lr1"
    old = refused(signed_query(logout_request(issued=now - 3600), idp_key), idp, now=now)
    assert old.reason == Reason.EXPIRED
    future = refused(signed_query(logout_request(issued=now + 3600), idp_key), idp, now=now)
    assert future.reason == Reason.NOT_YET_VALID
