"""web.protocol.CoalescingTransport over a real uvloop transport on a socket pair."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from threshold.web.protocol import FLUSH_AT, CoalescingTransport

Check = Callable[[CoalescingTransport, socket.socket], Coroutine[Any, Any, None]]


def run(test: Check) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ours, peer = socket.socketpair()
        peer.settimeout(5)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        try:
            await test(CoalescingTransport(transport, loop), peer)
        finally:
            transport.abort()
            peer.close()

    uvloop.run(main())


def read_until_eof(peer: socket.socket) -> bytes:
    data = b""
    while chunk := peer.recv(65536):
        data += chunk
    return data


def test_writes_in_one_turn_leave_together_at_its_end() -> None:
    async def test(transport: CoalescingTransport, peer: socket.socket) -> None:
        transport.write(b"head\r\n\r\n")
        transport.write(b"body")
        assert not select.select([peer], [], [], 0)[0], "written before the turn ended"
        await asyncio.sleep(0)  # the turn ends
        assert peer.recv(100) == b"head\r\n\r\nbody"
        transport.write(b"next")  # a later turn: its own write
        await asyncio.sleep(0)
        assert peer.recv(100) == b"next"

    run(test)


def test_close_sends_what_is_pending_first() -> None:
    async def test(transport: CoalescingTransport, peer: socket.socket) -> None:
        transport.write(b"last ")
        transport.write(b"words")
        transport.close()
        await asyncio.sleep(0.01)
        assert read_until_eof(peer) == b"last words"

    run(test)


def test_abort_drops_what_is_pending() -> None:
    async def test(transport: CoalescingTransport, peer: socket.socket) -> None:
        transport.write(b"never sent")
        transport.abort()
        await asyncio.sleep(0.01)
        assert read_until_eof(peer) == b""
        assert transport.is_closing()  # the rest is the underlying transport's

    run(test)


def test_writelines_and_write_eof_keep_the_order() -> None:
    async def test(transport: CoalescingTransport, peer: socket.socket) -> None:
        transport.write(b"one ")
        transport.writelines([b"two ", bytearray(b"three")])
        assert transport.get_write_buffer_size() == len(b"one two three")  # held, and counted
        transport.write_eof()  # what is held goes first
        await asyncio.sleep(0.01)
        assert read_until_eof(peer) == b"one two three"

    run(test)


def test_a_large_turn_goes_out_as_it_grows() -> None:
    async def test(transport: CoalescingTransport, peer: socket.socket) -> None:
        transport.write(b"x" * (FLUSH_AT - 1))
        assert not select.select([peer], [], [], 0)[0]
        transport.write(b"y")  # FLUSH_AT bytes held: written now, within the turn
        assert select.select([peer], [], [], 5)[0]
        transport.write(b"z")
        await asyncio.sleep(0)
        received = b""
        while len(received) < FLUSH_AT + 1:
            received += peer.recv(65536)
        assert received == b"x" * (FLUSH_AT - 1) + b"yz"

    run(test)
