"""BackchannelLogout: every check of OpenID Connect Back-Channel Logout 1.0 section 2.6, each refusing
exactly the token that breaks it, with the issuer's keys served over HTTP on loopback; and the
endpoint (sections 2.5 and 2.8) in a FastAPI application served by uvicorn, driven with httpx."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwe, jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.client.helpers import SigningKey, b64json, forge, generate, jwks
from tests.support import free_port
from tests.support.threaded import serve
from threshold.client import BackchannelLogout, InMemoryReplayCache, LogoutEvent, TokenError
from threshold.client.backchannel import (
    BACKCHANNEL_LOGOUT_EVENT,
    MissingClaim,
    MissingLogoutEvent,
    NoncePresent,
    ReplayedToken,
    StaleToken,
    replay_key,
)
from threshold.client.errors import (
    DiscoveryFailed,
    Expired,
    ForbiddenHeader,
    InvalidSignature,
    MalformedToken,
    NotYetValid,
    UnknownKey,
    UnsupportedAlgorithm,
    WrongAudience,
    WrongIssuer,
    WrongType,
)
from threshold.client.keys import IssuerKeys

CLIENT_ID = "orders-app"
RSA = generate("RS256", "rs256-1")
EC = generate("ES256", "es256-1")
ED = generate("Ed25519", "ed25519-1")
ROTATED = generate("ES256", "es256-2")
ATTACKER = generate("RS256", "attacker")
KEYS = {"RS256": RSA, "ES256": EC, "Ed25519": ED}


# --- an issuer on loopback: discovery and JWKS ---------------------------------------------------


class Issuer:
    """Publishes `published` at /jwks, announced by its discovery document; records what it served."""

    def __init__(self) -> None:
        self.url = ""
        self.published: list[SigningKey] = [RSA, EC, ED]
        self.paths: list[str] = []

    async def _discovery(self, request: Request) -> JSONResponse:
        self.paths.append(request.url.path)
        return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

    async def _jwks(self, request: Request) -> JSONResponse:
        self.paths.append(request.url.path)
        return JSONResponse({"keys": [key.public_jwk() for key in self.published]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
            ]
        )


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    published = Issuer()
    with serve(published.app()) as url:
        published.url = url
        yield published


def receiver_for(issuer: Issuer, **options: Any) -> BackchannelLogout:
    """Keys through discovery: the receiver reads the issuer's metadata and JWKS over HTTP."""
    return BackchannelLogout(issuer=issuer.url, client_id=CLIENT_ID, **options)


# --- minting -------------------------------------------------------------------------------------


def logout_claims(issuer: Issuer, **overrides: Any) -> dict[str, Any]:
    """A valid logout token's claims (section 2.4), issued now; `name=None` removes a claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": issuer.url,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(12),
        "sub": "user-42",
        "sid": "sid-7",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def logout_token(key: SigningKey, issuer: Issuer, **overrides: Any) -> str:
    """Signed by joserfc, as Threshold signs it: `typ` logout+jwt, the key's `kid` and `alg`."""
    header = {"alg": key.alg, "kid": key.kid, "typ": "logout+jwt"}
    return jwt.encode(header, logout_claims(issuer, **overrides), key.key, algorithms=[key.alg])


def forged(header: dict[str, Any], claims: dict[str, Any], key: SigningKey | None = RSA, **kw: Any) -> str:
    """A hand-made JWS (tests.client.helpers.forge): headers and algorithms joserfc would not emit."""
    return forge({k: v for k, v in header.items() if v is not None}, claims, key=key, **kw)


async def refused(token: str, error: type[TokenError], receiver: BackchannelLogout) -> TokenError:
    """Exactly `error` (not a subclass or a parent: StaleToken is an Expired), and never the token."""
    with pytest.raises(TokenError) as caught:
        await receiver.verify(token)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert token not in str(caught.value) and token not in repr(caught.value.args)
    return caught.value


