"""k-anonymity range queries (Have I Been Pwned "range" protocol) over HTTPS with httpx.

Only the first five hex digits of the password's SHA-1 leave the host; the answer lists suffixes and
counts, and `Add-Padding` hides the real answer size.
"""

from __future__ import annotations

import re

import httpx

_LINE = re.compile(r"^([0-9A-F]{35}):(\d+)$")


class HttpRangeSource:
    def __init__(
        self, base_url: str, *, timeout: float = 2.0, transport: httpx.AsyncBaseTransport | None = None
    ):
        self._base = base_url if base_url.endswith("/") else base_url + "/"
        self._client = httpx.AsyncClient(
            timeout=timeout, transport=transport, headers={"Add-Padding": "true"}
        )

    async def suffixes(self, prefix: str) -> dict[str, int]:
        if not re.fullmatch(r"[0-9A-F]{5}", prefix):
            raise ValueError("prefix must be 5 upper-case hex digits")
        response = await self._client.get(self._base + prefix)
        response.raise_for_status()
        found: dict[str, int] = {}
        for line in response.text.splitlines():
            match = _LINE.match(line.strip().upper())
            if match and int(match.group(2)) > 0:
                found[match.group(1)] = int(match.group(2))
        return found

    async def aclose(self) -> None:
        await self._client.aclose()
