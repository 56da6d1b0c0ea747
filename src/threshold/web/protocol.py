"""The HTTP/1.1 protocol `threshold serve` runs: uvicorn's httptools protocol, each response sent in one
write.

uvicorn writes a response's status line and headers in one `transport.write` and its body in another:
with TCP_NODELAY (uvloop's default) every small response costs two `send()` calls and two TCP
segments, which the client must read apart. Here the writes one connection makes in one turn of the
event loop go out together, in one `writev`, when the loop next runs its ready callbacks (or before:
when the connection closes, when the client half-closes, or once 64 KiB are held): a response whose
body follows its head at once (every JSON answer, every page) leaves in one segment; one written over
several turns (a file, a streamed export) leaves piece by piece as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_AT = 64 * 1024
"""Bytes held back at most: a response written in large pieces within one turn (a long download) goes
out as it grows, and the transport's back-pressure (uvicorn's `drain`) still applies to it."""


class CoalescingTransport:
    """A transport whose writes in one turn of the loop are joined into one write (one `writev`) of the
    transport underneath. Everything else is the underlying transport's."""

    __slots__ = ("_loop", "_pending", "_pending_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._pending_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chunk = bytes(data)  # the caller may reuse a mutable buffer before the flush
        if self._pending is None:
            self._pending = [chunk]
            self._pending_size = len(chunk)
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
        if self._pending_size >= FLUSH_AT:
            self.flush()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            if len(pending) == 1:
                self._transport.write(pending[0])
            else:
                self._transport.writelines(pending)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (self._pending_size if self._pending else 0)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a CoalescingTransport."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are asyncio.Transport in all but their class
        super().connection_made(CoalescingTransport(cast(asyncio.Transport, transport), self.loop))  # type: ignore[arg-type]

    def eof_received(self) -> None:
        """The client has finished sending (a half-close): the loop closes the transport once this
        returns, so what the last turn wrote goes out now, not at the flush it scheduled."""
        transport = self.transport
        if isinstance(transport, CoalescingTransport):
            transport.flush()
        return super().eof_received()