# --- what must pass ------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", list(KEYS))
async def test_a_valid_logout_token_yields_its_sid_and_sub(issuer: Issuer, alg: str) -> None:
    receiver = receiver_for(issuer)
    claims = logout_claims(issuer, sub="user-9", sid="sid-3", jti="jti-" + alg)
    token = jwt.encode(
        {"alg": alg, "kid": KEYS[alg].kid, "typ": "logout+jwt"}, claims, KEYS[alg].key, algorithms=[alg]
    )

    event = await receiver.verify(token)

    assert event == LogoutEvent(
        sub="user-9", sid="sid-3", jti="jti-" + alg, iat=claims["iat"], issuer=issuer.url, claims=claims
    )
    assert event.claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}


async def test_sid_alone_sub_alone_an_audience_list_and_no_exp_are_accepted(issuer: Issuer) -> None:
    receiver = receiver_for(issuer)
    only_sid = await receiver.verify(logout_token(EC, issuer, sub=None))
    assert (only_sid.sid, only_sid.sub) == ("sid-7", None)
    only_sub = await receiver.verify(logout_token(EC, issuer, sid=None))
    assert (only_sub.sid, only_sub.sub) == (None, "user-42")
    listed = await receiver.verify(logout_token(RSA, issuer, aud=["another-app", CLIENT_ID], exp=None))
    assert listed.sid == "sid-7"
    media_type = forged(
        {"alg": "RS256", "kid": RSA.kid, "typ": "application/logout+jwt"}, logout_claims(issuer)
    )
    assert (await receiver.verify(media_type)).sub == "user-42"


async def test_the_keys_come_from_discovery_once_and_are_then_cached(issuer: Issuer) -> None:
    before = len(issuer.paths)
    receiver = receiver_for(issuer)
    for key in (RSA, EC, ED, RSA):
        await receiver.verify(logout_token(key, issuer))
    assert issuer.paths[before:] == ["/.well-known/openid-configuration", "/jwks"]


async def test_keys_given_up_front_or_shared_need_no_discovery(issuer: Issuer) -> None:
    offline = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    token = forged(
        {"alg": "ES256", "kid": EC.kid, "typ": "logout+jwt"}, logout_claims(issuer, iss=offline), key=EC
    )
    given = BackchannelLogout(issuer=offline, client_id=CLIENT_ID, jwks=jwks(EC))
    assert (await given.verify(token)).issuer == offline
    shared = IssuerKeys(issuer=offline, refetch_interval=30, http_client=None, jwks=jwks(EC))
    receiver = BackchannelLogout(issuer=offline + "/", client_id=CLIENT_ID, keys=shared, detect_replays=False)
    assert (await receiver.verify(token)).sid == "sid-7"
    with pytest.raises(ValueError, match="keys of"):
        BackchannelLogout(issuer=issuer.url, client_id=CLIENT_ID, keys=shared)
    with pytest.raises(ValueError, match="not both"):
        BackchannelLogout(issuer=offline, client_id=CLIENT_ID, keys=shared, jwks=jwks(EC))


# --- section 2.6 step 1: a JWS, neither a JWE nor unsigned ---------------------------------------


async def test_an_encrypted_logout_token_is_refused(issuer: Issuer) -> None:
    token = jwe.encrypt_compact(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM"},
        json.dumps(logout_claims(issuer)),
        RSA.key,
        algorithms=["RSA-OAEP-256", "A256GCM"],
    )
    assert token.count(".") == 4
    error = await refused(token, MalformedToken, receiver_for(issuer))
    assert "encrypted" in str(error)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "%%%.%%%.%%%", "e30.e30.", "é.e30.AAAA"])
async def test_what_is_not_a_compact_jws_is_malformed(issuer: Issuer, token: str) -> None:
    with pytest.raises((MalformedToken, UnsupportedAlgorithm)):
        await receiver_for(issuer).verify(token)


async def test_a_huge_token_is_refused_before_any_work(issuer: Issuer) -> None:
    token = logout_token(RSA, issuer, padding="x" * 20_000)
    await refused(token, MalformedToken, receiver_for(issuer))


