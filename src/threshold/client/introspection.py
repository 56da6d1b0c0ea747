"""The online mode of a TokenVerifier: a token that passes every offline check is also introspected at
the provider (RFC 7662), which refuses it once it was revoked or its session, refresh family, user or
client has ended.

A positive answer is reused for `cache_seconds`, the bound on how long a revoked token is still
accepted; concurrent requests about the same token share one question. Every check fails closed: no
clear answer from the provider is DiscoveryFailed, never "valid".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from threshold.client.errors import DiscoveryFailed, Revoked
from threshold.client.keys import IssuerKeys

MAX_CACHE_SECONDS = 300.0
MAX_CACHED_ANSWERS = 10_000


@dataclass(frozen=True, slots=True)
class Introspection:
    """The online mode of a TokenVerifier: each token is also introspected at the provider (RFC 7662).

    Args:
        client_id: this API's own confidential client at the provider (one registered with
            `--grant-type client_credentials` will do); it authenticates with client_secret_basic.
        client_secret: its secret (kept out of `repr`).
        cache_seconds: how long a positive answer is reused for the same token (0: ask on every
            request). This is the revocation delay: a token revoked at the provider may still be
            accepted for up to this long. 0..300, 5 by default.
        endpoint: the introspection endpoint; by default the `introspection_endpoint` of the issuer's
            discovery document.
    """

    client_id: str
    client_secret: str = field(repr=False)
    cache_seconds: float = 5.0
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("Introspection needs this API's client_id and client_secret")
        if not (math.isfinite(self.cache_seconds) and 0 <= self.cache_seconds <= MAX_CACHE_SECONDS):
            raise ValueError(
                f"cache_seconds must be 0..{MAX_CACHE_SECONDS:g}: it is how long a revoked token may "
                "still be accepted"
            )

    @property
    def authorization(self) -> str:
        """RFC 6749 section 2.3.1: client_secret_basic, each part form-urlencoded before base64."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class ActiveCheck:
    """Asks the provider whether tokens are still active, with the cache and sharing of Introspection."""

    def __init__(
        self, online: Introspection, *, keys: IssuerKeys, http_client: httpx.AsyncClient | None
    ) -> None:
        """Without `http_client`, it keeps an HTTP client of its own, closed by `aclose()`."""
        self._online = online
        self._keys = keys
        self._http = http_client
        self._active: OrderedDict[bytes, float] = OrderedDict()
        self._asking: dict[bytes, asyncio.Task[bool]] = {}
        self._own_http: httpx.AsyncClient | None = None

    @property
    def endpoint(self) -> str | None:
        """Introspection(endpoint=...), else the discovery document's, once it was read."""
        return (
            self._online.endpoint if self._online.endpoint is not None else self._keys.introspection_endpoint
        )

    async def confirm_active(self, token: str) -> None:
        """A positive answer for this token from the last `cache_seconds`, or a new one. Requests that
        arrive while the provider is being asked about the same token share its answer.

        Raises:
            Revoked: the provider says the token is no longer active.
            DiscoveryFailed: the provider's answer could not be had.
        """
        key = hashlib.sha256(token.encode()).digest()
        until = self._active.get(key)
        if until is not None:
            if time.monotonic() < until:
                return
            del self._active[key]
        task = self._asking.get(key)
        if task is None:
            task = asyncio.ensure_future(self._introspect(token))
            self._asking[key] = task
            task.add_done_callback(lambda done: self._asked(key, done))
        if not await asyncio.shield(task):
            raise Revoked(
                f"the provider's introspection ({self.endpoint}) says the token is no "
                "longer active: it was revoked, or its session, grant, user or client has ended; sign in "
                "or request a new token"
            )
        if self._online.cache_seconds > 0:
            self._active[key] = time.monotonic() + self._online.cache_seconds
            self._active.move_to_end(key)
            while len(self._active) > MAX_CACHED_ANSWERS:
                self._active.popitem(last=False)

    def _asked(self, key: bytes, task: asyncio.Task[bool]) -> None:
        if self._asking.get(key) is task:
            del self._asking[key]
        if not task.cancelled():
            task.exception()  # every waiter has it; mark it seen even if all of them went away

    async def _introspect(self, token: str) -> bool:
        """RFC 7662 section 2: POST the token with this API's credentials; True only for `active: true`."""
        client = self._http or self._own_client()
        endpoint = self.endpoint
        if endpoint is None:
            await self._keys.discover(client)
            endpoint = self.endpoint
            if endpoint is None:
                raise DiscoveryFailed(
                    f"the discovery document of {self._keys.issuer} names no introspection_endpoint: pass "
                    "Introspection(endpoint=...)"
                )
        failed = f"could not ask {endpoint} whether the token is still active"
        retry = "the token is refused until the provider answers; the next averify() asks again"
        try:
            response = await client.post(
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                headers={"Authorization": self._online.authorization, "Accept": "application/json"},
                timeout=5.0,
            )
        except httpx.HTTPError as exc:
            raise DiscoveryFailed(f"{failed} ({type(exc).__name__}): {retry}") from exc
        if response.status_code == 401:
            raise DiscoveryFailed(
                f"the provider refused this API's client credentials at {endpoint} "
                f"({response.status_code}): check Introspection(client_id=..., client_secret=...) against "
                "the client registered for this API (a confidential client); " + retry
            )
        if response.status_code != 200:
            raise DiscoveryFailed(f"{failed} (HTTP {response.status_code}): {retry}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise DiscoveryFailed(f"{failed} (the answer is not JSON): {retry}") from exc
        active = answer.get("active") if isinstance(answer, dict) else None
        if not isinstance(active, bool):
            raise DiscoveryFailed(f"{failed} (the answer has no boolean active, RFC 7662 2.2): {retry}")
        return active

    def _own_client(self) -> httpx.AsyncClient:
        if self._own_http is None:
            self._own_http = httpx.AsyncClient()
        return self._own_http

    async def aclose(self) -> None:
        """Close the HTTP client it opened for itself (not one passed in)."""
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None
