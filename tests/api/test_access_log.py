"""The access log: one line per request, no query string, a request id echoed to the client."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ISSUER

LOGGER = "threshold.access"
GENERATED_ID = re.compile(r"[0-9a-f]{16}")


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The log capture, with the access logger enabled at INFO."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The access-log lines written by this test so far."""
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


async def test_one_line_per_request_without_the_query_string(
    client: httpx.AsyncClient, access_log: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/oauth2/authorize?code=secret-code&state=secret-state&client_id=x")
    await client.get("/healthz")
    await client.get("/no-such-page?token=secret-token")
    logged = lines(access_log)
    assert len(logged) == 3, logged
    first = logged[0]
    assert first.startswith(f"GET /oauth2/authorize {response.status_code} ")
    assert re.fullmatch(r"GET /oauth2/authorize \d{3} \d+\.\dms rid=[0-9a-f]{16} ip=203\.0\.113\.7", first)
    assert re.match(r"GET /healthz 200 \d+\.\dms ", logged[1])
    assert logged[2].startswith("GET /no-such-page 404 ")
    assert not any("secret" in line or "?" in line for line in logged)


async def test_the_request_id_is_echoed_and_logged(
    client: httpx.AsyncClient, access_log: pytest.LogCaptureFixture
) -> None:
    mine = await client.get("/healthz", headers={"X-Request-Id": "edge-7f3a.b_1"})
    generated = await client.get("/healthz")
    assert mine.headers["x-request-id"] == "edge-7f3a.b_1"
    assert GENERATED_ID.fullmatch(generated.headers["x-request-id"])
    assert generated.headers["x-request-id"] != (await client.get("/healthz")).headers["x-request-id"]
    logged = lines(access_log)
    assert " rid=edge-7f3a.b_1 " in logged[0]
    assert f" rid={generated.headers['x-request-id']} " in logged[1]


@pytest.mark.parametrize(
    "incoming",
    ["a" * 65, "two words", "id\u00e9", "<script>", "a;b", ""],
    ids=["too-long", "space", "non-ascii", "markup", "semicolon", "empty"],
)
async def test_an_unsafe_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, access_log: pytest.LogCaptureFixture, incoming: str
) -> None:
    response = await client.get("/healthz", headers=[(b"X-Request-Id", incoming.encode("utf-8"))])
    echoed = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(echoed), echoed
    (line,) = lines(access_log)
    assert f" rid={echoed} " in line


async def test_the_fast_lane_is_logged(
    client: httpx.AsyncClient, access_log: pytest.LogCaptureFixture
) -> None:
    session = await client.get("/api/v1/session")
    token = await client.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert session.status_code == 401 and token.status_code in (400, 401)
    assert "x-request-id" in session.headers and "x-request-id" in token.headers
    logged = lines(access_log)
    assert logged[0].startswith("GET /api/v1/session 401 ")
    assert logged[1].startswith(f"POST /oauth2/token {token.status_code} ")


async def test_a_path_cannot_forge_log_lines(
    client: httpx.AsyncClient, access_log: pytest.LogCaptureFixture
) -> None:
    await client.get("/no%0Asuch%20page%0D%0AGET%20/admin%20200")
    await client.get("/" + "x" * 2000)
    forged, long = lines(access_log)
    assert forged.startswith("GET /no%0Asuch%20page%0D%0AGET%20/admin%20200 404 ")
    assert "\n" not in forged and "\r" not in forged
    assert len(long) < 700


async def test_the_client_address_follows_the_trusted_proxy_rule(
    client_factory: Callable[..., Any], access_log: pytest.LogCaptureFixture
) -> None:
    direct = await client_factory()
    await direct.get("/healthz", headers={"X-Forwarded-For": "198.51.100.9"})
    proxied = await client_factory(trusted_proxies=["203.0.113.0/24"])
    await proxied.get("/healthz", headers={"X-Forwarded-For": "198.51.100.9"})
    first, second = lines(access_log)
    assert first.endswith(" ip=203.0.113.7")  # an untrusted peer cannot name another address
    assert second.endswith(" ip=198.51.100.9")


async def test_an_unhandled_error_is_logged_as_500(
    client: httpx.AsyncClient, access_log: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    app: Any = client.app  # type: ignore[attr-defined]
    app.add_api_route("/boom", boom)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=ISSUER
    ) as quiet:
        assert (await quiet.get("/boom")).status_code == 500
    (line,) = lines(access_log)
    assert line.startswith("GET /boom 500 ")


async def test_a_disabled_logger_still_echoes_the_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    response = await client.get("/healthz", headers={"X-Request-Id": "from-the-edge"})
    assert response.headers["x-request-id"] == "from-the-edge"
    assert lines(caplog) == []


async def test_the_setting_turns_it_off(
    client_factory: Callable[..., Any], access_log: pytest.LogCaptureFixture
) -> None:
    client = await client_factory(access_log=False)
    response = await client.get("/healthz", headers={"X-Request-Id": "from-the-edge"})
    assert response.status_code == 200
    assert "x-request-id" not in response.headers
    assert lines(access_log) == []
