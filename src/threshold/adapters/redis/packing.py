"""Commands packed by hiredis's C packer on the asyncio client.

redis-py's synchronous client packs commands with hiredis when it is installed; its asyncio client
always packs them in Python, argument by argument: about a third of the CPU of a Redis call on the
sign-in path (three script calls of ten or so arguments each; cProfile in-process, 2 December). The
connections of `c_packed` pools pack with `hiredis.pack_command`, which gives the same bytes
(tests/unit/test_redis_packing.py compares the two over every kind of argument the client accepts),
and hand anything it does not pack (a bytearray) or refuses (a bool, None: redis-py's DataError) to
redis-py's own packer, so what is sent and what is refused stay redis-py's.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.typing import EncodableT


class CPackedMixin(AbstractConnection):
    """pack_command through hiredis, for a connection whose encoder is redis-py's default (UTF-8,
    strict), the encoding hiredis applies to a str."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        encoder = self.encoder
        if encoder.encoding.lower() not in ("utf-8", "utf8") or encoder.encoding_errors != "strict":
            return super().pack_command(*args)
        first = args[0]
        # redis-py sends a command name given with its subcommand ("CONFIG GET") as two arguments
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(cast(Any, args))]  # its stub types the tuple as of one item
        except TypeError:
            return super().pack_command(*args)


@functools.cache
def _c_packed(base: type[AbstractConnection]) -> type[AbstractConnection]:
    return type(f"CPacked{base.__name__}", (CPackedMixin, base), {})


def c_packed(client: aioredis.Redis) -> aioredis.Redis:
    """`client`, its pool's connections (TCP, TLS or a Unix socket, as its URL chose) packing their
    commands with hiredis. Call before the first command (connections made earlier keep their class)."""
    pool: Any = client.connection_pool
    pool.connection_class = _c_packed(pool.connection_class)
    return client