# --- section 2.6 step 2: the algorithm and the issuer's signature --------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_is_refused(issuer: Issuer, alg: str) -> None:
    header = {"alg": alg, "kid": RSA.kid, "typ": "logout+jwt"}
    unsigned = forged(header, logout_claims(issuer), key=None)
    await refused(unsigned, UnsupportedAlgorithm, receiver_for(issuer))
    stolen_signature = logout_token(RSA, issuer).rsplit(".", 1)[1]
    await refused(unsigned + stolen_signature, UnsupportedAlgorithm, receiver_for(issuer))


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS256", "ES256"])
async def test_hs256_with_the_public_key_as_secret_is_refused(issuer: Issuer, key: SigningKey) -> None:
    """Key confusion: HMAC with the issuer's (public) verification key as the shared secret."""
    receiver = receiver_for(issuer)
    for secret in (key.public_pem(), json.dumps(key.public_jwk()).encode()):
        header = {"alg": "HS256", "kid": key.kid, "typ": "logout+jwt"}
        token = forged(header, logout_claims(issuer), key=None, hmac_secret=secret)
        await refused(token, UnsupportedAlgorithm, receiver)


async def test_an_algorithm_outside_the_allow_list_is_refused(issuer: Issuer) -> None:
    es_only = receiver_for(issuer, algorithms=("ES256",))
    await refused(logout_token(RSA, issuer), UnsupportedAlgorithm, es_only)
    await refused(logout_token(ED, issuer), UnsupportedAlgorithm, es_only)
    assert (await es_only.verify(logout_token(EC, issuer))).sid == "sid-7"


