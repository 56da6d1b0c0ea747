"""Errors of upstream sign-in. Each carries a stable `reason` so operators and tests can tell the
refusals apart; the person sees one clear sentence and never a stack trace."""

from __future__ import annotations

from threshold.core.errors import ThresholdError


class SsoRejected(ThresholdError):
    """The identity provider's answer cannot be accepted (bad signature, wrong audience, replay...).

    `reason` is one of the stable strings the protocol modules define (`signature_invalid`, `expired`,
    `replayed`...); it is public (the IdP administrator needs it) and reveals nothing about accounts.
    """

    code = "sso_rejected"
    message = "The identity provider's answer could not be accepted."

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason
