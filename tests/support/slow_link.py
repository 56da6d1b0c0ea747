"""A slow network path to a real server: a TCP relay on loopback that hands every byte the server sends
to its client `delay` seconds late (in order; what the client sends goes through at once), on the
connections whose client has sent `marker` (all of them if it is empty).

It stands for a process whose feed from the broker (PostgreSQL, Redis) is slower than the path a client
takes from one server to another, which is what a revocation's message must not lose a race to: with
`LISTENING`, only the listening connections are slow (PostgreSQL's names itself "starting ..." in its
startup packet, Redis's sends CLIENT SETNAME: pooled connections do neither), and a server's queries and
publishes are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

from tests.support.environment import free_port

LISTENING = (b"starting ", b"SETNAME")
"""What only a listening connection sends (see above)."""


class SlowLink:
    def __init__(
        self, upstream_host: str, upstream_port: int, *, delay: float, marker: tuple[bytes, ...] = ()
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.marker = marker
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"slow-link-{self.port}", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> SlowLink:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("slow link did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        late: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sent = b""
        delay = 0.0 if self.marker else self.delay

        async def up() -> None:
            nonlocal sent, delay
            while chunk := await client_reader.read(65536):
                if not delay:
                    sent = (sent + chunk)[-4096:]
                    if any(mark in sent for mark in self.marker):
                        delay = self.delay
                upstream_writer.write(chunk)
                await upstream_writer.drain()

        async def down_read() -> None:
            while chunk := await upstream_reader.read(65536):
                late.put_nowait((time.monotonic() + delay, chunk))
            late.put_nowait((time.monotonic() + delay, b""))

        async def down_write() -> None:
            while True:
                due, chunk = await late.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not chunk:
                    return
                client_writer.write(chunk)
                await client_writer.drain()

        tasks = [asyncio.ensure_future(t) for t in (up(), down_write(), down_read())]
        try:  # until the client is gone or everything the server sent has been handed on
            await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            for writer in (client_writer, upstream_writer):
                with contextlib.suppress(Exception):
                    writer.close()


@contextlib.contextmanager
def slow_link(host: str, port: int, *, delay: float, marker: tuple[bytes, ...] = ()) -> Iterator[SlowLink]:
    with SlowLink(host, port, delay=delay, marker=marker) as link:
        yield link
