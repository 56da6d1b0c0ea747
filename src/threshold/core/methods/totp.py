"""TOTP (RFC 6238) through pyotp: 6 digits, 30-second steps, a window of one step either side."""

from __future__ import annotations

import base64
import secrets

import pyotp

from threshold.core.clock import Clock
from threshold.core.crypto import DecryptionFailed, SecretBox
from threshold.core.errors import TotpNotStarted
from threshold.core.i18n import N_
from threshold.core.methods.proofs import TOTP, Proof
from threshold.core.models import TotpCredential, User
from threshold.core.ports import FactorRepo
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


TOTP_PURPOSE = "totp"


class TotpMethod:
    """The user's authenticator app: its secret sealed at rest, each code accepted once."""

    def __init__(self, *, factors: FactorRepo, box: SecretBox, clock: Clock) -> None:
        self._factors = factors
        self._box = box
        self._clock = clock

    def open_secret(self, credential: TotpCredential) -> str:
        try:
            return self._box.open(credential.secret, purpose=TOTP_PURPOSE).decode()
        except DecryptionFailed as exc:
            raise TotpNotStarted(N_("The authenticator secret cannot be read; set it up again.")) from exc

    def seal_secret(self, secret: str) -> str:
        return self._box.seal(secret.encode(), purpose=TOTP_PURPOSE)

    async def confirmed(self, user: User) -> bool:
        credential = await self._factors.get_totp(user.id)
        return credential is not None and credential.confirmed

    async def verify_totp(self, user: User, code: str, *, confirming: bool = False) -> Proof | None:
        """The proof when `code` is the app's current code, not used before; None otherwise.

        `confirming`: the code of a setup in progress (the secret is not confirmed yet)."""
        credential = await self._factors.get_totp(user.id)
        if credential is None or credential.confirmed is confirming:
            return None
        step = verify_totp_code(
            secret=self.open_secret(credential),
            code=code,
            now=self._clock.now(),
            last_used_step=0 if confirming else credential.last_used_step,
        )
        if step is None or not await self._factors.use_totp_step(user.id, step):
            return None
        return TOTP
