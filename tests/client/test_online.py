"""TokenVerifier's online mode: every token that passes the offline checks is introspected at the provider
(RFC 7662) with the API's own client credentials; a positive answer is reused for `cache_seconds` (the
bound on how long a revoked token is still accepted); anything but a clear answer fails closed."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from tests.client.conftest import ServiceClient, Threshold, register_service
from tests.client.helpers import ISSUER, access_token, jwks
from tests.client.test_auth import FLAVORS, KEY, assert_bearer_error, build_app, call
from tests.support import free_port
from threshold.client import Introspection, ThresholdAuth, TokenVerifier
from threshold.client.errors import DiscoveryFailed, InvalidSignature, Revoked

ENDPOINT = f"{ISSUER}/oauth2/introspect"
API = ServiceClient("api-client", "api-secret")

Handler = Callable[[httpx.Request], httpx.Response]


class Provider:
    """A stand-in for the provider's introspection endpoint: records what it was asked, answers `answer`."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.asked: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, json={"active": True}))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        return self.answer(request)

    def verifier(self, **online: float | str) -> TokenVerifier:
        introspection = Introspection(
            client_id=API.client_id,
            client_secret=API.client_secret,
            endpoint=ENDPOINT,
            **online,  # type: ignore[arg-type]
        )
        return TokenVerifier(
            issuer=ISSUER,
            audience="https://api.example.test",
            jwks=jwks(KEY),
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(self.handle)),
            introspection=introspection,
        )


async def test_each_token_is_introspected_with_the_apis_own_credentials() -> None:
    provider = Provider()
    token = access_token(KEY)

    verified = await provider.verifier(cache_seconds=0).averify(token)

    assert verified.subject == "user-123"
    [request] = provider.asked
    assert str(request.url) == ENDPOINT and request.method == "POST"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {"token": token, "token_type_hint": "access_token"}
    scheme, _, credentials = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{API.client_id}:{API.client_secret}"


async def test_an_inactive_token_is_refused_as_revoked() -> None:
    provider = Provider(lambda request: httpx.Response(200, json={"active": False}))

    with pytest.raises(Revoked) as refused:
        await provider.verifier().averify(access_token(KEY))

    assert refused.value.reason == "revoked"
    assert "introspect" in str(refused.value)


async def test_a_positive_answer_is_reused_for_cache_seconds_and_no_longer() -> None:
    answers = [True, True, False]
    provider = Provider(lambda request: httpx.Response(200, json={"active": answers.pop(0)}))
    verifier = provider.verifier(cache_seconds=0.3)
    token = access_token(KEY)

    for _ in range(3):
        await verifier.averify(token)
    assert len(provider.asked) == 1  # the first answer served the next two
    await verifier.averify(access_token(KEY, jti="another"))  # another token is asked about on its own
    assert len(provider.asked) == 2
    await asyncio.sleep(0.35)  # past the bound: asked again, and now revoked
    with pytest.raises(Revoked):
        await verifier.averify(token)
    assert len(provider.asked) == 3


async def test_concurrent_requests_with_one_token_share_one_introspection() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"active": True})

    asked: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return await slow(request)

    verifier = TokenVerifier(
        issuer=ISSUER,
        audience="https://api.example.test",
        jwks=jwks(KEY),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        introspection=Introspection(client_id="a", client_secret="b", endpoint=ENDPOINT),
    )
    token = access_token(KEY)

    await asyncio.gather(*(verifier.averify(token) for _ in range(10)))

    assert len(asked) == 1


async def test_a_negative_answer_is_not_cached_and_never_becomes_positive_by_caching() -> None:
    answers = [False, True]
    provider = Provider(lambda request: httpx.Response(200, json={"active": answers.pop(0)}))
    verifier = provider.verifier(cache_seconds=60)
    token = access_token(KEY)

    with pytest.raises(Revoked):
        await verifier.averify(token)
    await verifier.averify(token)  # (a provider that changed its mind is asked again)
    assert len(provider.asked) == 2


