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
SSO = "sso"
"""The method name of a sign-in at an upstream identity provider (enterprise or social connection)."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where an upstream proof came from and what the identity provider said of its authentication."""

    connection_id: str
    org_id: str | None
    acr: str | None = None
    amr: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "connection_id": self.connection_id,
            "org_id": self.org_id,
            "acr": self.acr,
            "amr": list(self.amr),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Upstream:
        amr = data.get("amr") or []
        assert isinstance(amr, list)
        org_id, acr = data.get("org_id"), data.get("acr")
        return cls(
            connection_id=str(data["connection_id"]),
            org_id=str(org_id) if org_id else None,
            acr=str(acr) if acr else None,
            amr=tuple(str(a) for a in amr),
        )


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
    upstream: Upstream | None = None
    """Set on a sign-in at an upstream identity provider: the connection and its own assurance."""

    def to_json(self) -> dict[str, object]:
        return {
            "upstream": self.upstream.to_json() if self.upstream else None,
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
        upstream = data.get("upstream")
        assert isinstance(amr, list)
        return cls(
            upstream=Upstream.from_json(upstream) if isinstance(upstream, dict) else None,
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
        elif value is Amr.MFA:
            proofs.append(Proof(method=SSO, amr=(value,), factor=Factor.POSSESSION, multi_factor=True))
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


UPSTREAM_AMR = {a.value: a for a in (Amr.PASSWORD, Amr.MFA)}
"""What of an IdP's `amr` a session's own `amr` repeats: its keys and codes are not this service's
authenticators (a step-up must not count an upstream `hwk` as a local passkey); the rest stays in
the session's `upstream_amr`."""


def upstream_proof(upstream: Upstream, *, mfa: bool) -> Proof:
    """A sign-in at an upstream identity provider. Its `amr` keeps the RFC 8176 values we know of what
    the IdP reported; it counts as two factors only when the IdP said it used more than one (`mfa`),
    else as one factor (the IdP's password), so a local second factor can still be asked for."""
    amr = tuple(dict.fromkeys(UPSTREAM_AMR[a] for a in upstream.amr if a in UPSTREAM_AMR))
    if mfa and Amr.MFA not in amr:
        amr = (*amr, Amr.MFA)
    return Proof(
        method=SSO,
        amr=amr,
        factor=Factor.POSSESSION if mfa else Factor.KNOWLEDGE,
        multi_factor=mfa,
        upstream=upstream,
    )