@pytest.mark.parametrize("algorithms", [("HS256",), ("none",), ("RS256", "HS256"), ()], ids=str)
def test_the_constructor_refuses_symmetric_or_empty_allow_lists(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        BackchannelLogout(issuer="https://auth.example.test", client_id=CLIENT_ID, algorithms=algorithms)


async def test_a_kid_of_one_key_type_with_the_alg_of_another_is_refused(issuer: Issuer) -> None:
    token = forged({"alg": "ES256", "kid": RSA.kid, "typ": "logout+jwt"}, logout_claims(issuer), key=EC)
    await refused(token, UnsupportedAlgorithm, receiver_for(issuer))


async def test_a_key_published_for_one_algorithm_is_not_used_with_another(issuer: Issuer) -> None:
    """RS256 and PS256 both take an RSA key: the `alg` the JWKS names for the key decides."""
    receiver = receiver_for(issuer, algorithms=("RS256", "PS256"))
    header = {"alg": "PS256", "kid": RSA.kid, "typ": "logout+jwt"}
    token = jwt.encode(header, logout_claims(issuer), RSA.key, algorithms=["PS256"])
    await refused(token, UnsupportedAlgorithm, receiver)
    assert (await receiver.verify(logout_token(RSA, issuer))).sid == "sid-7"


async def test_a_key_published_without_alg_is_used_only_with_an_algorithm_of_its_type() -> None:
    offline = f"http://127.0.0.1:{free_port()}"
    receiver = BackchannelLogout(issuer=offline, client_id=CLIENT_ID, jwks=jwks(RSA, EC, with_alg=False))
    claims = {**logout_claims(Issuer()), "iss": offline}
    await refused(
        forged({"alg": "ES256", "kid": RSA.kid, "typ": "logout+jwt"}, claims, key=EC),
        UnsupportedAlgorithm,
        receiver,
    )
    await refused(
        forged({"alg": "RS256", "kid": EC.kid, "typ": "logout+jwt"}, claims, key=RSA),
        UnsupportedAlgorithm,
        receiver,
    )
    assert (
        await receiver.verify(forged({"alg": "ES256", "kid": EC.kid, "typ": "logout+jwt"}, claims, key=EC))
    ).sid


@pytest.mark.parametrize(
    ("name", "value"),
    [("jwk", ATTACKER.public_jwk()), ("jku", "https://attacker.test/jwks"), ("crit", ["exp"])],
)
async def test_headers_that_bring_keys_or_rules_are_refused(issuer: Issuer, name: str, value: object) -> None:
    header = {"alg": "RS256", "kid": ATTACKER.kid, "typ": "logout+jwt", name: value}
    await refused(forged(header, logout_claims(issuer), key=ATTACKER), ForbiddenHeader, receiver_for(issuer))


async def test_a_tampered_token_is_refused(issuer: Issuer) -> None:
    receiver = receiver_for(issuer)
    header, payload, signature = logout_token(RSA, issuer, sid="sid-mine").split(".")
    other_session = b64json(logout_claims(issuer, sid="sid-of-someone-else"))
    await refused(f"{header}.{other_session}.{signature}", InvalidSignature, receiver)
    flipped = bytearray(signature.encode())
    flipped[10] = ord("A") if flipped[10] != ord("A") else ord("B")
    await refused(f"{header}.{payload}.{flipped.decode()}", InvalidSignature, receiver)
    await refused(f"{header}.{payload}.", InvalidSignature, receiver)
    impostor = generate("RS256", RSA.kid)  # the issuer's kid, someone else's key
    await refused(logout_token(impostor, issuer), InvalidSignature, receiver)


async def test_an_unknown_kid_refetches_the_jwks_once_and_finds_the_rotated_key(issuer: Issuer) -> None:
    receiver = receiver_for(issuer, refetch_interval=0.2)
    before = len(issuer.paths)
    await receiver.verify(logout_token(RSA, issuer))
    assert issuer.paths[before:] == ["/.well-known/openid-configuration", "/jwks"]
    issuer.published = [RSA, EC, ED, ROTATED]  # the issuer rotates
    try:
        await asyncio.sleep(0.25)
        event = await receiver.verify(logout_token(ROTATED, issuer, sid="after-rotation"))
        assert event.sid == "after-rotation"
        assert issuer.paths[before:] == ["/.well-known/openid-configuration", "/jwks", "/jwks"]

        error = await refused(logout_token(ATTACKER, issuer), UnknownKey, receiver)
        assert isinstance(error, UnknownKey) and error.kid == ATTACKER.kid
        assert issuer.paths[before:].count("/jwks") == 2, "within refetch_interval: no further fetch"
        await asyncio.sleep(0.25)
        await refused(logout_token(ATTACKER, issuer), UnknownKey, receiver)  # refetched, still unknown
        assert issuer.paths[before:].count("/jwks") == 3
    finally:
        issuer.published = [RSA, EC, ED]


async def test_an_unreachable_issuer_is_a_discovery_failure_not_a_bad_token(issuer: Issuer) -> None:
    receiver = BackchannelLogout(issuer=f"http://127.0.0.1:{free_port()}", client_id=CLIENT_ID)
    with pytest.raises(DiscoveryFailed):
        await receiver.verify(logout_token(RSA, issuer))


# --- explicit typing (section 2.4) ---------------------------------------------------------------


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "secevent+jwt", 7])
async def test_a_typ_other_than_logout_jwt_is_refused(issuer: Issuer, typ: object) -> None:
    header = {"alg": "RS256", "kid": RSA.kid, "typ": typ}
    error = await refused(forged(header, logout_claims(issuer)), WrongType, receiver_for(issuer))
    assert isinstance(error, WrongType) and error.expected == "logout+jwt"
    lenient = receiver_for(issuer, accept_untyped=True)  # lenient about an absent typ, never a wrong one
    await refused(forged(header, logout_claims(issuer)), WrongType, lenient)


async def test_an_absent_typ_is_refused_unless_the_receiver_accepts_untyped_tokens(issuer: Issuer) -> None:
    untyped = forged({"alg": "RS256", "kid": RSA.kid}, logout_claims(issuer))
    error = await refused(untyped, WrongType, receiver_for(issuer))
    assert isinstance(error, WrongType) and error.actual is None
    assert (await receiver_for(issuer, accept_untyped=True).verify(untyped)).sid == "sid-7"


# --- section 2.6 step 3: iss, aud, iat, exp ------------------------------------------------------


async def test_a_wrong_issuer_is_refused(issuer: Issuer) -> None:
    receiver = receiver_for(issuer)
    for iss in ("https://evil.example.test", issuer.url + "/", issuer.url + ".evil.test", None, 7):
        await refused(logout_token(RSA, issuer, iss=iss), WrongIssuer, receiver)


async def test_a_token_for_another_client_is_refused(issuer: Issuer) -> None:
    receiver = receiver_for(issuer)
    for aud in ("another-app", ["another-app", "third-app"], None, [[CLIENT_ID]], {CLIENT_ID: 1}, 7):
        error = await refused(logout_token(RSA, issuer, aud=aud), WrongAudience, receiver)
        assert isinstance(error, WrongAudience) and error.expected == (CLIENT_ID,)


