"""TokenVerifier against a real Threshold: discovery, a cached JWKS, one refetch for a new key, and a
rate limit on refetches however many unknown kids arrive."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from joserfc import jws

from tests.client.conftest import Threshold
from tests.client.helpers import forge, generate
from tests.support import free_port
from threshold.client import TokenVerifier
from threshold.client.errors import DiscoveryFailed, KeysNotLoaded, UnknownKey

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/oauth2/jwks"


class CountingTransport(httpx.AsyncBaseTransport):
    """The default transport, with a record of every request path that went over the network."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def counting() -> AsyncIterator[tuple[httpx.AsyncClient, CountingTransport]]:
    transport = CountingTransport()
    async with httpx.AsyncClient(transport=transport) as http:
        yield http, transport


def kid_of(token: str) -> str:
    kid: str = jws.extract_compact(token.encode()).headers()["kid"]
    return kid


async def test_the_verifier_discovers_the_jwks_once_and_then_verifies_offline(
    threshold: Threshold, counting: tuple[httpx.AsyncClient, CountingTransport]
) -> None:
    http, transport = counting
    service = threshold.service
    verifier = TokenVerifier(issuer=threshold.issuer, audience=threshold.issuer, http_client=http)

    verified = await verifier.averify(threshold.token(service))
    assert verified.subject == service.client_id
    assert verified.client_id == service.client_id
    assert verified.scopes == frozenset({"api:read"})
    assert transport.paths == [DISCOVERY, JWKS]

    for _ in range(3):
        assert (await verifier.averify(threshold.token(service))).client_id == service.client_id
    assert verifier.verify(threshold.token(service)).client_id == service.client_id
    assert transport.paths == [DISCOVERY, JWKS], "a cached key must not cost a request"


async def test_a_rotated_key_costs_exactly_one_jwks_refetch(
    threshold: Threshold, counting: tuple[httpx.AsyncClient, CountingTransport]
) -> None:
    http, transport = counting
    service = threshold.service
    verifier = TokenVerifier(
        issuer=threshold.issuer, audience=threshold.issuer, http_client=http, refetch_interval=0.2
    )
    first = threshold.token(service)
    await verifier.averify(first)
    assert transport.paths == [DISCOVERY, JWKS]

    # First rotation: the new active key was published as `next` before it signed anything, so the
    # verifier already holds it.
    threshold.rotate_keys()
    second = threshold.token(service)
    assert kid_of(second) != kid_of(first)
    await asyncio.sleep(0.3)
    assert (await verifier.averify(second)).client_id == service.client_id
    assert transport.paths == [DISCOVERY, JWKS]

    # Second rotation: now the signing key is one this verifier has never seen.
    threshold.rotate_keys()
    third = threshold.token(service)
    assert kid_of(third) not in (kid_of(first), kid_of(second))
    active = [k["kid"] for k in threshold.signing_keys() if k["alg"] == "Ed25519" and k["state"] == "active"]
    assert active == [kid_of(third)]
    await asyncio.sleep(0.3)
    assert (await verifier.averify(third)).client_id == service.client_id
    assert transport.paths == [DISCOVERY, JWKS, JWKS], "one refetch, and no second discovery"

    for token in (third, threshold.token(service), second, first):  # retired keys stay published
        assert (await verifier.averify(token)).client_id == service.client_id
    assert transport.paths == [DISCOVERY, JWKS, JWKS]


async def test_unknown_kids_refetch_at_most_once_per_interval(
    threshold: Threshold, counting: tuple[httpx.AsyncClient, CountingTransport]
) -> None:
    http, transport = counting
    service = threshold.service
    interval = 1.0
    verifier = TokenVerifier(
        issuer=threshold.issuer, audience=threshold.issuer, http_client=http, refetch_interval=interval
    )
    await verifier.averify(threshold.token(service))
    assert transport.paths == [DISCOVERY, JWKS]

    attacker = generate("Ed25519", "unused")

    def junk() -> str:
        claims = {
            "iss": threshold.issuer,
            "aud": threshold.issuer,
            "sub": "x",
            "client_id": "x",
            "exp": 2**31,
        }
        return forge({"alg": "Ed25519", "kid": secrets.token_hex(8), "typ": "at+jwt"}, claims, key=attacker)

    async def burst(count: int) -> None:
        results = await asyncio.gather(
            *(verifier.averify(junk()) for _ in range(count)), return_exceptions=True
        )
        assert all(isinstance(result, UnknownKey) for result in results), results

    await burst(50)  # within the interval of the first fetch: no refetch at all
    assert transport.paths.count(JWKS) == 1

    await asyncio.sleep(interval + 0.1)
    await burst(50)  # concurrent: one refetch between them
    for _ in range(20):  # sequential, same interval: none
        with pytest.raises(UnknownKey):
            await verifier.averify(junk())
    assert transport.paths.count(JWKS) == 2

    await asyncio.sleep(interval + 0.1)
    await burst(50)
    assert transport.paths.count(JWKS) == 3
    assert transport.paths.count(DISCOVERY) == 1
    assert (await verifier.averify(threshold.token(service))).client_id == service.client_id
    assert transport.paths.count(JWKS) == 3


async def test_discovery_must_name_the_configured_issuer(threshold: Threshold) -> None:
    service = threshold.service
    token = threshold.token(service)
    impostor = threshold.issuer.replace("127.0.0.1", "localhost")  # same server, another name
    with pytest.raises(DiscoveryFailed):
        await TokenVerifier(issuer=impostor, audience=threshold.issuer).averify(token)
    with pytest.raises(DiscoveryFailed):
        await TokenVerifier(issuer=f"http://127.0.0.1:{free_port()}", audience="x").averify(token)


async def test_verify_before_the_first_fetch_says_so_and_averify_or_refresh_keys_loads_the_keys(
    threshold: Threshold, counting: tuple[httpx.AsyncClient, CountingTransport]
) -> None:
    """The keys are published all along: the error must not claim the kid is unknown."""
    http, transport = counting
    service = threshold.service
    token = threshold.token(service)
    verifier = TokenVerifier(issuer=threshold.issuer, audience=threshold.issuer, http_client=http)
    with pytest.raises(KeysNotLoaded) as caught:
        verifier.verify(token)
    assert not isinstance(caught.value, UnknownKey)
    assert "averify(" in str(caught.value)
    assert transport.paths == [], "verify() does no I/O"

    assert (await verifier.averify(token)).client_id == service.client_id
    assert verifier.verify(token).client_id == service.client_id

    at_startup = TokenVerifier(issuer=threshold.issuer, audience=threshold.issuer, http_client=http)
    await at_startup.refresh_keys()
    assert at_startup.verify(token).client_id == service.client_id
