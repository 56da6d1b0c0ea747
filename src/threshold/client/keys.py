"""The issuer's signing keys, as a TokenVerifier holds them: read from its discovery document (OIDC
Discovery 1.0 section 4) and JWKS (RFC 7517 section 5), cached, and refetched for an unknown `kid` at
most once per `refetch_interval`.

Only public signature keys are kept: an entry for another use, without a `kid`, or carrying private or
symmetric material is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from threshold.client._diagnosis import shown
from threshold.client.errors import DiscoveryFailed

PRIVATE_MEMBERS = ("d", "p", "q", "k")
"""JWK members of private (RFC 7518 section 6.2.2, 6.3.2) or symmetric (section 6.4.1) keys."""


class IssuerKeys:
    def __init__(
        self,
        *,
        issuer: str,
        refetch_interval: float,
        http_client: httpx.AsyncClient | None,
        jwks: Mapping[str, Any] | None = None,
    ) -> None:
        """Without `http_client`, each fetch uses a short-lived client of its own."""
        self.issuer = issuer
        self.refetch_interval = refetch_interval
        self.loaded = False
        """Keys were installed once (from `jwks=` or a fetch), even if none was usable."""
        self.introspection_endpoint: str | None = None
        """The `introspection_endpoint` the discovery document announced, once it was read."""
        self._http = http_client
        self._keys: dict[str, tuple[Key, str | None]] = {}
        self._fetched_at = -1e9
        self._jwks_uri: str | None = None
        self._lock = asyncio.Lock()
        if jwks is not None:
            self.install(jwks)

    def get(self, kid: str) -> tuple[Key, str | None] | None:
        """The key with this `kid` and the `alg` it is published for, if held."""
        return self._keys.get(kid)

    def __iter__(self) -> Iterator[str]:
        """The kids held."""
        return iter(self._keys)

    def install(self, jwks: Mapping[str, Any]) -> None:
        keys: dict[str, tuple[Key, str | None]] = {}
        for entry in jwks.get("keys", []):
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "kid" not in entry:
                continue
            if any(private in entry for private in PRIVATE_MEMBERS):
                continue  # never trust a JWKS that carries private or symmetric material
            try:
                keys[str(entry["kid"])] = (import_key(entry), entry.get("alg"))
            except (JoseError, ValueError, TypeError):
                continue
        self._keys = keys
        self.loaded = True

    async def _get(self, client: httpx.AsyncClient, url: str) -> Any:
        try:
            response = await client.get(url, timeout=5.0)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DiscoveryFailed(
                f"could not fetch {url} ({type(exc).__name__}): check that the issuer {self.issuer} is "
                "reachable from this service; the next averify() tries again"
            ) from exc

    async def discover(self, client: httpx.AsyncClient) -> str:
        """Read the discovery document (once): the JWKS URI, and the introspection endpoint.

        OIDC Discovery 1.0 section 4.3: the `issuer` it announces must be exactly the one expected.

        Raises:
            DiscoveryFailed: the document could not be had, names another issuer, or no jwks_uri.
        """
        if self._jwks_uri is None:
            metadata = await self._get(client, f"{self.issuer}/.well-known/openid-configuration")
            announced = metadata.get("issuer") if isinstance(metadata, dict) else None
            if announced != self.issuer:
                raise DiscoveryFailed(
                    f"the discovery document of {self.issuer} names the issuer {shown(announced)}: "
                    "set TokenVerifier(issuer=...) to exactly the issuer that server announces"
                )
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise DiscoveryFailed(f"the discovery document of {self.issuer} has no jwks_uri")
            endpoint = metadata.get("introspection_endpoint")
            if isinstance(endpoint, str):
                self.introspection_endpoint = endpoint
            self._jwks_uri = jwks_uri
        return self._jwks_uri

    async def refresh(self) -> None:
        """Fetch the discovery document (once) and the JWKS."""
        client = self._http or httpx.AsyncClient()
        try:
            jwks_uri = await self.discover(client)
            jwks = await self._get(client, jwks_uri)
            if not isinstance(jwks, dict):
                raise DiscoveryFailed(f"{jwks_uri} did not answer a JWKS (a JSON object with keys)")
            self.install(jwks)
            self._fetched_at = time.monotonic()
        finally:
            if self._http is None:
                await client.aclose()

    async def load_if_empty(self) -> None:
        """Fetch the keys when none are held, at most once per `refetch_interval`."""
        if not self._keys and time.monotonic() - self._fetched_at >= self.refetch_interval:
            async with self._lock:
                if not self._keys:
                    await self.refresh()

    async def refetch_for(self, kid: str) -> None:
        """Refetch for a `kid` not held, unless the last fetch is less than `refetch_interval` old."""
        async with self._lock:
            if kid in self._keys or time.monotonic() - self._fetched_at < self.refetch_interval:
                return
            await self.refresh()
