"""What a user has to sign in with, and what a sign-in must continue with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from threshold.core.models import Method, Passkey, User
from threshold.core.ports import FactorRepo, UserRepo
from threshold.settings import MfaSettings


@dataclass(frozen=True, slots=True)
class FactorStatus:
    totp: bool
    passkeys: Sequence[Passkey]
    recovery_codes_left: int
    has_password: bool
    mfa_required: bool

    @property
    def has_second_factor(self) -> bool:
        return self.totp or bool(self.passkeys)


class Inventory:
    def __init__(self, *, users: UserRepo, factors: FactorRepo, settings: MfaSettings) -> None:
        self._users = users
        self._factors = factors
        self._settings = settings

    async def status(self, user: User) -> FactorStatus:
        return FactorStatus(
            totp=await self._has_totp(user),
            passkeys=await self._factors.list_passkeys(user.id),
            recovery_codes_left=await self._factors.count_recovery_codes(user.id),
            has_password=await self._users.get_password(user.id) is not None,
            mfa_required=self._settings.required or user.mfa_required,
        )

    @staticmethod
    def second_factor_methods(status: FactorStatus) -> list[str]:
        methods: list[str] = []
        if status.passkeys:
            methods.append(Method.PASSKEY)
        if status.totp:
            methods.append(Method.TOTP)
        if status.recovery_codes_left and status.has_second_factor:  # codes back up a factor, never alone
            methods.append(Method.RECOVERY_CODE)
        return methods

    async def _has_totp(self, user: User) -> bool:
        totp = await self._factors.get_totp(user.id)
        return totp is not None and totp.confirmed

    async def has_second_factor(self, user: User) -> bool:
        found = await self._factors.second_factors(user.id)
        return found.passkey or found.totp

    async def second_factors(self, user: User) -> list[str]:
        """The methods a sign-in must continue with; the sign-in path's short form of status(): one
        lookup, and the password is not read again."""
        found = await self._factors.second_factors(user.id)
        methods: list[str] = [Method.PASSKEY] if found.passkey else []
        if found.totp:
            methods.append(Method.TOTP)
        if methods and found.recovery_codes:  # codes back up a factor, never alone
            methods.append(Method.RECOVERY_CODE)
        return methods

    async def needs_enrollment(self, user: User) -> bool:
        """MFA is required for this user (by Settings or an operator) and they have no second factor."""
        if not (self._settings.required or user.mfa_required):
            return False
        return not await self.has_second_factor(user)
