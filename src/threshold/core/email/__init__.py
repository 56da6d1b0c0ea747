"""Email: verification, password reset, sign-in by link or code, email change, security notices."""

from threshold.core.email.codes import (
    ConfirmationRequired,
    EmailLoginDisabled,
    EmailLoginStarted,
    TokenInvalid,
)
from threshold.core.email.flows import EmailFlows
from threshold.core.email.notices import NOTICES, Notices

__all__ = [
    "NOTICES",
    "ConfirmationRequired",
    "EmailFlows",
    "EmailLoginDisabled",
    "EmailLoginStarted",
    "Notices",
    "TokenInvalid",
]
