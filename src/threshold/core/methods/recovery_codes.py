"""Recovery codes: ten single-use look-up secrets (SP 800-63B-4 section 3.1.2), stored as digests.

Each code carries 25 characters of a 31-letter alphabet, about 124 bits: at least 112 bits, so an
unsalted SHA-256 digest of it cannot be searched (SP 800-63B-4 asks for 112 bits before a fast hash).
Codes made before (12 characters, about 59 bits) still work until they are used or replaced; the
account page asks their owners to make new ones.
"""

from __future__ import annotations

import secrets

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.methods.proofs import RECOVERY_CODE, Proof
from threshold.core.models import AuditKind, RequestContext, User
from threshold.core.ports import FactorRepo
from threshold.core.secrets import digest

COUNT = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
GROUPS = 5
GROUP_LENGTH = 5  # 25 characters of a 31-letter alphabet: about 124 bits each
MAX_INPUT = 64


def new_recovery_codes(count: int = COUNT) -> list[str]:
    return [
        "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
        for _ in range(count)
    ]


def normalize_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def recovery_code_digest(code: str) -> str:
    return digest("recovery:" + normalize_recovery_code(code))


class RecoveryCodeMethod:
    def __init__(self, *, factors: FactorRepo, auditor: Auditor, clock: Clock) -> None:
        self._factors = factors
        self._audit = auditor
        self._clock = clock

    async def verify_recovery_code(
        self, user: User, code: str, context: RequestContext | None
    ) -> Proof | None:
        """Use up one of the user's codes (single use, atomically); None when it is not one of them."""
        if not code or len(code) > MAX_INPUT:
            return None
        if not await self._factors.use_recovery_code(
            user.id, recovery_code_digest(code), at=self._clock.now()
        ):
            return None
        left = await self._factors.count_recovery_codes(user.id)
        await self._audit.record(
            AuditKind.RECOVERY_CODE_USED, user_id=user.id, context=context, left=str(left)
        )
        return RECOVERY_CODE

    async def replace_codes(self, user: User, context: RequestContext) -> list[str]:
        """New codes, shown once; the old ones stop working."""
        codes = new_recovery_codes()
        await self._factors.replace_recovery_codes(
            user.id, [recovery_code_digest(c) for c in codes], at=self._clock.now()
        )
        await self._audit.record(AuditKind.RECOVERY_CODES_GENERATED, user_id=user.id, context=context)
        return codes

    async def codes_left(self, user: User) -> int:
        return await self._factors.count_recovery_codes(user.id)
