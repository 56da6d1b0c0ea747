"""DNS TXT lookups with dnspython's asyncio resolver (the `TxtResolver` port).

With no name servers configured, the host's resolver configuration (/etc/resolv.conf) is read at the
first lookup; otherwise exactly the configured servers are asked, on the configured port. Nothing is
cached here: a verification must see what the domain publishes now. dnspython is imported at the first
lookup (domains are verified now and then; every process and command would otherwise load it).

A name that does not exist, or has no TXT record, has none ([]). A lookup that gets no answer (a
timeout, every server failing or refusing, no server configured) is DependencyUnavailable: "could not
ask" must never read as "has no record".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from threshold.core.errors import DependencyUnavailable

if TYPE_CHECKING:
    import dns.asyncresolver


class DnsTxtResolver:
    def __init__(self, nameservers: list[str] | None, port: int = 53, timeout: float = 3.0) -> None:
        """`nameservers`: IP addresses to ask (None or empty: the system's); `timeout`: seconds a
        lookup may take in all, retries and every server included."""
        self._nameservers = list(nameservers or [])
        self._port = port
        self._timeout = timeout
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        import dns.asyncresolver
        import dns.resolver

        if self._resolver is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=not self._nameservers)
            except dns.resolver.NoResolverConfiguration as error:
                raise DependencyUnavailable("No DNS name server is configured.") from error
            if self._nameservers:
                resolver.nameservers = list(self._nameservers)
                resolver.port = self._port
            resolver.lifetime = self._timeout
            resolver.timeout = min(resolver.timeout, self._timeout)
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    async def txt_records(self, name: str) -> list[str]:
        import dns.exception
        import dns.name
        import dns.rdatatype
        import dns.resolver
        from dns.rdtypes.ANY.TXT import TXT

        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException as error:
            raise ValueError(f"not a DNS name: {name!r}") from error
        resolver = self._get_resolver()
        try:
            answer = await resolver.resolve(qname, dns.rdatatype.TXT, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
            return []
        except (dns.exception.DNSException, OSError) as error:  # timeout, NoNameservers, ...
            raise DependencyUnavailable("DNS did not answer.") from error
        return [
            b"".join(rdata.strings).decode("utf-8", errors="replace")
            for rdata in answer
            if isinstance(rdata, TXT)
        ]
