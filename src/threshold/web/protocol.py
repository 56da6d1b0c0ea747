"""The HTTP/1.1 protocol `threshold serve` runs: uvicorn's httptools protocol, each response sent in one
write.

uvicorn writes a response's status line and headers in one `transport.write` and its body in another:
with TCP_NODELAY (uvloop's default) every small response costs two `send()` calls and two TCP
segments, which the client must read apart. Here the writes one connection makes in one turn of the
event loop go out together, at the end of that turn or when the connection closes: a response whose
body follows its head at once (every JSON answer, every page) leaves in one segment; a streamed one
(a static file read in chunks) still leaves chunk by chunk.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes in one turn of the loop are joined into one write of the transport
    underneath. Everything else is the underlying transport's."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

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
