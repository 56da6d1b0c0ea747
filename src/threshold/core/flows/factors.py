"""Factor settings: adding and removing passkeys, an authenticator app, recovery codes and the password.

Every change needs a recent sign-in or step-up; adding or removing a second factor on an account that
has one needs a recent second factor or passkey (`StepUp.require_for_factor_change`), so a stolen
password alone cannot swap the second factor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.errors import FactorNotFound, InvalidRequest, LastSignInMethod, TotpNotStarted
from threshold.core.flows.inventory import FactorStatus, Inventory
from threshold.core.flows.proving import Proving
from threshold.core.flows.stepup import StepUp
from threshold.core.i18n import N_
from threshold.core.methods.passkey import PasskeyMethod
from threshold.core.methods.proofs import passkey_proof
from threshold.core.methods.totp import new_totp_secret, provisioning_uri
from threshold.core.models import AuditKind, Passkey, RequestContext, SessionRecord, TotpCredential, User
from threshold.core.ports import FactorRepo, UserRepo
from threshold.core.secrets import new_id
from threshold.settings import MfaSettings

LOW_RECOVERY_CODES = 2


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class FactorAdded:
    """A factor was added; `recovery_codes` is set (shown once) when it was the first one."""

    recovery_codes: list[str] | None


class Factors(Inventory):
    """What a user has (`Inventory`) and the settings flow that changes it."""

    def __init__(
        self,
        *,
        users: UserRepo,
        factors: FactorRepo,
        proving: Proving,
        passkey: PasskeyMethod,
        stepup: StepUp,
        auditor: Auditor,
        clock: Clock,
        settings: MfaSettings,
    ) -> None:
        super().__init__(users=users, factors=factors, settings=settings)
        self._proving = proving
        self._passkey = passkey
        self._stepup = stepup
        self._audit = auditor
        self._clock = clock
        self.rp_id = passkey.rp_id

    # --- passkeys -----------------------------------------------------------------------------------

    async def passkey_registration_options(self, user: User, session: SessionRecord) -> dict[str, Any]:
        await self._stepup.require_for_factor_change(user, session)
        return await self._passkey.registration_options(user)

    async def add_passkey(
        self,
        user: User,
        session: SessionRecord,
        *,
        credential: dict[str, Any],
        name: str | None,
        context: RequestContext,
    ) -> tuple[Passkey, FactorAdded]:
        await self._stepup.require_for_factor_change(user, session)
        verified = await self._passkey.verify_registration(user, credential)
        first = not await self.has_second_factor(user)
        passkey = Passkey(
            id=new_id(),
            user_id=user.id,
            credential_id=verified.credential_id,
            public_key=verified.public_key,
            sign_count=verified.sign_count,
            transports=verified.transports,
            backup_eligible=verified.backup_eligible,
            backup_state=verified.backup_state,
            aaguid=verified.aaguid,
            name=_clean_name(name)
            or _unique_name(_default_passkey_name(context), await self._factors.list_passkeys(user.id)),
            created_at=self._clock.now(),
        )
        await self._factors.add_passkey(passkey)
        await self._stepup.note_proofs(session, [passkey_proof(passkey)])  # the new factor was just proved
        await self._audit.record(
            AuditKind.PASSKEY_ADDED, user_id=user.id, context=context, passkey=passkey.id
        )
        return passkey, FactorAdded(await self._first_factor_codes(user, first, context))

    async def rename_passkey(
        self, user: User, passkey_id: str, name: str, *, context: RequestContext
    ) -> None:
        cleaned = _clean_name(name)
        if not cleaned:
            raise InvalidRequest(N_("Give the passkey a name of 1 to 100 printable characters."))
        if not await self._factors.rename_passkey(user.id, passkey_id, cleaned):
            raise FactorNotFound()
        await self._audit.record(
            AuditKind.PASSKEY_RENAMED, user_id=user.id, context=context, passkey=passkey_id
        )

    async def remove_passkey(
        self, user: User, session: SessionRecord, passkey_id: str, *, context: RequestContext
    ) -> None:
        await self._stepup.require_for_factor_change(user, session)
        status = await self.status(user)
        if not any(p.id == passkey_id for p in status.passkeys):
            raise FactorNotFound()
        others = [p for p in status.passkeys if p.id != passkey_id and not p.flagged]  # usable ones
        if not status.has_password and not others:
            raise LastSignInMethod()
        await self._factors.delete_passkey(user.id, passkey_id)
        await self._audit.record(
            AuditKind.PASSKEY_REMOVED, user_id=user.id, context=context, passkey=passkey_id
        )

    async def remove_password(self, user: User, session: SessionRecord, *, context: RequestContext) -> None:
        """Make the account passkey-only. Refused while no passkey would remain to sign in with."""
        await self._stepup.require_for_factor_change(user, session)
        status = await self.status(user)
        if not status.has_password:
            raise FactorNotFound(N_("This account has no password."))
        if not [p for p in status.passkeys if not p.flagged]:
            raise LastSignInMethod(N_("Add a passkey before removing your password."))
        await self._users.delete_password(user.id)
        await self._audit.record(AuditKind.PASSWORD_REMOVED, user_id=user.id, context=context)

    # --- TOTP -----------------------------------------------------------------------------------------

    async def start_totp(self, user: User, session: SessionRecord, *, issuer: str) -> TotpEnrollment:
        """A new secret, stored encrypted and unconfirmed until a valid code comes back."""
        await self._stepup.require_for_factor_change(user, session)
        existing = await self._factors.get_totp(user.id)
        if existing is not None and existing.confirmed:
            raise InvalidRequest(N_("An authenticator app is already set up; remove it first."))
        secret = new_totp_secret()
        await self._factors.put_totp(
            TotpCredential(
                user_id=user.id,
                secret=self._proving.totp.seal_secret(secret),
                confirmed=False,
                last_used_step=0,
                created_at=self._clock.now(),
            )
        )
        return TotpEnrollment(secret=secret, uri=provisioning_uri(secret, account=user.email, issuer=issuer))

    async def unconfirmed_totp(self, user: User, *, issuer: str) -> TotpEnrollment | None:
        """The secret of a setup in progress, to show again after a wrong confirmation code."""
        credential = await self._factors.get_totp(user.id)
        if credential is None or credential.confirmed:
            return None
        secret = self._proving.totp.open_secret(credential)
        return TotpEnrollment(secret=secret, uri=provisioning_uri(secret, account=user.email, issuer=issuer))

    async def confirm_totp(
        self, user: User, session: SessionRecord, *, code: str, context: RequestContext
    ) -> FactorAdded:
        await self._stepup.require_for_factor_change(user, session)
        credential = await self._factors.get_totp(user.id)
        if credential is None or credential.confirmed:
            raise TotpNotStarted()
        proof = await self._proving.prove_setup_code(user, code=code, context=context)
        await self._stepup.note_proofs(session, [proof])  # the new factor was just proved
        first = not await self.has_second_factor(user)
        await self._factors.confirm_totp(user.id)
        await self._audit.record(AuditKind.TOTP_ENABLED, user_id=user.id, context=context)
        return FactorAdded(await self._first_factor_codes(user, first, context))

    async def remove_totp(self, user: User, session: SessionRecord, *, context: RequestContext) -> None:
        await self._stepup.require_for_factor_change(user, session)
        if not await self._factors.delete_totp(user.id):
            raise FactorNotFound()
        await self._audit.record(AuditKind.TOTP_REMOVED, user_id=user.id, context=context)

    # --- recovery codes -------------------------------------------------------------------------------

    async def _first_factor_codes(self, user: User, first: bool, context: RequestContext) -> list[str] | None:
        return await self._proving.recovery_codes.replace_codes(user, context) if first else None

    async def regenerate_recovery_codes(
        self, user: User, session: SessionRecord, *, context: RequestContext
    ) -> list[str]:
        """New codes, shown once; the old ones stop working."""
        await self._stepup.require_for_factor_change(user, session)
        if not await self.has_second_factor(user):
            raise InvalidRequest(N_("Add a passkey or an authenticator app first."))
        return await self._proving.recovery_codes.replace_codes(user, context)

    # --- the upgrade prompt ---------------------------------------------------------------------------

    async def should_offer_passkey(self, user: User) -> bool:
        if user.passkey_prompt_snoozed_until and user.passkey_prompt_snoozed_until > self._clock.now():
            return False
        return not await self._factors.list_passkeys(user.id)

    async def snooze_passkey_prompt(self, user: User) -> None:
        await self._users.snooze_passkey_prompt(
            user.id, self._clock.now() + self._settings.passkey_prompt_snooze
        )


def _clean_name(name: str | None) -> str:
    if not name:
        return ""
    return " ".join(name.split())[:100] if name.isprintable() else ""


def _unique_name(name: str, existing: Sequence[Passkey]) -> str:
    """ "Passkey on Chrome on macOS", then "... (2)", so two passkeys can be told apart."""
    taken = {p.name for p in existing}
    if name not in taken:
        return name
    number = 2
    while f"{name} ({number})" in taken:
        number += 1
    return f"{name[:90]} ({number})"


def _default_passkey_name(context: RequestContext) -> str:
    from threshold.core.devices import device_label

    return f"Passkey on {device_label(context.user_agent)}"[:100]


__all__ = ["LOW_RECOVERY_CODES", "FactorAdded", "FactorStatus", "Factors", "TotpEnrollment"]
