"""Signing keys: asymmetric only, encrypted at rest, lifecycle next -> active -> retired.

A key is published in the JWKS (as `next`) before it signs anything, signs while `active`, and stays
published while `retired` until every token it signed has expired. Rotation is a pair of conditional
state changes, so when several processes try at once exactly one succeeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key

from threshold.core.clock import Clock
from threshold.core.crypto import SecretBox
from threshold.core.secrets import new_token
from threshold.oidc.models import SIGNING_ALGORITHMS, KeyState, SigningKey
from threshold.oidc.ports import SigningKeyRepo

log = logging.getLogger(__name__)
PURPOSE = "signing-key"
RELOAD_INTERVAL = 30.0
UNKNOWN_KID_RELOAD_INTERVAL = 1.0


def generate_jwk(alg: str, kid: str) -> Key:
    """A fresh private key for a JWS algorithm (keys come from `cryptography` through joserfc)."""
    parameters: Any = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "Ed25519":
        return OKPKey.generate_key("Ed25519", parameters=parameters)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=parameters)
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=parameters)
    raise ValueError(f"unsupported signing algorithm {alg}")


class KeyRing:
    def __init__(
        self,
        repo: SigningKeyRepo,
        box: SecretBox,
        clock: Clock,
        *,
        rotation_interval: int,
        max_token_lifetime: int,
    ) -> None:
        self._repo = repo
        self._box = box
        self._clock = clock
        self._rotation_interval = rotation_interval
        self._max_token_lifetime = max_token_lifetime
        self._keys: list[SigningKey] = []
        self._private: dict[str, Key] = {}
        self._public: dict[str, Key] = {}
        self._loaded_at = -1e9
        self._unknown_kid_at = -1e9
        self._lock = asyncio.Lock()
        self._reloading: asyncio.Future[None] | None = None

    async def _create(self, alg: str, state: KeyState) -> SigningKey:
        kid = f"{alg.lower()}-{new_token()[:16]}"
        private = generate_jwk(alg, kid)
        now = self._clock.now()
        key = SigningKey(
            kid=kid,
            alg=alg,
            state=state,
            public_jwk=dict(private.as_dict(private=False)),
            private_jwk=self._box.seal(json.dumps(private.as_dict(private=True)).encode(), purpose=PURPOSE),
            created_at=now,
            activated_at=now if state is KeyState.ACTIVE else None,
        )
        await self._repo.add(key)
        return key

    async def ensure_keys(self) -> None:
        """Make sure every algorithm has an active key and a published next key."""
        keys = await self._repo.list()
        for alg in SIGNING_ALGORITHMS:
            states = {k.state for k in keys if k.alg == alg}
            if KeyState.ACTIVE not in states:
                await self._create(alg, KeyState.ACTIVE)
            if KeyState.NEXT not in states:
                await self._create(alg, KeyState.NEXT)
        await self.reload()

    async def reload(self) -> None:
        keys = list(await self._repo.list())
        now = self._clock.now()
        self._keys = [k for k in keys if k.expires_at is None or k.expires_at > now]
        self._public = {k.kid: import_key(k.public_jwk) for k in self._keys}
        self._loaded_at = time.monotonic()

    async def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at <= RELOAD_INTERVAL:
            return
        if not self._keys:  # nothing to answer with yet: wait for the read
            await self._reload_when_stale()
            return
        # The ring in memory answers while one read replaces it in the background: otherwise every
        # request arriving during the read waits on the lock, a stall of the whole endpoint every 30 s.
        # A rotation elsewhere is seen as late as before: its new active key was published a rotation
        # ahead, so tokens it signs verify here meanwhile.
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.ensure_future(self._reload_in_background())

    async def _reload_when_stale(self) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at > RELOAD_INTERVAL:
                await self.reload()

    async def _reload_in_background(self) -> None:
        try:
            await self._reload_when_stale()
        except Exception:  # the database is down, say: keep the ring, try again in a second
            log.warning("signing keys could not be reloaded; the ones in memory stay", exc_info=True)
            self._loaded_at = time.monotonic() - RELOAD_INTERVAL + 1.0

    def _private_key(self, key: SigningKey) -> Key:
        cached = self._private.get(key.kid)
        if cached is None:
            cached = import_key(json.loads(self._box.open(key.private_jwk, purpose=PURPOSE)))
            self._private[key.kid] = cached
        return cached

    async def signing_key(self, alg: str) -> tuple[str, Key]:
        """The active key for `alg` (created on first use if the ring is empty)."""
        await self._fresh()
        for key in self._keys:
            if key.alg == alg and key.state is KeyState.ACTIVE:
                return key.kid, self._private_key(key)
        async with self._lock:
            await self.ensure_keys()
        for key in self._keys:
            if key.alg == alg and key.state is KeyState.ACTIVE:
                return key.kid, self._private_key(key)
        raise RuntimeError(f"no active {alg} key")

    async def verification_key(self, kid: str) -> Key | None:
        """A published public key by kid; an unknown kid triggers at most one reload per second."""
        await self._fresh()
        key = self._public.get(kid)
        if key is None and time.monotonic() - self._unknown_kid_at > UNKNOWN_KID_RELOAD_INTERVAL:
            self._unknown_kid_at = time.monotonic()
            async with self._lock:
                await self.reload()
            key = self._public.get(kid)
        return key

    async def jwks(self) -> dict[str, Any]:
        """Public keys only: next, active and retired-but-unexpired."""
        await self._fresh()
        order = {KeyState.ACTIVE: 0, KeyState.NEXT: 1, KeyState.RETIRED: 2}
        keys = sorted(self._keys, key=lambda k: (order[k.state], k.alg, k.kid))
        return {"keys": [dict(k.public_jwk) for k in keys]}

    async def keys(self) -> list[SigningKey]:
        await self.reload()
        return list(self._keys)

    async def rotate(self, alg: str | None = None) -> list[str]:
        """Promote next -> active, retire the old active key, publish a new next key.

        Returns the kids that became active. The retired key stays published for the longest token
        lifetime, so tokens it signed keep verifying until they expire.
        """
        promoted: list[str] = []
        now = self._clock.now()
        keys = await self._repo.list()
        for algorithm in [alg] if alg else list(SIGNING_ALGORITHMS):
            current = [k for k in keys if k.alg == algorithm and k.state is KeyState.ACTIVE]
            upcoming = [k for k in keys if k.alg == algorithm and k.state is KeyState.NEXT]
            if not upcoming:
                upcoming = [await self._create(algorithm, KeyState.NEXT)]
            candidate = min(upcoming, key=lambda k: k.created_at)
            if not await self._repo.transition(
                candidate.kid, from_state=KeyState.NEXT, to_state=KeyState.ACTIVE, at=now
            ):
                continue  # another process rotated first
            for old in current:
                await self._repo.transition(
                    old.kid,
                    from_state=KeyState.ACTIVE,
                    to_state=KeyState.RETIRED,
                    at=now,
                    expires_at=now + self._max_token_lifetime + 60,
                )
            await self._create(algorithm, KeyState.NEXT)
            promoted.append(candidate.kid)
            log.info("rotated %s signing key: %s is active", algorithm, candidate.kid)
        await self._repo.delete_expired(now=now)
        await self.reload()
        return promoted

    async def rotate_if_due(self) -> list[str]:
        now = self._clock.now()
        keys = await self._repo.list()
        due = [
            k.alg
            for k in keys
            if k.state is KeyState.ACTIVE
            and (k.activated_at or k.created_at) + self._rotation_interval <= now
        ]
        promoted: list[str] = []
        for alg in sorted(set(due)):
            promoted += await self.rotate(alg)
        return promoted
