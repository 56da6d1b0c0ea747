"""What one check proved: the method, its RFC 8176 `amr` values and the kind of factor behind it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from threshold.core.models import Amr, Method, Passkey


class Factor(StrEnum):
    """SP 800-63B-4 authentication factors."""

    KNOWLEDGE = "knowledge"
    POSSESSION = "possession"


EMAIL = "email"
"""The method name of an emailed link or code (a sign-in way, not an authenticator)."""


@dataclass(frozen=True, slots=True)
class Proof:
    """One thing a person proved in this sign-in or step-up."""

    method: str
    amr: tuple[Amr, ...]
    factor: Factor | None
    """None: proves control of a mailbox, which is not an authenticator (SP 800-63B-4 section 3.1)."""
    multi_factor: bool = False
    """A passkey with user verification: possession plus a PIN or biometric on the device."""
    phishing_resistant: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "amr": [a.value for a in self.amr],
            "factor": self.factor.value if self.factor else None,
            "multi_factor": self.multi_factor,
            "phishing_resistant": self.phishing_resistant,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Proof:
        amr = data["amr"]
        factor = data["factor"]
        assert isinstance(amr, list)
        return cls(
            method=str(data["method"]),
            amr=tuple(Amr(a) for a in amr),
            factor=Factor(str(factor)) if factor else None,
            multi_factor=bool(data["multi_factor"]),
            phishing_resistant=bool(data["phishing_resistant"]),
        )


def dump_proofs(proofs: Sequence[Proof]) -> str:
    return json.dumps([p.to_json() for p in proofs])


def load_proofs(text: str) -> tuple[Proof, ...]:
    return tuple(Proof.from_json(item) for item in json.loads(text))


PASSWORD = Proof(method=Method.PASSWORD, amr=(Amr.PASSWORD,), factor=Factor.KNOWLEDGE)
TOTP = Proof(method=Method.TOTP, amr=(Amr.OTP,), factor=Factor.POSSESSION)
RECOVERY_CODE = Proof(method=Method.RECOVERY_CODE, amr=(Amr.OTP,), factor=Factor.POSSESSION)
"""A look-up secret: something you have (SP 800-63B-4 section 3.1.2)."""
EMAILED = Proof(method=EMAIL, amr=(Amr.EMAIL,), factor=None)


def passkey_proof(passkey: Passkey) -> Proof:
    """RFC 8176: `hwk` for a key bound to one device, `swk` for a synced (backup-eligible) passkey; the
    ceremony requires user verification, so one passkey is two factors and resists phishing."""
    key = Amr.SOFTWARE_KEY if passkey.backup_eligible else Amr.HARDWARE_KEY
    return Proof(
        method=Method.PASSKEY,
        amr=(key, Amr.USER_PRESENCE),
        factor=Factor.POSSESSION,
        multi_factor=True,
        phishing_resistant=True,
    )


def proofs_of_amr(amr: Sequence[Amr]) -> list[Proof]:
    """What a session's recorded `amr` stands for, to combine it with a step-up's new proof."""
    proofs: list[Proof] = []
    for value in amr:
        if value is Amr.PASSWORD:
            proofs.append(PASSWORD)
        elif value is Amr.OTP:
            proofs.append(TOTP)
        elif value is Amr.EMAIL:
            proofs.append(EMAILED)
        elif value in (Amr.HARDWARE_KEY, Amr.SOFTWARE_KEY):
            proofs.append(
                Proof(
                    method=Method.PASSKEY,
                    amr=(value,),
                    factor=Factor.POSSESSION,
                    multi_factor=True,
                    phishing_resistant=True,
                )
            )
    return proofs
