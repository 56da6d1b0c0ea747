"""The emailed link or code as a sign-in way: its errors, the 6-digit code and its binding to the
browser that asked. It proves control of a mailbox; it is no authenticator (see methods.assurance)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from threshold.core.errors import (
    Forbidden,
    ThresholdError,
)
from threshold.core.i18n import N_
from threshold.core.secrets import digest


class TokenInvalid(ThresholdError):
    code = "token_invalid"
    message = N_("This link or code is invalid, expired or was already used.")


class ConfirmationRequired(ThresholdError):
    """A sign-in link opened in another browser than the one that asked: confirm before signing in."""

    code = "confirmation_required"
    message = N_("This sign-in link was requested from another browser. Confirm to sign in here.")


class EmailLoginDisabled(Forbidden):
    code = "email_login_disabled"
    message = N_("Sign-in by email is switched off on this service.")


@dataclass(frozen=True, slots=True)
class EmailLoginStarted:
    """`binding` goes into a cookie of the asking browser; the link and code are only in the email."""

    binding: str


def login_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


_NO_CODE = digest("no code was sent to this browser")
"""Compared against when no code exists, so that an unknown address costs the same comparison."""


def _code_digest(binding_digest: str, code: str) -> str:
    """The emailed code, bound to the asking browser: useless with another browser's binding."""
    return digest(f"login-code:{binding_digest}:{code}")
