"""OAuth clients read from memory on the token endpoint, kept exact like the session cache.

Every token request authenticates its client; clients change rarely (registered, updated, deleted). An
update or a deletion on any process drops the entry everywhere through the same invalidation feed as
sessions.
"""

from __future__ import annotations

from collections.abc import Sequence

from threshold.core.session_cache import ITEM_PREFIX, Invalidator, SessionCache
from threshold.oidc.models import Client
from threshold.oidc.ports import ClientRepo


def _key(client_id: str) -> str:
    return f"{ITEM_PREFIX}client:{client_id}"


class CachedClientRepo:
    def __init__(self, clients: ClientRepo, cache: SessionCache, invalidator: Invalidator) -> None:
        self._clients = clients
        self._cache = cache
        self._invalidator = invalidator

    async def add(self, client: Client) -> None:
        await self._clients.add(client)
        await self._invalidator.item_changed(_key(client.client_id))

    async def get(self, client_id: str) -> Client | None:
        return await self._cache.item(_key(client_id), lambda: self._clients.get(client_id))

    async def list(self) -> Sequence[Client]:
        return await self._clients.list()

    async def update(self, client: Client, *, expected: Client) -> bool:
        updated = await self._clients.update(client, expected=expected)
        await self._invalidator.item_changed(_key(client.client_id))
        return updated

    async def delete(self, client_id: str) -> bool:
        deleted = await self._clients.delete(client_id)
        await self._invalidator.item_changed(_key(client_id))
        return deleted
