"""TCP proxies in front of PostgreSQL and Redis that pass everything on except the invalidation feed's
messages, once told to: what a transaction-mode pooler (PgBouncer) does to NOTIFY, or a proxy that
does not carry pub/sub, while every query and command still gets its answer.

PostgreSQL: server-to-client traffic is read message by message (type byte, length) and
NotificationResponse ('A') is dropped. An SSLRequest is answered 'N' by the proxy itself, so the
session stays in plain text it can read. Redis: replies are read value by value (RESP2) and pub/sub
deliveries (`message`, `pmessage`) are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib

SSL_REQUEST = (80877103).to_bytes(4, "big")
GSS_REQUEST = (80877104).to_bytes(4, "big")


class DroppingProxy:
    """Listens on 127.0.0.1:`port` and forwards to `upstream`; `dropping` decides the feed's fate."""

    def __init__(self, upstream_host: str, upstream_port: int, *, dropping: bool = False) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.dropping = dropping
        self.dropped = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    def _split(self, buffer: bytearray) -> list[bytes]:
        """Whole server-to-client units at the start of `buffer` (removed from it), dropped ones left out."""
        raise NotImplementedError

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._upstream(client_reader, client_writer, server_writer),
                self._downstream(server_reader, client_writer),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
            self._tasks.discard(task)

    async def _upstream(
        self, reader: asyncio.StreamReader, client: asyncio.StreamWriter, server: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(65536):
            server.write(data)
            await server.drain()
        server.close()

    async def _downstream(self, reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        while data := await reader.read(65536):
            buffer += data
            for unit in self._split(buffer):
                client.write(unit)
            await client.drain()
        client.close()


class PostgresProxy(DroppingProxy):
    async def _upstream(
        self, reader: asyncio.StreamReader, client: asyncio.StreamWriter, server: asyncio.StreamWriter
    ) -> None:
        while True:  # the startup packet may be preceded by encryption requests: refuse them here
            head = await reader.readexactly(8)
            if head[4:8] in (SSL_REQUEST, GSS_REQUEST) and int.from_bytes(head[:4], "big") == 8:
                client.write(b"N")
                await client.drain()
                continue
            server.write(head)
            break
        await super()._upstream(reader, client, server)

    def _split(self, buffer: bytearray) -> list[bytes]:
        units: list[bytes] = []
        while len(buffer) >= 5:
            end = 1 + int.from_bytes(buffer[1:5], "big")
            if len(buffer) < end:
                break
            unit = bytes(buffer[:end])
            del buffer[:end]
            if unit[:1] == b"A" and self.dropping:
                self.dropped += 1
                continue
            units.append(unit)
        return units


def _resp_end(buffer: bytearray, start: int) -> int | None:
    """Where the RESP value that starts at `start` ends, or None if it has not all arrived."""
    line_end = buffer.find(b"\r\n", start)
    if line_end < 0:
        return None
    kind, head = bytes(buffer[start : start + 1]), bytes(buffer[start + 1 : line_end])
    after = line_end + 2
    if kind in (b"+", b"-", b":", b"_", b",", b"#"):
        return after
    if kind in (b"$", b"!", b"="):
        size = int(head)
        end = after + size + 2 if size >= 0 else after
        return end if len(buffer) >= end else None
    if kind in (b"*", b">", b"~", b"%"):
        count = int(head) * (2 if kind == b"%" else 1)
        for _ in range(max(count, 0)):
            found = _resp_end(buffer, after)
            if found is None:
                return None
            after = found
        return after
    raise ValueError(f"unexpected RESP type {kind!r}")


PUBSUB_DELIVERIES = (b"*3\r\n$7\r\nmessage\r\n", b">3\r\n$7\r\nmessage\r\n", b"*4\r\n$8\r\npmessage\r\n")


class RedisProxy(DroppingProxy):
    def _split(self, buffer: bytearray) -> list[bytes]:
        units: list[bytes] = []
        while buffer:
            end = _resp_end(buffer, 0)
            if end is None:
                break
            unit = bytes(buffer[:end])
            del buffer[:end]
            if self.dropping and unit.startswith(PUBSUB_DELIVERIES):
                self.dropped += 1
                continue
            units.append(unit)
        return units
