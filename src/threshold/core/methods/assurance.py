"""Assurance from proofs, in one place: which proofs give which `aal`, `amr` and `acr`.

SP 800-63B-4: AAL2 needs either a multi-factor authenticator (a passkey with user verification) or two
authenticators of different factors (a password with a TOTP or recovery code). An emailed link or code
proves control of a mailbox and is no authenticator: an emailed link plus a TOTP code is one factor,
so it is `aal1`, with `amr` ["email", "otp"] and `acr` "aal1".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from threshold.core.methods.proofs import SSO, Factor, Proof, proofs_of_amr
from threshold.core.models import Aal, Amr


@dataclass(frozen=True, slots=True)
class Assurance:
    aal: Aal
    amr: tuple[Amr, ...]

    @property
    def acr(self) -> str:
        """The `acr` claim: the assurance level's name."""
        return self.aal.value


def assess(proofs: Iterable[Proof]) -> Assurance:
    proofs = list(proofs)
    amr = tuple(dict.fromkeys(a for p in proofs for a in p.amr))
    return Assurance(aal=Aal.AAL2 if is_strong(proofs) else Aal.AAL1, amr=amr)


def is_strong(proofs: Iterable[Proof]) -> bool:
    """Whether these proofs together reach AAL2."""
    authenticators = [p for p in proofs if p.factor is not None]
    return any(p.multi_factor for p in authenticators) or len({p.factor for p in authenticators}) >= 2


def is_second_factor(proof: Proof) -> bool:
    """A proof that stands for something other than the password: possession (or more)."""
    return proof.multi_factor or proof.factor is Factor.POSSESSION


def is_local_second_factor(proof: Proof) -> bool:
    """A second factor proved to this service itself (an authenticator app's or recovery code, a
    passkey), not an upstream identity provider's word that it used one."""
    return proof.upstream is None and proof.method != SSO and is_second_factor(proof)


def proved_locally(amr: Iterable[Amr]) -> bool:
    """Whether a session's `amr` includes a second factor proved here (an IdP's `amr` reaches a session's
    own only as `pwd` and `mfa`, core.methods.proofs.UPSTREAM_AMR)."""
    return any(is_local_second_factor(p) for p in proofs_of_amr(list(amr)))
