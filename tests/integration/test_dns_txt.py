"""DnsTxtResolver against a real DNS server on loopback: what is published, what is not, no answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.support import DnsServer, free_port
from threshold.adapters.dns import DnsTxtResolver
from threshold.core.errors import DependencyUnavailable


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def resolver(dns_server: DnsServer) -> DnsTxtResolver:
    return DnsTxtResolver([DnsServer.host], port=dns_server.port, timeout=2.0)


async def test_one_record(dns_server: DnsServer, resolver: DnsTxtResolver) -> None:
    dns_server.set_txt("_threshold.example.com", ["threshold-verification=abc123"])
    assert await resolver.txt_records("_threshold.example.com") == ["threshold-verification=abc123"]


async def test_name_is_case_insensitive_and_may_be_absolute(
    dns_server: DnsServer, resolver: DnsTxtResolver
) -> None:
    dns_server.set_txt("_threshold.example.com", ["token"])
    assert await resolver.txt_records("_Threshold.EXAMPLE.com.") == ["token"]


async def test_a_record_of_several_strings_is_joined(dns_server: DnsServer, resolver: DnsTxtResolver) -> None:
    dns_server.set_txt("split.example.com", [("threshold-", "verification=", "abc123")])
    assert await resolver.txt_records("split.example.com") == ["threshold-verification=abc123"]


async def test_a_long_record_comes_back_whole(dns_server: DnsServer, resolver: DnsTxtResolver) -> None:
    value = "v=" + "x" * 600  # served as three strings (255 bytes at most each)
    dns_server.set_txt("long.example.com", [value])
    assert await resolver.txt_records("long.example.com") == [value]


async def test_several_records(dns_server: DnsServer, resolver: DnsTxtResolver) -> None:
    dns_server.set_txt("example.com", ["v=spf1 -all", ("threshold-verification=", "abc123"), "other"])
    records = await resolver.txt_records("example.com")
    assert sorted(records) == sorted(["v=spf1 -all", "threshold-verification=abc123", "other"])


async def test_a_missing_name_has_none(resolver: DnsTxtResolver) -> None:
    assert await resolver.txt_records("missing.example.com") == []


async def test_a_name_without_txt_records_has_none(dns_server: DnsServer, resolver: DnsTxtResolver) -> None:
    dns_server.set_txt("bare.example.com", [])
    assert await resolver.txt_records("bare.example.com") == []


async def test_changes_are_seen_at_once(dns_server: DnsServer, resolver: DnsTxtResolver) -> None:
    dns_server.set_txt("example.org", ["first"])
    assert await resolver.txt_records("example.org") == ["first"]
    dns_server.set_txt("example.org", ["second"])
    assert await resolver.txt_records("example.org") == ["second"]
    dns_server.clear("example.org")
    assert await resolver.txt_records("example.org") == []


async def test_a_port_with_nothing_listening_is_unavailable() -> None:
    resolver = DnsTxtResolver(["127.0.0.1"], port=free_port(), timeout=0.3)
    start = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        await resolver.txt_records("example.com")
    assert time.monotonic() - start < 3


async def test_a_server_that_never_answers_is_unavailable_after_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # receives, never replies
        silent.bind(("127.0.0.1", 0))
        resolver = DnsTxtResolver(["127.0.0.1"], port=silent.getsockname()[1], timeout=0.3)
        start = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await resolver.txt_records("example.com")
        assert 0.25 < time.monotonic() - start < 3


async def test_a_stopped_server_is_unavailable(dns_server: DnsServer) -> None:
    resolver = DnsTxtResolver([DnsServer.host], port=dns_server.port, timeout=0.3)
    dns_server.set_txt("example.com", ["token"])
    assert await resolver.txt_records("example.com") == ["token"]
    dns_server.stop()
    with pytest.raises(DependencyUnavailable):
        await resolver.txt_records("example.com")


async def test_an_invalid_name_is_a_value_error(resolver: DnsTxtResolver) -> None:
    with pytest.raises(ValueError, match="not a DNS name"):
        await resolver.txt_records("a..example.com")
