"""TOTP (RFC 6238) through pyotp: 6 digits, 30-second steps, a window of one step either side."""

from __future__ import annotations

import base64
import secrets

import pyotp

from threshold.core.secrets import equal

STEP = 30
DIGITS = 6
WINDOW = 1


def new_totp_secret() -> str:
    """160 random bits (RFC 4226 section 4 recommends at least 128), base32."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(name=account, issuer_name=issuer)


def verify_totp_code(*, secret: str, code: str, now: float, last_used_step: int) -> int | None:
    """The time step a code belongs to, if it is valid and later than the last one used.

    Args:
        secret: the base32 secret.
        code: what the user typed (spaces ignored).
        now: the current time.
        last_used_step: the step of the last accepted code; it and earlier steps are refused, so a
            code works once (RFC 6238 section 5.2).

    Returns:
        The matching step, or None.
    """
    candidate = code.replace(" ", "").strip()
    if len(candidate) != DIGITS or not candidate.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    current = int(now // STEP)
    found: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if equal(totp.generate_otp(step), candidate) and step > last_used_step:
            found = step  # no early exit: the same work for every outcome
    return found
