"""The ends of a sign-in flow, as values: a session was issued, or a second factor is owed (or, before
it, the address must be verified). Surfaces turn them into responses, each with one function."""

from __future__ import annotations

from dataclasses import dataclass

from threshold.core.methods.assurance import Assurance
from threshold.core.models import User
from threshold.core.sessions import IssuedSession


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The proofs were enough and a fresh session (new id) was issued; the browser's previous session,
    if any, has been ended."""

    user: User
    session: IssuedSession
    assurance: Assurance | None = None


@dataclass(frozen=True, slots=True)
class MfaRequired:
    """A first step was proved and a second factor is owed: `token` goes into the pending cookie."""

    token: str
    methods: list[str]
    expires_at: float


@dataclass(frozen=True, slots=True)
class VerificationPending:
    """Sign-up answered without a session: the address must be verified first (or is already taken)."""


@dataclass(frozen=True, slots=True)
class RestoreOffered:
    """The proofs were those of an account whose deletion is in its grace period: no session, but the
    offer to keep the account (`SignIn.restore` with `token`, which goes into the pending cookie)."""

    token: str
    expires_at: float
    erase_at: float


SignInOutcome = SignedIn | MfaRequired | RestoreOffered
