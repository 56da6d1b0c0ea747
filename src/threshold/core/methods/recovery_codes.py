"""Recovery codes: ten single-use look-up secrets (SP 800-63B section 3.1.2), stored as digests."""

from __future__ import annotations

import secrets

from threshold.core.secrets import digest

COUNT = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
GROUPS = 3
GROUP_LENGTH = 4  # 12 characters of a 31-letter alphabet: about 59 bits each


def new_recovery_codes(count: int = COUNT) -> list[str]:
    return [
        "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
        for _ in range(count)
    ]


def normalize_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def recovery_code_digest(code: str) -> str:
    return digest("recovery:" + normalize_recovery_code(code))
