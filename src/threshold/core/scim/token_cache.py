"""SCIM bearer tokens read from memory, kept exact like OAuth clients (oidc.client_cache).

Every SCIM request authenticates its token, and an identity provider's sync sends thousands of them;
tokens change rarely (made, revoked, and their `last_used_at` written once a minute at most). A
revocation or a recorded use on any process (the CLI's included) drops the entry everywhere through the
invalidation feed of the session cache, and while that feed is lost every request reads the store.

Entries are kept under the token's id (what a revocation names), found from the digest a request
presents through a map of digests seen with a live entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from threshold.core.orgs.models import Organization
from threshold.core.scim.tokens import ScimToken, ScimTokenRepo
from threshold.core.session_cache import ITEM_PREFIX, Invalidator, SessionCache

MAX_DIGESTS = 4096
"""Digests remembered (live tokens are few; past this the map starts again empty)."""


def _key(token_id: str) -> str:
    return f"{ITEM_PREFIX}scim-token:{token_id}"


class CachedScimTokenRepo:
    def __init__(self, tokens: ScimTokenRepo, cache: SessionCache, invalidator: Invalidator) -> None:
        self._tokens = tokens
        self._cache = cache
        self._invalidator = invalidator
        self._ids: dict[str, str] = {}

    async def add(self, token: ScimToken) -> None:
        await self._tokens.add(token)

    async def for_org(self, org_id: str) -> Sequence[ScimToken]:
        return await self._tokens.for_org(org_id)

    async def by_digest(self, token_digest: str) -> tuple[ScimToken, Organization] | None:
        token_id = self._ids.get(token_digest)
        if token_id is not None:
            cached = self._cache.get_item(_key(token_id))
            if isinstance(cached, tuple) and cached[0].digest == token_digest:
                return cached
            del self._ids[token_digest]
        epoch = self._cache.epoch
        found = await self._tokens.by_digest(token_digest)
        if found is not None and self._cache.enabled:
            self._cache.put_item(_key(found[0].id), found, epoch=epoch)
            if len(self._ids) >= MAX_DIGESTS:
                self._ids.clear()
            self._ids[token_digest] = found[0].id
        return found

    async def revoke(self, org_id: str, token_id: str, *, at: float) -> bool:
        revoked = await self._tokens.revoke(org_id, token_id, at=at)
        await self._invalidator.item_changed(_key(token_id))
        return revoked

    async def touch(self, token_id: str, *, at: float) -> None:
        await self._tokens.touch(token_id, at=at)
        await self._invalidator.item_changed(_key(token_id))
