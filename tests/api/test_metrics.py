"""GET /metrics (issue 11, hole 10d): with THRESHOLD_METRICS_TOKEN set it answers only a request that
carries that token as a bearer token; without one it is served only by a service on a loopback issuer
(`make run`), and is not found anywhere else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_problem

TOKEN = "metrics-token-for-tests-4f1d9c2a"


def _is_prometheus(response: httpx.Response) -> bool:
    return (
        response.status_code == 200
        and response.headers["content-type"].startswith("text/plain")
        and "# TYPE " in response.text
    )


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN.upper()}",
        "Bearer иван".encode(),  # bytes outside ASCII, as a client may send them
    ],
)
async def test_a_request_without_the_token_is_refused(
    client_factory: Callable[..., Any], authorization: str | bytes | None
) -> None:
    client: httpx.AsyncClient = await client_factory(metrics_token=TOKEN)
    value = authorization.encode() if isinstance(authorization, str) else authorization
    headers = {} if value is None else {b"authorization": value}
    response = await client.get("/metrics", headers=headers)
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "# TYPE" not in response.text


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_token_opens_the_metrics(client_factory: Callable[..., Any], scheme: str) -> None:
    client: httpx.AsyncClient = await client_factory(metrics_token=TOKEN)
    assert _is_prometheus(await client.get("/metrics", headers={"authorization": f"{scheme} {TOKEN}"}))


async def test_a_token_is_needed_on_a_loopback_issuer_too_once_set(
    client_factory: Callable[..., Any],
) -> None:
    client: httpx.AsyncClient = await client_factory(metrics_token=TOKEN, issuer="http://localhost:8400")
    assert_problem(await client.get("/metrics"), 401, "not_authenticated")


async def test_without_a_token_a_public_service_serves_no_metrics(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/metrics"), 404, "not_found")
    assert_problem(
        await client.get("/metrics", headers={"authorization": "Bearer anything"}), 404, "not_found"
    )


@pytest.mark.parametrize("issuer", ["http://localhost:8400", "http://127.0.0.1:8400", "http://[::1]:8400"])
async def test_without_a_token_a_loopback_service_serves_them(
    client_factory: Callable[..., Any], issuer: str
) -> None:
    client: httpx.AsyncClient = await client_factory(issuer=issuer)
    assert _is_prometheus(await client.get("/metrics"))


@pytest.mark.parametrize("token", ["", "short", "x" * 15])
def test_a_short_token_is_a_configuration_error(token: str) -> None:
    from pydantic import ValidationError

    from threshold.settings import Settings

    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(metrics_token=token)
