"""Which locked accounts a sign-in lets through: the one rule for every way in that can lead to keeping
an account (a password, the second step after it, a passkey).

A disabled account is refused, unless it is locked by its own deletion and the grace period is still
running (core.deletion): then the proofs lead to the offer to keep the account, never to a session
(core.flows.signin). Emailed links and upstream sign-in refuse every disabled account.
"""

from __future__ import annotations

from typing import Protocol

from threshold.core.models import User


class Restorable(Protocol):
    async def restorable(self, user: User) -> object | None:
        """What a sign-in of this locked account may still undo, or None."""
        ...


class SignInLock:
    def __init__(self) -> None:
        self._deletions: Restorable | None = None

    def attach(self, deletions: Restorable) -> None:
        """Deletions are built after the sign-in engine (they need the console and the revoker)."""
        self._deletions = deletions

    async def refuses(self, user: User) -> bool:
        if not user.disabled:
            return False
        return self._deletions is None or await self._deletions.restorable(user) is None
