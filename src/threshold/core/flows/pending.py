"""Pending sign-ins: a first step was proved, a second is owed. A short-lived, single-purpose token (in
its own cookie) names the stored proofs and the credential epoch they were made under."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from threshold.core.clock import Clock
from threshold.core.errors import PendingLoginMissing
from threshold.core.flows.outcome import MfaRequired
from threshold.core.methods.proofs import Proof, dump_proofs, load_proofs
from threshold.core.models import User
from threshold.core.ports import EphemeralStore
from threshold.core.secrets import digest, new_token

MAX_TOKEN = 128


@dataclass(frozen=True, slots=True)
class PendingLogin:
    user_id: str
    proofs: tuple[Proof, ...]
    epoch: int
    keeps_account: bool = False
    """Held for an offer to keep an account being deleted (`SignIn.restore`), not for a second step:
    only such a token keeps an account, so a password alone never does where a second factor is owed."""


class PendingLogins:
    def __init__(self, ephemeral: EphemeralStore, clock: Clock, *, lifetime: int) -> None:
        self._ephemeral = ephemeral
        self._clock = clock
        self._lifetime = lifetime

    @staticmethod
    def _key(token: str) -> str:
        return f"pending:{digest(token)}"

    async def start(
        self,
        user: User,
        *,
        proofs: Sequence[Proof],
        epoch: int,
        methods: list[str],
        keeps_account: bool = False,
    ) -> MfaRequired:
        token = new_token()
        expires_at = self._clock.now() + self._lifetime
        stored = {"user_id": user.id, "proofs": dump_proofs(proofs), "epoch": epoch}
        if keeps_account:
            stored["keeps_account"] = True
        value = json.dumps(stored)
        await self._ephemeral.put(self._key(token), value, expires_at=expires_at)
        return MfaRequired(token=token, methods=methods, expires_at=expires_at)

    async def load(self, token: str | None) -> PendingLogin:
        """Raises PendingLoginMissing: no such pending sign-in (expired, finished, or never started)."""
        if not token or len(token) > MAX_TOKEN:
            raise PendingLoginMissing()
        value = await self._ephemeral.get(self._key(token), now=self._clock.now())
        if value is None:
            raise PendingLoginMissing()
        data = json.loads(value)
        return PendingLogin(
            user_id=data["user_id"],
            proofs=load_proofs(data["proofs"]),
            epoch=int(data["epoch"]),
            keeps_account=data.get("keeps_account") is True,
        )

    async def take(self, token: str) -> None:
        """Consume it in one step: of two concurrent completions, only one gets a session.

        Raises:
            PendingLoginMissing: another request completed it (or it expired) meanwhile.
        """
        if await self._ephemeral.take(self._key(token), now=self._clock.now()) is None:
            raise PendingLoginMissing()
