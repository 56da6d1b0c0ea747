"""adapters.redis.packing: commands packed by hiredis are byte for byte what redis-py's own packer
sends, and what redis-py refuses is still refused with its error (parity with the ordinary path)."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from threshold.adapters.redis.packing import CPackedMixin, c_packed

ORDINARY = Connection()
PACKED = c_packed(aioredis.Redis()).connection_pool.connection_class()

SAMPLES: list[object] = [
    "",
    "session",
    "ü€𝄞 mixed 文字",
    "x" * 7000,  # beyond redis-py's buffer cutoff (it sends large values in chunks of their own)
    b"",
    b"\x00\xff\x80 binary \r\n",
    b"y" * 7000,
    memoryview(b"a view"),
    bytearray(b"an array"),  # hiredis does not pack it: redis-py's packer does
    0,
    -1,
    2**63,
    -(10**40),
    0.0,
    -0.0,
    1.5,
    0.1,
    1e-7,
    1e300,
    123456789.123456789,
    float("inf"),
    float("-inf"),
]


def packed(connection: AbstractConnection, *args: object) -> bytes:
    return b"".join(bytes(chunk) for chunk in connection.pack_command(*args))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", SAMPLES, ids=[f"{type(v).__name__}-{i}" for i, v in enumerate(SAMPLES)])
def test_every_kind_of_argument_is_packed_as_redis_py_packs_it(value: object) -> None:
    assert packed(PACKED, "EVALSHA", "0123abcd", 2, "k1", value, value) == packed(
        ORDINARY, "EVALSHA", "0123abcd", 2, "k1", value, value
    )


@pytest.mark.parametrize("name", ["CONFIG GET", b"CLIENT SETNAME", "GET", b"GET", "  SPACED   NAME "])
def test_a_command_name_with_its_subcommand_is_split_as_redis_py_splits_it(name: str | bytes) -> None:
    assert packed(PACKED, name, "x") == packed(ORDINARY, name, "x")


def test_random_commands_pack_alike() -> None:
    draw = random.Random(20261202)
    makers: list[Callable[[], object]] = [
        lambda: secrets.token_urlsafe(draw.randrange(0, 40)),
        lambda: secrets.token_bytes(draw.randrange(0, 40)),
        lambda: draw.randrange(-(2**70), 2**70),
        lambda: draw.uniform(-1e12, 1e12),
        lambda: "".join(chr(draw.randrange(32, 0x10FFFF)) for _ in range(draw.randrange(0, 8))).encode(
            "utf-8", "surrogatepass"
        ),
    ]
    for _ in range(2000):
        args = [draw.choice(makers)() for _ in range(draw.randrange(0, 12))]
        assert packed(PACKED, "EVALSHA", *args) == packed(ORDINARY, "EVALSHA", *args)


@pytest.mark.parametrize("value", [True, False, None, {"a": 1}, [1], 3 + 4j])
def test_what_redis_py_refuses_is_refused_with_its_error(value: object) -> None:
    with pytest.raises(DataError):
        PACKED.pack_command("SET", "k", value)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        ORDINARY.pack_command("SET", "k", value)  # type: ignore[arg-type]


def test_a_string_that_is_not_utf8_encodable_fails_as_it_does_in_redis_py() -> None:
    with pytest.raises(UnicodeEncodeError):
        PACKED.pack_command("SET", "k", "\udc80")
    with pytest.raises(UnicodeEncodeError):
        ORDINARY.pack_command("SET", "k", "\udc80")


def test_another_encoding_is_left_to_redis_py() -> None:
    latin = c_packed(aioredis.Redis(encoding="latin-1")).connection_pool.connection_class(encoding="latin-1")
    plain = Connection(encoding="latin-1")
    expected = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n\xe9\r\n"
    assert packed(latin, "SET", "k", "é") == packed(plain, "SET", "k", "é") == expected


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6380/0", SSLConnection),
        ("unix:///run/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_the_connection_kind_the_url_chose_is_kept(url: str, base: type[Connection]) -> None:
    kind = c_packed(aioredis.from_url(url)).connection_pool.connection_class
    assert issubclass(kind, base) and issubclass(kind, CPackedMixin)