@pytest.mark.parametrize(
    "iat", [None, "1700000000", True, float("nan")], ids=["absent", "string", "bool", "nan"]
)
async def test_iat_must_be_present_and_a_number(issuer: Issuer, iat: object) -> None:
    claims = logout_claims(issuer, iat=iat)
    token = forged({"alg": "RS256", "kid": RSA.kid, "typ": "logout+jwt"}, claims)
    error = await refused(token, MissingClaim, receiver_for(issuer))
    assert isinstance(error, MissingClaim) and error.claim == "iat" and error.reason == "missing_claim"


async def test_a_token_older_than_max_age_is_refused(issuer: Issuer) -> None:
    now = int(time.time())
    receiver = receiver_for(issuer, max_age=120, leeway=30)
    error = await refused(logout_token(RSA, issuer, iat=now - 200, exp=None), StaleToken, receiver)
    assert "200 s ago" in str(error) or "201 s ago" in str(error)
    await refused(logout_token(RSA, issuer, iat=now - 3600, exp=now + 60), StaleToken, receiver)
    assert (await receiver.verify(logout_token(RSA, issuer, iat=now - 140, exp=None))).sid == "sid-7"
    strict = receiver_for(issuer, max_age=60, leeway=0)
    await refused(logout_token(RSA, issuer, iat=now - 90, exp=None), StaleToken, strict)


async def test_a_token_issued_in_the_future_beyond_the_leeway_is_refused(issuer: Issuer) -> None:
    now = int(time.time())
    receiver = receiver_for(issuer, leeway=30)
    await refused(logout_token(RSA, issuer, iat=now + 120, exp=now + 240), NotYetValid, receiver)
    assert (await receiver.verify(logout_token(RSA, issuer, iat=now + 10))).sid == "sid-7"


async def test_an_expired_token_is_refused(issuer: Issuer) -> None:
    now = int(time.time())
    receiver = receiver_for(issuer, leeway=30)
    await refused(logout_token(RSA, issuer, iat=now - 60, exp=now - 40), Expired, receiver)
    await refused(logout_token(RSA, issuer, exp="never"), MalformedToken, receiver)
    assert (await receiver.verify(logout_token(RSA, issuer, iat=now - 60, exp=now - 10))).sid == "sid-7"


# --- section 2.4: jti, sub or sid, events, no nonce ----------------------------------------------


@pytest.mark.parametrize("jti", [None, "", 42], ids=["absent", "empty", "number"])
async def test_jti_must_be_present(issuer: Issuer, jti: object) -> None:
    error = await refused(logout_token(RSA, issuer, jti=jti), MissingClaim, receiver_for(issuer))
    assert isinstance(error, MissingClaim) and error.claim == "jti"


async def test_a_token_naming_neither_sub_nor_sid_is_refused(issuer: Issuer) -> None:
    receiver = receiver_for(issuer)
    error = await refused(logout_token(RSA, issuer, sub=None, sid=None), MissingClaim, receiver)
    assert isinstance(error, MissingClaim) and error.claim == "sub or sid"
    wrongs: list[dict[str, Any]] = [{"sid": 7}, {"sub": ""}, {"sub": ["user-42"], "sid": None}]
    for wrong in wrongs:
        await refused(logout_token(RSA, issuer, **wrong), MissingClaim, receiver)


@pytest.mark.parametrize(
    "events",
    [
        None,
        {},
        {"http://schemas.openid.net/event/backchannel-logout-x": {}},
        {"https://schemas.openid.net/event/backchannel-logout": {}},
        {BACKCHANNEL_LOGOUT_EVENT: None},
        {BACKCHANNEL_LOGOUT_EVENT: []},
        {BACKCHANNEL_LOGOUT_EVENT: "logout"},
        {BACKCHANNEL_LOGOUT_EVENT: True},
        [BACKCHANNEL_LOGOUT_EVENT],  # an early draft's shape
        BACKCHANNEL_LOGOUT_EVENT,
    ],
    ids=[
        "absent",
        "empty",
        "another-member",
        "https-member",
        "value-null",
        "value-list",
        "value-string",
        "value-true",
        "events-a-list",
        "events-a-string",
    ],
)
async def test_events_must_hold_the_backchannel_logout_member_as_an_object(
    issuer: Issuer, events: object
) -> None:
    await refused(logout_token(RSA, issuer, events=events), MissingLogoutEvent, receiver_for(issuer))


