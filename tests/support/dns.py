"""A real DNS server on loopback (UDP, dnslib) that serves the TXT records a test sets.

A name set with records answers them; a name set with no records exists but has no TXT record
(NOERROR, empty answer); any other name does not exist (NXDOMAIN). A record given as one string longer
than 255 bytes is split into 255-byte strings, as zone files do; a tuple gives the strings explicitly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from dnslib import QTYPE, RCODE, RR, TXT, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from tests.support.environment import free_port

TxtRecord = str | tuple[str, ...]
TTL = 60


def _strings(record: TxtRecord) -> list[bytes]:
    if isinstance(record, tuple):
        return [part.encode() for part in record]
    data = record.encode()
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


class _TxtResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records: dict[DNSLabel, list[list[bytes]]] = {}
        self.lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = request.q.qname
        with self.lock:
            records = self.records.get(qname)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.TXT, QTYPE.ANY):
            for strings in records:
                reply.add_answer(RR(qname, QTYPE.TXT, rdata=TXT(strings), ttl=TTL))
        return reply


class DnsServer:
    """Serves TXT records on 127.0.0.1:`port` until `stop()` (or the end of its `with` block)."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self._resolver = _TxtResolver()
        self.port = free_port()
        self._server = DNSServer(
            self._resolver, address=self.host, port=self.port, logger=DNSLogger("-request,-reply,-truncated")
        )
        self._thread = threading.Thread(
            target=self._server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._stopped = False

    def set_txt(self, name: str, records: Sequence[TxtRecord]) -> None:
        """Replace the TXT records at `name` (no records: the name exists without any)."""
        with self._resolver.lock:
            self._resolver.records[DNSLabel(name)] = [_strings(record) for record in records]

    def clear(self, name: str) -> None:
        """Forget `name`: it no longer exists."""
        with self._resolver.lock:
            self._resolver.records.pop(DNSLabel(name), None)

    def stop(self) -> None:
        """Stop answering and free the port (again: nothing)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.server.shutdown()
        self._server.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
