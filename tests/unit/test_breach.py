"""HttpRangeSource against a real loopback HTTP server speaking the Pwned Passwords range protocol."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from threshold.adapters.breach import HttpRangeSource
from threshold.core.errors import PasswordCompromised
from threshold.core.passwords import PasswordPolicy
from threshold.settings import PasswordSettings

BREACHED = "plum orbit candle harbor"
BREACHED_SHA1 = hashlib.sha1(BREACHED.encode()).hexdigest().upper()


@dataclass
class RangeServer:
    """GET /range/{prefix} answering from a table of full SHA-1 digests, plus padding lines."""

    digests: dict[str, int] = field(default_factory=dict)
    status: int = 200
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base_url: str = ""

    def body_for(self, prefix: str) -> str:
        lines = [f"{d[5:]}:{n}" for d, n in self.digests.items() if d.startswith(prefix)]
        lines += [
            "0" * 35 + ":0",  # padding: zero counts are not real entries
            "f" * 35 + ":0",
            "this is not a range line",
            "ABC:12",
        ]
        return "\r\n".join(lines) + "\r\n"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        _, path, _ = head[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:] if line)}
        self.requests.append((path, headers))
        if self.status == 200 and path.startswith("/range/"):
            status, body = "200 OK", self.body_for(path.removeprefix("/range/"))
        else:
            status, body = f"{self.status} Oops", ""
        data = body.encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[RangeServer]:
    state = RangeServer(digests={BREACHED_SHA1: 1234})
    srv = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    state.base_url = f"http://127.0.0.1:{port}/range/"
    async with srv:
        yield state
        srv.close()


@pytest.fixture
async def source(server: RangeServer) -> AsyncIterator[HttpRangeSource]:
    src = HttpRangeSource(server.base_url, timeout=5)
    yield src
    await src.aclose()


async def test_parses_suffixes_and_ignores_padding(server: RangeServer, source: HttpRangeSource) -> None:
    other = BREACHED_SHA1[:5] + "A" * 35
    lower = BREACHED_SHA1[:5] + "b" * 35
    server.digests.update({other: 7, lower: 3})
    found = await source.suffixes(BREACHED_SHA1[:5])
    assert found == {BREACHED_SHA1[5:]: 1234, "A" * 35: 7, "B" * 35: 3}


async def test_asks_for_the_prefix_only_with_padding(server: RangeServer, source: HttpRangeSource) -> None:
    await source.suffixes(BREACHED_SHA1[:5])
    [(path, headers)] = server.requests
    assert path == f"/range/{BREACHED_SHA1[:5]}"
    assert headers["add-padding"] == "true"
    assert BREACHED_SHA1[5:] not in path and BREACHED not in str(headers)


async def test_base_url_without_trailing_slash(server: RangeServer) -> None:
    src = HttpRangeSource(server.base_url.rstrip("/"))
    try:
        assert await src.suffixes("00000") == {}
    finally:
        await src.aclose()
    assert server.requests[0][0] == "/range/00000"


@pytest.mark.parametrize("prefix", ["abcde", "ABCD", "ABCDEF", "GHIJK", "../x1", "", "A B C"])
async def test_rejects_a_bad_prefix(server: RangeServer, source: HttpRangeSource, prefix: str) -> None:
    with pytest.raises(ValueError):
        await source.suffixes(prefix)
    assert server.requests == []


async def test_error_status_raises(server: RangeServer, source: HttpRangeSource) -> None:
    server.status = 503
    with pytest.raises(httpx.HTTPStatusError):
        await source.suffixes("ABCDE")


async def test_policy_rejects_a_breached_password_and_fails_open_on_outage(
    server: RangeServer, source: HttpRangeSource
) -> None:
    policy = PasswordPolicy(PasswordSettings(), product_name="Threshold", range_source=source)
    with pytest.raises(PasswordCompromised):
        await policy.check_new_password(BREACHED, email="alice@example.com")
    await policy.check_new_password("violet kettle mirror anchor", email="alice@example.com")
    server.status = 500
    await policy.check_new_password(BREACHED, email="alice@example.com")
