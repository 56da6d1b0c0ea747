"""TokenVerifier with keys we hold: valid tokens verify, and every forgery fails with its typed error."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.client.helpers import (
    ALGORITHMS,
    AUDIENCE,
    ISSUER,
    access_token,
    b64,
    b64json,
    claims,
    forge,
    generate,
    jwks,
    verifier_for,
)
from threshold.client import TokenError, TokenVerifier
from threshold.client.errors import (
    Expired,
    ForbiddenHeader,
    InvalidSignature,
    KeysNotLoaded,
    MalformedToken,
    MissingScope,
    NotYetValid,
    UnknownKey,
    UnsupportedAlgorithm,
    WrongAudience,
    WrongIssuer,
    WrongType,
)

KEYS = {alg: generate(alg, f"{alg.lower()}-1") for alg in ALGORITHMS}
ED, EC, RSA = KEYS["Ed25519"], KEYS["ES256"], KEYS["RS256"]
ATTACKER = generate("Ed25519", "attacker")
VERIFIER = verifier_for(ED, EC, RSA)


def refused(token: str | bytes, error: type[TokenError], verifier: TokenVerifier = VERIFIER) -> TokenError:
    with pytest.raises(error) as caught:
        verifier.verify(token)
    assert isinstance(caught.value, TokenError)
    return caught.value


# --- what must pass -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_a_valid_access_token_verifies(alg: str) -> None:
    token = access_token(KEYS[alg], sub="user-42", client_id="app-7", scope="openid api:read")
    verified = VERIFIER.verify(token)
    assert verified.subject == "user-42"
    assert verified.client_id == "app-7"
    assert verified.scopes == frozenset({"openid", "api:read"})
    assert verified.expires_at == verified.claims["exp"]
    assert VERIFIER.verify(token.encode()).subject == "user-42"  # bytes too
    assert verified.require_scopes("api:read") is verified
    with pytest.raises(MissingScope):
        verified.require_scopes("api:read", "api:admin")


def test_the_media_type_form_of_typ_and_an_audience_list_are_accepted() -> None:
    token = access_token(ED, header={"typ": "application/at+jwt"}, aud=["https://other.test", AUDIENCE])
    assert VERIFIER.verify(token).subject == "user-123"


def test_a_verifier_accepts_any_of_several_audiences() -> None:
    verifier = TokenVerifier(issuer=ISSUER + "/", audience=["https://a.test", AUDIENCE], jwks=jwks(ED))
    assert verifier.verify(access_token(ED)).client_id == "client-abc"


# --- algorithm tricks -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg: str) -> None:
    header = {"alg": alg, "kid": ED.kid, "typ": "at+jwt"}
    refused(forge(header, claims()), UnsupportedAlgorithm)
    # an unsigned token with a signature segment copied from a valid token fails the same way
    stolen = access_token(ED).rsplit(".", 1)[1]
    refused(forge(header, claims()) + stolen, UnsupportedAlgorithm)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "Ed25519"])
def test_hs256_signed_with_the_public_key_is_refused(alg: str) -> None:
    """Key confusion: an attacker HMACs with the (public) verification key as the shared secret."""
    key = KEYS[alg]
    for secret in (key.public_pem(), json.dumps(key.public_jwk()).encode()):
        token = forge({"alg": "HS256", "kid": key.kid, "typ": "at+jwt"}, claims(), hmac_secret=secret)
        refused(token, UnsupportedAlgorithm)


def test_an_algorithm_outside_the_allow_list_is_refused() -> None:
    es_only = verifier_for(ED, EC, RSA, algorithms=("ES256",))
    refused(access_token(RSA), UnsupportedAlgorithm, es_only)
    refused(access_token(ED), UnsupportedAlgorithm, es_only)
    assert es_only.verify(access_token(EC)).subject == "user-123"


@pytest.mark.parametrize("with_alg", [True, False], ids=["jwks-with-alg", "jwks-without-alg"])
def test_a_kid_of_one_key_type_with_the_alg_of_another_is_refused(with_alg: bool) -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(ED, EC, RSA, with_alg=with_alg))
    for key in (ED, EC, RSA):
        assert verifier.verify(access_token(key)).subject == "user-123"
    cases = [(EC, RSA), (RSA, EC), (ED, EC), (EC, ED), (RSA, ED)]
    for named, signer in cases:  # the header names `named`'s kid, the alg and signature are `signer`'s
        refused(access_token(signer, header={"kid": named.kid}), UnsupportedAlgorithm, verifier)


@pytest.mark.parametrize("alg", [["Ed25519"], {"Ed25519": 1}, 256, None, True])
def test_an_alg_that_is_not_a_string_is_a_typed_error(alg: object) -> None:
    """Unsigned attacker input must never escape as a TypeError (a 500 in the application)."""
    refused(forge({"alg": alg, "kid": ED.kid, "typ": "at+jwt"}, claims(), key=ED, alg="Ed25519"), TokenError)


@pytest.mark.parametrize("algorithms", [("HS256",), ("none",), ("RS256", "HS256"), ("HS512",), ()], ids=str)
def test_the_constructor_refuses_symmetric_or_empty_allow_lists(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, algorithms=algorithms, jwks=jwks(ED))


# --- header tricks --------------------------------------------------------------------------------


def test_typ_other_than_at_jwt_is_refused() -> None:
    """An ID token (typ JWT) or a token without typ is not an access token (RFC 9068 section 4)."""
    refused(access_token(ED, header={"typ": "JWT"}), WrongType)
    refused(access_token(ED, header={"typ": None}), WrongType)
    refused(access_token(ED, header={"typ": "dpop+jwt"}), WrongType)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://attacker.test/jwks.json"),
        ("x5u", "https://attacker.test/cert.pem"),
        ("jwk", ATTACKER.public_jwk()),
        ("x5c", ["MIIBszCCAVmgAwIBAgIU"]),
        ("crit", ["exp"]),
    ],
)
def test_headers_that_bring_keys_or_rules_are_refused_even_with_a_valid_signature(
    name: str, value: object
) -> None:
    refused(access_token(ED, header={name: value}), ForbiddenHeader)
    if name == "jwk":  # the classic: sign with your own key and ship it along
        refused(access_token(ATTACKER, header={"jwk": value}), ForbiddenHeader)


def test_an_unknown_or_missing_kid_is_refused() -> None:
    refused(access_token(ATTACKER), UnknownKey)
    refused(access_token(ED, header={"kid": None}), UnknownKey)
    refused(access_token(ED, header={"kid": 1}), UnknownKey)
    refused(access_token(ED, header={"kid": "ed25519-1 "}), UnknownKey)


# --- signature ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_a_tampered_token_is_refused(alg: str) -> None:
    header, payload, signature = access_token(KEYS[alg], scope="api:read").split(".")
    widened = b64json(claims(scope="api:read api:admin"))
    refused(f"{header}.{widened}.{signature}", InvalidSignature)
    resigned_by_attacker = access_token(ATTACKER).rsplit(".", 1)[1]
    refused(f"{header}.{payload}.{resigned_by_attacker}", InvalidSignature)
    raw = bytearray(signature.encode())
    raw[5] = ord("A") if raw[5] != ord("A") else ord("B")
    refused(f"{header}.{payload}.{raw.decode()}", InvalidSignature)
    refused(f"{header}.{payload}.", InvalidSignature)


def test_jwks_entries_with_private_or_symmetric_material_are_ignored() -> None:
    leaked = generate("ES256", "leaked")
    private = {**leaked.key.as_dict(private=True), "kid": leaked.kid, "alg": "ES256", "use": "sig"}
    assert "d" in private
    symmetric = {"kty": "oct", "k": b64(b"a shared secret"), "kid": "oct-1", "alg": "HS256"}
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [private, symmetric, ED.public_jwk()]}
    )
    refused(access_token(leaked), UnknownKey, verifier)
    hs = forge({"alg": "HS256", "kid": "oct-1", "typ": "at+jwt"}, claims(), hmac_secret=b"a shared secret")
    refused(hs, UnsupportedAlgorithm, verifier)
    assert verifier.verify(access_token(ED)).subject == "user-123"


def test_encryption_keys_are_not_used_for_signatures() -> None:
    enc = {**EC.public_jwk(), "use": "enc"}
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks={"keys": [enc]})
    refused(access_token(EC), UnknownKey, verifier)


# --- claims ---------------------------------------------------------------------------------------


def test_wrong_audience_is_refused() -> None:
    refused(access_token(ED, aud="https://other-api.test"), WrongAudience)
    refused(access_token(ED, aud=["https://a.test", "https://b.test"]), WrongAudience)
    refused(access_token(ED, aud=None), WrongAudience)


def test_an_audience_of_the_wrong_type_is_a_typed_error() -> None:
    for aud in ([{"x": 1}], {"x": 1}, [["https://api.example.test"]], 7):
        refused(access_token(ED, aud=aud), WrongAudience)


def test_wrong_issuer_is_refused() -> None:
    refused(access_token(ED, iss="https://evil.example.test"), WrongIssuer)
    refused(access_token(ED, iss=ISSUER + ".evil.test"), WrongIssuer)
    refused(access_token(ED, iss=None), WrongIssuer)


def test_expiry_is_enforced_beyond_the_leeway_only() -> None:
    verifier = verifier_for(ED, leeway=30)
    now = int(time.time())
    refused(access_token(ED, exp=now - 40, iat=now - 340, nbf=now - 340), Expired, verifier)
    refused(access_token(ED, exp=now - 3600, iat=now - 3900, nbf=now - 3900), Expired, verifier)
    within = verifier.verify(access_token(ED, exp=now - 10, iat=now - 310, nbf=now - 310))
    assert within.expires_at == now - 10
    strict = verifier_for(ED, leeway=0)
    refused(access_token(ED, exp=now - 10, iat=now - 310, nbf=now - 310), Expired, strict)


def test_a_token_not_valid_yet_is_refused_beyond_the_leeway() -> None:
    verifier = verifier_for(ED, leeway=30)
    now = int(time.time())
    refused(access_token(ED, nbf=now + 120, iat=now), NotYetValid, verifier)
    refused(access_token(ED, nbf=None, iat=now + 120), NotYetValid, verifier)  # iat stands in for nbf
    assert verifier.verify(access_token(ED, nbf=now + 10, iat=now + 10)).subject == "user-123"


@pytest.mark.parametrize(
    "overrides",
    [{"exp": None}, {"exp": "9999999999"}, {"exp": True}, {"sub": None}, {"client_id": None}, {"sub": 42}],
    ids=["no-exp", "exp-string", "exp-bool", "no-sub", "no-client_id", "sub-number"],
)
def test_required_claims_must_be_present_and_well_typed(overrides: dict[str, Any]) -> None:
    refused(access_token(ED, **overrides), MalformedToken)


# --- shape ----------------------------------------------------------------------------------------


def test_a_validly_signed_payload_that_is_not_a_json_object_is_refused() -> None:
    header = {"alg": "Ed25519", "kid": ED.kid, "typ": "at+jwt"}
    refused(forge(header, b"this is not JSON", key=ED), MalformedToken)
    refused(forge(header, b'["iss", "sub"]', key=ED), MalformedToken)
    refused(forge(header, b"\xff\xfe", key=ED), MalformedToken)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "....",
        "%%%.%%%.%%%",
        "e30.e30.",  # {} header: no alg
        b64(b"not json") + ".e30.AAAA",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises((MalformedToken, UnsupportedAlgorithm)):
        VERIFIER.verify(token)


def test_four_segments_and_huge_tokens_are_malformed_even_if_otherwise_valid() -> None:
    valid = access_token(ED)
    refused(valid + ".AAAA", MalformedToken)
    huge = access_token(ED, padding="x" * 20_000)
    assert len(huge) > 16_384
    refused(huge, MalformedToken)
    refused("a" * 1_000_000 + ".b.c", MalformedToken)
    refused("é".join(valid.split(".", 1)), MalformedToken)  # non-ASCII


# --- what the errors say --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "part", "says"),
    [
        ("", "token", "the token is empty"),
        ("an-opaque-refresh-token", "token", "has 1 dot-separated part where a JWS access token has 3"),
        ("a.b.c.d", "token", "has 4 dot-separated parts where a JWS access token has 3"),
        ("a" * 20_000 + ".b.c", "token", "20004 bytes long, more than the 16384"),
        ("é.e30.AAAA", "token", "non-ASCII characters"),
        ('"eyJhbGciOiJFZDI1NTE5In0".e30.AAAA', "header", "header (part 1 of 3) is not base64url"),
        (b64(b"not json") + ".e30.AAAA", "header", "header (part 1 of 3) is base64url but not JSON"),
        (b64json(["alg"]) + ".e30.AAAA", "header", "header (part 1 of 3) is JSON but not an object"),
        (b64json("alg") + ".e30.AAAA", "header", "header (part 1 of 3) is JSON but not an object"),
        ("e30.e30.AAAA", "header", "header (part 1 of 3) has no alg"),
        (b64json({"alg": "Ed25519"}) + ".e30=.AAAA", "payload", "payload (part 2 of 3) is not base64url"),
    ],
    ids=[
        "empty",
        "one-part",
        "four-parts",
        "huge",
        "non-ascii",
        "quoted",
        "header-not-json",
        "header-a-list",
        "header-a-string",
        "no-alg",
        "payload-padded",
    ],
)
def test_a_malformed_token_error_names_the_part_at_fault(token: str, part: str, says: str) -> None:
    error = refused(token, MalformedToken)
    assert isinstance(error, MalformedToken)
    assert error.part == part
    assert error.reason == "malformed"
    assert says in str(error)
    assert "send the access_token" in str(error)


def test_a_signed_payload_that_is_not_an_object_or_lacks_claims_names_its_part() -> None:
    header = {"alg": "Ed25519", "kid": ED.kid, "typ": "at+jwt"}
    not_json = refused(forge(header, b"this is not JSON", key=ED), MalformedToken)
    assert isinstance(not_json, MalformedToken) and not_json.part == "payload"
    no_sub = refused(access_token(ED, sub=None), MalformedToken)
    assert isinstance(no_sub, MalformedToken) and no_sub.part == "claims"
    assert "sub or client_id" in str(no_sub)


@pytest.mark.parametrize(("typ", "actual"), [("JWT", "JWT"), ("dpop+jwt", "dpop+jwt"), (None, None)])
def test_wrong_type_says_the_expected_and_the_actual_typ(typ: str | None, actual: str | None) -> None:
    error = refused(access_token(ED, header={"typ": typ}), WrongType)
    assert isinstance(error, WrongType)
    assert (error.expected, error.actual) == ("at+jwt", actual)
    assert "'at+jwt'" in str(error)
    assert (f"typ is {typ!r}" if typ else "no typ header") in str(error)
    if typ == "JWT":
        assert "ID token" in str(error)


def test_wrong_audience_carries_and_says_the_expected_and_the_actual_audiences() -> None:
    error = refused(access_token(ED, aud=["https://a.test", "https://b.test"]), WrongAudience)
    assert isinstance(error, WrongAudience)
    assert error.expected == (AUDIENCE,)
    assert error.actual == ("https://a.test", "https://b.test")
    message = str(error)
    assert "'https://a.test', 'https://b.test'" in message and repr(AUDIENCE) in message
    assert f"resource={AUDIENCE}" in message

    several = TokenVerifier(issuer=ISSUER, audience=[AUDIENCE, "https://z.test"], jwks=jwks(ED))
    error = refused(access_token(ED, aud=None), WrongAudience, several)
    assert isinstance(error, WrongAudience)
    assert (error.expected, error.actual) == ((AUDIENCE, "https://z.test"), ())
    assert "no aud claim" in str(error) and f"{AUDIENCE!r} or 'https://z.test'" in str(error)


def test_the_constructor_refuses_an_empty_audience_list() -> None:
    with pytest.raises(ValueError, match="audience"):
        TokenVerifier(issuer=ISSUER, audience=[], jwks=jwks(ED))


def test_wrong_issuer_carries_the_expected_and_the_actual_issuer() -> None:
    error = refused(access_token(ED, iss="https://evil.example.test"), WrongIssuer)
    assert isinstance(error, WrongIssuer)
    assert (error.expected, error.actual) == (ISSUER, "https://evil.example.test")
    assert "'https://evil.example.test'" in str(error) and repr(ISSUER) in str(error)


def test_an_unknown_kid_is_named_with_the_kids_the_verifier_holds() -> None:
    error = refused(access_token(ATTACKER), UnknownKey)
    assert isinstance(error, UnknownKey)
    assert error.kid == ATTACKER.kid
    assert f"kid {ATTACKER.kid!r}" in str(error) and repr(ED.kid) in str(error)
    assert "averify() refetches" in str(error)
    missing = refused(access_token(ED, header={"kid": None}), UnknownKey)
    assert isinstance(missing, UnknownKey) and missing.kid is None and "no kid" in str(missing)


def test_missing_scopes_carry_what_was_required_and_what_the_token_has() -> None:
    verified = VERIFIER.verify(access_token(ED, scope="openid api:read"))
    with pytest.raises(MissingScope) as caught:
        verified.require_scopes("api:read", "orders:write", "orders:read")
    error = caught.value
    assert error.expected == ("api:read", "orders:write", "orders:read")
    assert error.actual == frozenset({"openid", "api:read"})
    assert error.missing == ("orders:write", "orders:read")
    assert "lacks the required scopes orders:write orders:read" in str(error)
    assert "the token has: api:read openid" in str(error)


def test_expiry_and_clock_errors_say_by_how_much() -> None:
    now = int(time.time())
    expired = refused(access_token(ED, exp=now - 600, iat=now - 900, nbf=now - 900), Expired)
    assert "expired 6" in str(expired) and "get a new access token" in str(expired)
    early = refused(access_token(ED, nbf=now + 600, iat=now), NotYetValid)
    assert "valid only in" in str(early) and "clocks" in str(early)


# --- verify() does no I/O -------------------------------------------------------------------------


def test_verify_before_any_key_is_loaded_says_so_and_points_to_averify() -> None:
    """No jwks= and no fetch yet: not an unknown key (the key may well be published), a distinct error."""
    unloaded = TokenVerifier(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(KeysNotLoaded) as caught:
        unloaded.verify(access_token(ED))
    assert not isinstance(caught.value, UnknownKey)
    assert caught.value.reason == "keys_not_loaded"
    assert "averify(" in str(caught.value) and "refresh_keys()" in str(caught.value)
    # a token that is wrong whatever the keys still says what is wrong with it
    refused(access_token(ED, header={"typ": "JWT"}), WrongType, unloaded)
    # keys given up front count as loaded, even an empty set: then the kid is unknown
    refused(access_token(ED), UnknownKey, TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks={"keys": []}))
