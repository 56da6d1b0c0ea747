"""Errors of upstream sign-in. Each carries a stable `reason` so operators and tests can tell the
refusals apart; the person sees one clear sentence and never a stack trace."""

from __future__ import annotations

from threshold.core.errors import Forbidden, NotFound, ThresholdError
from threshold.core.i18n import N_


class SsoRejected(ThresholdError):
    """The identity provider's answer cannot be accepted (bad signature, wrong audience, replay...).

    `reason` is one of the stable strings the protocol modules define (`signature_invalid`, `expired`,
    `replayed`...); it is public (the IdP administrator needs it) and reveals nothing about accounts.
    """

    code = "sso_rejected"
    message = N_("The identity provider's answer could not be accepted.")

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason


class SsoRequired(Forbidden):
    """This address signs in at its organization's identity provider (home-realm discovery).

    `redirect` is where the person goes to do so: `{issuer}/sso/start?email=...`.
    """

    code = "sso_required"
    message = N_("Your organization signs you in with its identity provider.")

    def __init__(self, redirect: str) -> None:
        super().__init__(None, redirect=redirect)
        self.redirect = redirect


class ConnectionNotFound(NotFound):
    code = "connection_not_found"
    message = N_("No such connection.")


class SsoFlowInvalid(ThresholdError):
    """The sign-in at the IdP cannot be matched to one this browser started (expired, used, forged)."""

    code = "sso_flow_invalid"
    message = N_("This sign-in expired or was started in another browser. Start again.")
