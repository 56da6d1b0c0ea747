"""What `threshold serve` puts on the wire: each small response in one write (web.protocol), and every
response whole, over keep-alive, pipelining, HEAD, `Connection: close`, a client's half-close and a
static file."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server, make_deployment

REQUESTS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with make_deployment(tmp_path_factory.mktemp("wire"), "sqlite") as deployment:
        yield deployment.start()


def write_calls(pid: int) -> int:
    """Write system calls the process has made (libuv writes to a socket with write/writev)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "syscw":
            return int(value)
    raise AssertionError("no syscw in /proc/PID/io")


def request(path: str, *, method: str = "GET", close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + b"Connection: "
        + connection
        + b"\r\n\r\n"
    )


def read_response(sock: socket.socket, buffer: bytearray, *, head_only: bool = False) -> tuple[bytes, bytes]:
    """(head, body) of the next response on `sock` (Content-Length framed); what follows stays in `buffer`."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a whole head"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if head_only:
        length = 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the whole body"
        rest += chunk
    buffer[:] = rest[length:]
    return head, rest[:length]


def test_each_small_response_is_one_write(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        buffer = bytearray()
        sock.sendall(request("/healthz"))
        read_response(sock, buffer)  # the connection is set up
        before = write_calls(server.process.pid)
        for _ in range(REQUESTS):
            sock.sendall(request("/healthz"))
            head, body = read_response(sock, buffer)
            assert head.startswith(b"HTTP/1.1 200 ") and body == b'{"status":"ok"}'
        writes = write_calls(server.process.pid) - before
    # uvicorn alone writes the head and the body apart: 2 per response. Background work (the sweeper,
    # the database) may add a few. At least one each: syscw counts this server's socket writes.
    assert REQUESTS * 0.9 <= writes < REQUESTS * 1.25, writes


def test_a_client_that_half_closes_gets_the_whole_answer(server: Server) -> None:
    """`printf 'GET ...' | nc -N`, or a health checker that shuts its side after the request: the end of
    its stream arrives right behind the request, before the turn's writes would be flushed."""
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200 "), received
        assert received.endswith(b'{"status":"ok"}')


def test_pipelined_head_close_and_streamed_responses_are_whole(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        buffer = bytearray()
        sock.sendall(request("/healthz") * 5 + request("/static/threshold.css", method="HEAD"))
        for _ in range(5):
            head, body = read_response(sock, buffer)
            assert head.startswith(b"HTTP/1.1 200 ") and body == b'{"status":"ok"}'
        head, _ = read_response(sock, buffer, head_only=True)
        assert head.startswith(b"HTTP/1.1 200 ") and b"content-type: text/css" in head.lower()

        sock.sendall(request("/static/threshold.css"))  # a file response: head and body in turns of their own
        head, body = read_response(sock, buffer)
        assert head.startswith(b"HTTP/1.1 200 ") and len(body) > 1000

        sock.sendall(request("/healthz", close=True))
        head, body = read_response(sock, buffer)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b'{"status":"ok"}'
        assert sock.recv(1) == b""  # closed after the whole response