async def test_the_offline_checks_come_first() -> None:
    provider = Provider()
    genuine = access_token(KEY)
    header, payload, signature = genuine.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"

    with pytest.raises(InvalidSignature):
        await provider.verifier().averify(tampered)

    assert provider.asked == []


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="oops"),
        httpx.Response(503, json={"error": "temporarily_unavailable"}),
        httpx.Response(401, json={"error": "invalid_client"}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=["active", True]),
        httpx.Response(200, json={"active": "true"}),
        httpx.Response(200, json={}),
        httpx.Response(302, headers={"location": "https://elsewhere.example/"}),
    ],
    ids=["500", "503", "401", "not-json", "not-an-object", "active-a-string", "no-active", "redirect"],
)
async def test_anything_but_a_clear_answer_fails_closed(answer: httpx.Response) -> None:
    provider = Provider(lambda request: answer)

    with pytest.raises(DiscoveryFailed) as failed:
        await provider.verifier().averify(access_token(KEY))

    assert failed.value.reason == "discovery_failed"


async def test_an_unreachable_provider_fails_closed_and_is_asked_again_next_time() -> None:
    verifier = TokenVerifier(
        issuer=ISSUER,
        audience="https://api.example.test",
        jwks=jwks(KEY),
        introspection=Introspection(
            client_id="a", client_secret="b", endpoint=f"http://127.0.0.1:{free_port()}/oauth2/introspect"
        ),
    )
    try:
        for _ in range(2):
            with pytest.raises(DiscoveryFailed) as failed:
                await verifier.averify(access_token(KEY))
            assert "retry" in str(failed.value) or "again" in str(failed.value)
    finally:
        await verifier.aclose()


def test_verify_without_io_cannot_answer_online() -> None:
    provider = Provider()

    with pytest.raises(RuntimeError, match="averify"):
        provider.verifier().verify(access_token(KEY))


def test_the_cache_bound_must_be_a_few_seconds_at_most() -> None:
    for bad in (-1.0, 301.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="cache_seconds"):
            Introspection(client_id="a", client_secret="b", cache_seconds=bad)
    assert "b" not in repr(Introspection(client_id="a", client_secret="b"))  # the secret stays out of logs


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_through_threshold_auth_a_revoked_token_is_401_and_an_outage_503(flavor: str) -> None:
    revoked = Provider(lambda request: httpx.Response(200, json={"active": False}))
    down = Provider(lambda request: httpx.Response(502, text="bad gateway"))

    refused = await call(
        build_app(flavor, ThresholdAuth(revoked.verifier())), authorization=f"Bearer {access_token(KEY)}"
    )
    unavailable = await call(
        build_app(flavor, ThresholdAuth(down.verifier())), authorization=f"Bearer {access_token(KEY)}"
    )

    assert_bearer_error(refused, 401, "invalid_token", "revoked")
    assert unavailable.status_code == 503 and unavailable.json()["reason"] == "discovery_failed"


# --- against a real Threshold ---------------------------------------------------------------------


def _revoke(threshold: Threshold, client: ServiceClient, token: str) -> None:
    response = httpx.post(
        f"{threshold.issuer}/oauth2/revoke",
        data={"token": token},
        auth=(client.client_id, client.client_secret),
        timeout=30,
    )
    assert response.status_code == 200, response.text


async def test_a_token_revoked_at_the_provider_is_refused_online_and_still_accepted_offline(
    threshold: Threshold,
) -> None:
    api = register_service(threshold.deployment, "online-api", "api:read")
    token = threshold.token(threshold.service, "api:read")
    offline = TokenVerifier(issuer=threshold.issuer, audience=threshold.issuer)
    online = TokenVerifier(
        issuer=threshold.issuer,
        audience=threshold.issuer,
        introspection=Introspection(
            client_id=api.client_id, client_secret=api.client_secret, cache_seconds=0
        ),
    )
    try:
        assert (await online.averify(token)).client_id == threshold.service.client_id
        assert (await offline.averify(token)).client_id == threshold.service.client_id

        _revoke(threshold, threshold.service, token)

        with pytest.raises(Revoked):
            await online.averify(token)
        assert (await offline.averify(token)).client_id == threshold.service.client_id  # the tradeoff
    finally:
        await online.aclose()


async def test_wrong_api_credentials_fail_closed_against_a_real_provider(threshold: Threshold) -> None:
    token = threshold.token(threshold.service, "api:read")
    online = TokenVerifier(
        issuer=threshold.issuer,
        audience=threshold.issuer,
        introspection=Introspection(client_id=threshold.service.client_id, client_secret="wrong"),
    )
    try:
        with pytest.raises(DiscoveryFailed) as failed:
            await online.averify(token)
        assert "client_id" in str(failed.value)
    finally:
        await online.aclose()