async def test_other_events_beside_the_logout_event_are_accepted(issuer: Issuer) -> None:
    events = {BACKCHANNEL_LOGOUT_EVENT: {"reason": "logout"}, "https://example.test/other": {}}
    event = await receiver_for(issuer).verify(logout_token(RSA, issuer, events=events))
    assert event.claims["events"][BACKCHANNEL_LOGOUT_EVENT] == {"reason": "logout"}


async def test_a_nonce_is_refused(issuer: Issuer) -> None:
    await refused(logout_token(RSA, issuer, nonce="n-0S6_WzA2Mj"), NoncePresent, receiver_for(issuer))


async def test_an_id_token_of_the_same_issuer_does_not_pass_for_a_logout_token(issuer: Issuer) -> None:
    """Section 4.1, cross-JWT confusion: typ JWT, a nonce and no events; any one refuses it."""
    id_token: dict[str, Any] = {
        "iss": issuer.url,
        "aud": CLIENT_ID,
        "sub": "user-42",
        "sid": "sid-7",
        "nonce": "n",
    }
    now = int(time.time())
    id_token.update({"iat": now, "exp": now + 300, "jti": "id-1"})
    receiver = receiver_for(issuer, accept_untyped=True)
    await refused(jwt.encode({"alg": "RS256", "kid": RSA.kid}, id_token, RSA.key), WrongType, receiver)
    untyped = forged({"alg": "RS256", "kid": RSA.kid}, id_token)
    await refused(untyped, MissingLogoutEvent, receiver)


# --- section 2.6 step 7: replays -----------------------------------------------------------------


async def test_a_replayed_jti_is_refused(issuer: Issuer) -> None:
    receiver = receiver_for(issuer)
    token = logout_token(RSA, issuer, jti="jti-once")
    await receiver.verify(token)
    error = await refused(token, ReplayedToken, receiver)
    assert error.reason == "replayed"
    await refused(
        logout_token(EC, issuer, jti="jti-once"), ReplayedToken, receiver
    )  # another token, same jti
    assert (await receiver.verify(logout_token(RSA, issuer))).sid == "sid-7"  # another jti


async def test_of_concurrent_deliveries_of_one_token_exactly_one_is_accepted(issuer: Issuer) -> None:
    receiver = receiver_for(issuer)
    await receiver.verify(logout_token(EC, issuer))  # keys loaded
    token = logout_token(RSA, issuer)
    results = await asyncio.gather(*(receiver.verify(token) for _ in range(10)), return_exceptions=True)
    assert sum(isinstance(r, LogoutEvent) for r in results) == 1
    assert sum(isinstance(r, ReplayedToken) for r in results) == 9


async def test_replays_are_detected_across_receivers_sharing_a_cache_and_not_when_off(issuer: Issuer) -> None:
    shared = InMemoryReplayCache()  # stands in for Redis, shared by two worker processes
    first, second = receiver_for(issuer, replay_cache=shared), receiver_for(issuer, replay_cache=shared)
    token = logout_token(RSA, issuer)
    await first.verify(token)
    await refused(token, ReplayedToken, second)
    unchecked = receiver_for(issuer, detect_replays=False)
    assert (await unchecked.verify(token)).jti == (await unchecked.verify(token)).jti


async def test_a_jti_is_remembered_as_long_as_its_token_could_be_accepted(issuer: Issuer) -> None:
    """The key is kept until the iat (or exp) check would refuse the token anyway, and no longer."""
    remembered: dict[str, float] = {}

    class Recording(InMemoryReplayCache):
        async def add(self, key: str, *, ttl: float) -> bool:
            remembered[key] = ttl
            return await super().add(key, ttl=ttl)

    receiver = receiver_for(issuer, replay_cache=Recording(), max_age=120, leeway=30)
    now = int(time.time())
    event = await receiver.verify(logout_token(RSA, issuer, iat=now - 100, exp=None))
    assert 45 <= remembered[replay_key(issuer.url, event.jti)] <= 51  # 100 s old of 120 + 30
    event = await receiver.verify(logout_token(RSA, issuer, iat=now, exp=now + 20))
    assert 45 <= remembered[replay_key(issuer.url, event.jti)] <= 51  # exp + leeway comes first


