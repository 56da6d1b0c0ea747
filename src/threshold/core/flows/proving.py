"""Every check of a guessable secret after the first step runs under the account's code budget:
reserve the attempt, check it, give the reservation back on success (issue 11: a counter read before a
slow check and raised after it is no limit)."""

from __future__ import annotations

from threshold.core.audit import Auditor
from threshold.core.errors import InvalidRequest, MfaCodeInvalid
from threshold.core.i18n import N_
from threshold.core.methods.password import PasswordMethod
from threshold.core.methods.proofs import Proof
from threshold.core.methods.recovery_codes import RecoveryCodeMethod
from threshold.core.methods.totp import TotpMethod
from threshold.core.models import AuditKind, Method, RequestContext, User
from threshold.core.ratelimit import LoginThrottle

SETUP = "totp_setup"
"""The audit name of a setup code's check."""


class Proving:
    def __init__(
        self,
        *,
        throttle: LoginThrottle,
        password: PasswordMethod,
        totp: TotpMethod,
        recovery_codes: RecoveryCodeMethod,
        auditor: Auditor,
    ) -> None:
        self._throttle = throttle
        self.password = password
        self.totp = totp
        self.recovery_codes = recovery_codes
        self._audit = auditor

    async def prove(self, user: User, *, method: str, secret: str, context: RequestContext | None) -> Proof:
        """Check a password (step-up), TOTP code or recovery code.

        Raises:
            InvalidRequest: any other method.
            RateLimited, ConsecutiveFailuresCapped, MfaCodeInvalid: see _checked.
        """
        if method not in (Method.PASSWORD, Method.TOTP, Method.RECOVERY_CODE):
            raise InvalidRequest(N_("method must be password, totp or recovery_code."))
        return await self._checked(user, method=method, secret=secret, context=context)

    async def prove_setup_code(self, user: User, *, code: str, context: RequestContext | None) -> Proof:
        """The first code of an authenticator app being set up (its secret is not confirmed yet): it
        proves the new app, and is no sign-in or step-up method."""
        return await self._checked(user, method=SETUP, secret=code, context=context)

    async def _checked(
        self, user: User, *, method: str, secret: str, context: RequestContext | None
    ) -> Proof:
        """The check, under the account's code budget.

        Raises:
            RateLimited: the account's code budget is spent (the attempt was not checked).
            ConsecutiveFailuresCapped: too many failures in a row on this account.
            MfaCodeInvalid: wrong (the attempt stays counted).
        """
        reservation = await self._throttle.reserve_code(user.id)
        proof: Proof | None
        if method == Method.PASSWORD:
            proof = await self.password.verify_password(user, secret, context)
        elif method == Method.TOTP:
            proof = await self.totp.verify_totp(user, secret)
        elif method == SETUP:
            proof = await self.totp.verify_totp(user, secret, confirming=True)
        else:
            proof = await self.recovery_codes.verify_recovery_code(user, secret, context)
        if proof is None:
            await self._audit.record(AuditKind.MFA_FAILED, user_id=user.id, context=context, method=method)
            raise MfaCodeInvalid("The password is incorrect." if method == Method.PASSWORD else None)
        await self._throttle.code_succeeded(reservation)
        return proof