async def test_the_in_memory_cache_forgets_a_key_after_its_ttl() -> None:
    now = [1000.0]
    cache = InMemoryReplayCache(clock=lambda: now[0])
    assert await cache.add("k", ttl=10)
    assert not await cache.add("k", ttl=10)
    now[0] += 9.9
    assert not await cache.add("k", ttl=10)
    now[0] += 0.2
    assert await cache.add("k", ttl=10)
    now[0] += 30
    assert await cache.add("other", ttl=10)
    await cache.discard("other")
    assert await cache.add("other", ttl=10)


# --- the errors ----------------------------------------------------------------------------------


def test_every_refusal_has_a_stable_reason() -> None:
    assert {
        cls.__name__: cls.reason
        for cls in (MissingClaim, StaleToken, MissingLogoutEvent, NoncePresent, ReplayedToken)
    } == {
        "MissingClaim": "missing_claim",
        "StaleToken": "stale",
        "MissingLogoutEvent": "missing_logout_event",
        "NoncePresent": "nonce_present",
        "ReplayedToken": "replayed",
    }
    assert issubclass(MissingClaim, MalformedToken) and issubclass(StaleToken, Expired)


# --- the endpoint, served by uvicorn -------------------------------------------------------------


class Application:
    """A FastAPI application with the endpoint at /backchannel-logout; records the events it got."""

    def __init__(self, issuer: Issuer, *, failures: int = 0) -> None:
        self.receiver = receiver_for(issuer)
        self.events: list[LogoutEvent] = []
        self.failures = failures

    async def end_sessions(self, event: LogoutEvent) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the session store is down")
        self.events.append(event)

    def app(self) -> FastAPI:
        api = FastAPI()
        endpoint = self.receiver.endpoint(self.end_sessions, max_body_bytes=20_000)
        api.add_route("/backchannel-logout", endpoint, methods=["POST"])
        return api


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def deliver(http: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    """What Threshold sends (section 2.5): a form POST with the logout token."""
    return await http.post(f"{url}/backchannel-logout", data={"logout_token": token})


def assert_refused(response: httpx.Response, error: str = "invalid_request") -> str:
    """Section 2.8: 400, a JSON error, and never cached."""
    assert response.status_code == 400, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error, body
    description: str = body["error_description"]
    return description


async def test_a_valid_logout_token_ends_the_sessions_and_answers_200_no_store(
    issuer: Issuer, http: httpx.AsyncClient
) -> None:
    application = Application(issuer)
    with serve(application.app()) as url:
        response = await deliver(http, url, logout_token(RSA, issuer, sid="sid-77", sub="user-77"))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.content == b""
        [event] = application.events
        assert (event.sid, event.sub, event.issuer) == ("sid-77", "user-77", issuer.url)

        only_sub = await deliver(http, url, logout_token(EC, issuer, sid=None, sub="user-78"))
        assert only_sub.status_code == 200
        assert [(e.sid, e.sub) for e in application.events[1:]] == [(None, "user-78")]


async def test_a_bad_token_is_400_invalid_request_and_ends_nothing(
    issuer: Issuer, http: httpx.AsyncClient
) -> None:
    application = Application(issuer)
    header, _, signature = logout_token(RSA, issuer).split(".")
    bad = {
        "wrong_audience": logout_token(RSA, issuer, aud="another-app"),
        "invalid_signature": f"{header}.{b64json(logout_claims(issuer, sid='other'))}.{signature}",
        "missing_logout_event": logout_token(RSA, issuer, events=None),
        "nonce_present": logout_token(RSA, issuer, nonce="n"),
        "unsupported_algorithm": forged({"alg": "none", "kid": RSA.kid, "typ": "logout+jwt"}, {}, key=None),
        "malformed": "not-a-token",
    }
    with serve(application.app()) as url:
        for reason, token in bad.items():
            description = assert_refused(await deliver(http, url, token))
            assert f"({reason})" in description, description
            assert token not in description
        token = logout_token(RSA, issuer)
        assert (await deliver(http, url, token)).status_code == 200
        replayed = assert_refused(await deliver(http, url, token))
        assert "(replayed)" in replayed
    assert len(application.events) == 1


async def test_the_endpoint_takes_only_a_form_post_with_one_logout_token(
    issuer: Issuer, http: httpx.AsyncClient
) -> None:
    application = Application(issuer)
    token = logout_token(RSA, issuer)
    endpoint = "/backchannel-logout"
    with serve(application.app()) as url:
        got = await http.get(f"{url}{endpoint}", params={"logout_token": token})
        assert (got.status_code, got.headers["allow"]) == (405, "POST")  # the framework's answer

        assert_refused(await http.post(f"{url}{endpoint}", json={"logout_token": token}))
        assert_refused(await http.post(f"{url}{endpoint}", content=f"logout_token={token}"))  # no type
        assert_refused(await http.post(f"{url}{endpoint}", data={"token": token}))
        assert_refused(await http.post(f"{url}{endpoint}", data={"logout_token": [token, token]}))
        assert_refused(await http.post(f"{url}{endpoint}", data={"logout_token": token, "pad": "x" * 20_000}))

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
            yield f"logout_token={token}&pad=".encode()
            for _ in range(30):
                yield b"x" * 1000

        form = {"content-type": "application/x-www-form-urlencoded"}
        assert_refused(await http.post(f"{url}{endpoint}", content=chunked(), headers=form))
        assert application.events == []

        with_charset = {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"}
        ok = await http.post(
            f"{url}{endpoint}", content=f"logout_token={token}&state=x", headers=with_charset
        )
        assert ok.status_code == 200, ok.text
        assert len(application.events) == 1


async def test_a_body_announced_larger_than_the_limit_is_refused_without_waiting_for_it(
    issuer: Issuer,
) -> None:
    application = Application(issuer)
    with serve(application.app()) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /backchannel-logout HTTP/1.1\r\nHost: app.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000000\r\n\r\n"
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=5)
        writer.close()
        await writer.wait_closed()
    assert status.startswith(b"HTTP/1.1 400 ")


async def test_when_the_application_cannot_end_the_sessions_the_token_can_be_delivered_again(
    issuer: Issuer, http: httpx.AsyncClient
) -> None:
    application = Application(issuer, failures=1)
    token = logout_token(RSA, issuer, sid="sid-retry")
    with serve(application.app()) as url:
        description = assert_refused(await deliver(http, url, token), "temporarily_unavailable")
        assert "session store" not in description  # the application's error stays in its log
        assert application.events == []
        assert (await deliver(http, url, token)).status_code == 200
    assert [e.sid for e in application.events] == ["sid-retry"]


async def test_an_unreachable_issuer_is_400_temporarily_unavailable(http: httpx.AsyncClient) -> None:
    unreachable = Issuer()
    unreachable.url = f"http://127.0.0.1:{free_port()}"
    application = Application(unreachable)
    with serve(application.app()) as url:
        assert_refused(await deliver(http, url, logout_token(RSA, unreachable)), "temporarily_unavailable")
    assert application.events == []


async def test_the_endpoint_served_on_its_own_with_a_lifespan(
    issuer: Issuer, http: httpx.AsyncClient
) -> None:
    events: list[LogoutEvent] = []

    async def end_sessions(event: LogoutEvent) -> None:
        events.append(event)

    endpoint = receiver_for(issuer).asgi_app(end_sessions)
    with serve(endpoint, lifespan="on") as url:
        for method in ("GET", "PUT", "DELETE"):
            response = await http.request(method, url)
            assert response.status_code == 405
            assert response.headers["allow"] == "POST" and response.headers["cache-control"] == "no-store"
            assert response.json()["error"] == "invalid_request"
        response = await http.post(url, data={"logout_token": logout_token(ED, issuer, sid="sid-ed")})
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
    assert [e.sid for e in events] == ["sid-ed"]
