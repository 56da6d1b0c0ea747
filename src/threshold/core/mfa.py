"""Second factors, passkeys, step-up and the recovery ladder.

Flows take plain values and the signed-in session, never a request object. A password sign-in of a
user with a second factor becomes a *pending login* (a short-lived, single-purpose token in its own
cookie); the full session, with a new id, exists only after the factor.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.crypto import DecryptionFailed, SecretBox
from threshold.core.errors import (
    ChallengeExpired,
    FactorNotFound,
    InvalidRequest,
    LastSignInMethod,
    MfaCodeInvalid,
    PasskeyRejected,
    PendingLoginMissing,
    RateLimited,
    ReauthenticationRequired,
    TotpNotStarted,
)
from threshold.core.methods import passkeys as webauthn
from threshold.core.methods.recovery_codes import new_recovery_codes, recovery_code_digest
from threshold.core.methods.totp import new_totp_secret, provisioning_uri, verify_totp_code
from threshold.core.models import (
    Aal,
    Amr,
    AuditKind,
    Method,
    Passkey,
    RecoveryRequest,
    RequestContext,
    SessionRecord,
    TotpCredential,
    User,
)
from threshold.core.passwords import PasswordHasher
from threshold.core.ports import EphemeralStore, FactorRepo, RateLimitStore, UserRepo
from threshold.core.secrets import digest, new_id, new_token
from threshold.core.sessions import IssuedSession, SessionService
from threshold.settings import MfaSettings

TOTP_PURPOSE = "totp"
LOW_RECOVERY_CODES = 2


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A first factor was proved; the second is still owed."""

    user_id: str
    amr: tuple[Amr, ...]
    expires_at: float


@dataclass(frozen=True, slots=True)
class MfaRequired:
    """The password was right and a second factor is needed: `token` goes into the pending cookie."""

    token: str
    methods: list[str]
    expires_at: float


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class FactorAdded:
    """A factor was added; `recovery_codes` is set (shown once) when it was the first one."""

    recovery_codes: list[str] | None


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


def passkey_amr(passkey: Passkey) -> Amr:
    """RFC 8176: `hwk` for a key bound to one device, `swk` for a synced (backup-eligible) passkey."""
    return Amr.SOFTWARE_KEY if passkey.backup_eligible else Amr.HARDWARE_KEY


class Factors:
    def __init__(
        self,
        *,
        users: UserRepo,
        factors: FactorRepo,
        ephemeral: EphemeralStore,
        counters: RateLimitStore,
        sessions: SessionService,
        hasher: PasswordHasher,
        auditor: Auditor,
        clock: Clock,
        box: SecretBox,
        settings: MfaSettings,
        rp_id: str,
        rp_name: str,
        origins: list[str],
        challenge_lifetime: int,
        pending_lifetime: int,
    ) -> None:
        self._users = users
        self._factors = factors
        self._ephemeral = ephemeral
        self._counters = counters
        self._sessions = sessions
        self._hasher = hasher
        self._audit = auditor
        self._clock = clock
        self._box = box
        self._settings = settings
        self.rp_id = rp_id
        self._rp_name = rp_name
        self._origins = origins
        self._challenge_lifetime = challenge_lifetime
        self._pending_lifetime = pending_lifetime

    # --- what a user has --------------------------------------------------------------------------

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
        return bool(await self._factors.list_passkeys(user.id)) or await self._has_totp(user)

    async def second_factors(self, user: User) -> list[str]:
        """The methods a sign-in must continue with; the sign-in path's short form of status(): a user
        without a factor costs two lookups, and the password is not read again."""
        methods: list[str] = [Method.PASSKEY] if await self._factors.list_passkeys(user.id) else []
        if await self._has_totp(user):
            methods.append(Method.TOTP)
        if methods and await self._factors.count_recovery_codes(user.id):
            methods.append(Method.RECOVERY_CODE)
        return methods

    async def needs_enrollment(self, user: User) -> bool:
        """MFA is required for this user (by Settings or an operator) and they have no second factor."""
        if not (self._settings.required or user.mfa_required):
            return False
        return not await self.has_second_factor(user)

    # --- pending logins ---------------------------------------------------------------------------

    async def start_pending_login(self, user: User, *, amr: Sequence[Amr], methods: list[str]) -> MfaRequired:
        token = new_token()
        expires_at = self._clock.now() + self._pending_lifetime
        value = json.dumps({"user_id": user.id, "amr": [a.value for a in amr]})
        await self._ephemeral.put(f"pending:{digest(token)}", value, expires_at=expires_at)
        return MfaRequired(token=token, methods=methods, expires_at=expires_at)

    async def pending_login(self, token: str | None) -> PendingLogin:
        if not token or len(token) > 128:
            raise PendingLoginMissing()
        value = await self._ephemeral.get(f"pending:{digest(token)}", now=self._clock.now())
        if value is None:
            raise PendingLoginMissing()
        data = json.loads(value)
        return PendingLogin(
            user_id=data["user_id"],
            amr=tuple(Amr(a) for a in data["amr"]),
            expires_at=self._clock.now() + self._pending_lifetime,
        )

    async def _finish_pending(self, token: str) -> None:
        """Consume the pending login in one step: of two concurrent completions, only one gets a session.

        Raises:
            PendingLoginMissing: another request completed (or the login expired) meanwhile.
        """
        if await self._ephemeral.take(f"pending:{digest(token)}", now=self._clock.now()) is None:
            raise PendingLoginMissing()

    async def _user(self, user_id: str) -> User:
        user = await self._users.get(user_id)
        if user is None or user.disabled:
            raise PendingLoginMissing()
        return user

    # --- one-time and recovery codes --------------------------------------------------------------

    async def _check_code_budget(self, user_id: str) -> None:
        count = await self._counters.get(
            f"mfa:{user_id}", window=self._settings.code_window, now=self._clock.now()
        )
        if count.count >= self._settings.code_attempts:
            raise RateLimited(count.retry_after)

    async def _code_failed(self, user: User, method: str, context: RequestContext | None) -> None:
        await self._counters.increment(
            f"mfa:{user.id}", window=self._settings.code_window, now=self._clock.now()
        )
        await self._audit.record(AuditKind.MFA_FAILED, user_id=user.id, context=context, method=method)

    async def _verify_totp(self, user: User, code: str) -> bool:
        credential = await self._factors.get_totp(user.id)
        if credential is None or not credential.confirmed:
            return False
        step = verify_totp_code(
            secret=self._open_totp(credential),
            code=code,
            now=self._clock.now(),
            last_used_step=credential.last_used_step,
        )
        return step is not None and await self._factors.use_totp_step(user.id, step)

    async def _verify_recovery_code(self, user: User, code: str, context: RequestContext | None) -> bool:
        if not code or len(code) > 64:
            return False
        used = await self._factors.use_recovery_code(
            user.id, recovery_code_digest(code), at=self._clock.now()
        )
        if used:
            left = await self._factors.count_recovery_codes(user.id)
            await self._audit.record(
                AuditKind.RECOVERY_CODE_USED, user_id=user.id, context=context, left=str(left)
            )
        return used

    async def _verify_code(self, user: User, method: str, code: str, context: RequestContext | None) -> Amr:
        """Check a TOTP or recovery code under the per-account attempt budget."""
        await self._check_code_budget(user.id)
        if method == Method.TOTP:
            ok, amr = await self._verify_totp(user, code), Amr.OTP
        elif method == Method.RECOVERY_CODE:
            ok, amr = await self._verify_recovery_code(user, code, context), Amr.OTP
        else:
            raise InvalidRequest("method must be totp or recovery_code.")
        if not ok:
            await self._code_failed(user, method, context)
            raise MfaCodeInvalid()
        return amr

    async def complete_login_with_code(
        self, *, pending_token: str | None, method: str, code: str, context: RequestContext
    ) -> tuple[User, IssuedSession]:
        """Second step of a password sign-in with a TOTP or recovery code: a NEW session at aal2."""
        pending = await self.pending_login(pending_token)
        user = await self._user(pending.user_id)
        amr = await self._verify_code(user, method, code, context)
        assert pending_token is not None
        await self._finish_pending(pending_token)
        return user, await self._full_session(user, [*pending.amr, amr], method, context)

    async def _full_session(
        self, user: User, amr: Sequence[Amr], method: str, context: RequestContext
    ) -> IssuedSession:
        issued = await self._sessions.issue_session(
            user_id=user.id, aal=Aal.AAL2, amr=list(dict.fromkeys(amr)), context=context
        )
        await self._audit.record(
            AuditKind.MFA_SUCCEEDED,
            user_id=user.id,
            context=context,
            method=method,
            session=issued.record.public_id,
        )
        return issued

    # --- passkeys: sign-in --------------------------------------------------------------------------

    async def _new_challenge(self, purpose: str, owner: str = "") -> bytes:
        challenge = secrets.token_bytes(32)
        key = f"webauthn:{purpose}:{digest(base64.urlsafe_b64encode(challenge).decode())}"
        await self._ephemeral.put(key, owner, expires_at=self._clock.now() + self._challenge_lifetime)
        return challenge

    async def _take_challenge(self, purpose: str, credential: dict[str, Any], owner: str = "") -> bytes:
        """The stored challenge the response signed: single use, unexpired, issued for this purpose/owner."""
        challenge = webauthn.challenge_of(credential)
        key = f"webauthn:{purpose}:{digest(base64.urlsafe_b64encode(challenge).decode())}"
        stored = await self._ephemeral.take(key, now=self._clock.now())
        if stored is None or stored != owner:
            raise ChallengeExpired()
        return challenge

    async def passkey_login_options(self) -> dict[str, Any]:
        """Options for a discoverable-credential sign-in (button or autofill)."""
        challenge = await self._new_challenge("login")
        return webauthn.authentication_options(rp_id=self.rp_id, challenge=challenge)

    async def _verify_assertion(
        self,
        credential: dict[str, Any],
        challenge: bytes,
        *,
        expected_user: str | None,
        context: RequestContext | None,
    ) -> tuple[User, Passkey]:
        passkey = await self._factors.get_passkey_by_credential(webauthn.credential_id_of(credential))
        if passkey is None or (expected_user is not None and passkey.user_id != expected_user):
            raise PasskeyRejected()
        user = await self._users.get(passkey.user_id)
        if user is None or user.disabled:
            raise PasskeyRejected()
        verified = webauthn.verify_passkey_assertion(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=self.rp_id,
            expected_origins=self._origins,
            passkey=passkey,
        )
        if passkey.flagged or webauthn.counter_regressed(
            stored=passkey.sign_count, presented=verified.new_sign_count
        ):
            if not passkey.flagged:
                await self._factors.flag_passkey(passkey.id)
            await self._audit.record(
                AuditKind.PASSKEY_COUNTER_REGRESSION,
                user_id=user.id,
                context=context,
                passkey=passkey.id,
                stored=str(passkey.sign_count),
                presented=str(verified.new_sign_count),
            )
            raise PasskeyRejected(
                "This passkey reported a signature counter that went backwards and was blocked."
            )
        await self._factors.update_passkey_use(
            passkey.id,
            sign_count=verified.new_sign_count,
            backup_state=verified.backup_state,
            at=self._clock.now(),
        )
        return user, passkey

    async def complete_passkey_login(
        self, *, credential: dict[str, Any], pending_token: str | None, context: RequestContext
    ) -> tuple[User, IssuedSession]:
        """A passkey on its own (aal2: possession + user verification), or as the second factor."""
        challenge = await self._take_challenge("login", credential)
        pending = None
        if pending_token:
            try:
                pending = await self.pending_login(pending_token)
            except PendingLoginMissing:
                pending = None
        user, passkey = await self._verify_assertion(
            credential, challenge, expected_user=pending.user_id if pending else None, context=context
        )
        if pending_token and pending:
            try:
                await self._finish_pending(pending_token)
            except PendingLoginMissing:
                pending = None  # a concurrent completion used it; the passkey still proves aal2 on its own
        amr = [*(pending.amr if pending else ()), passkey_amr(passkey), Amr.USER_PRESENCE]
        return user, await self._full_session(user, amr, Method.PASSKEY, context)

    # --- step-up ------------------------------------------------------------------------------------

    async def available_reauth_methods(self, user: User) -> list[str]:
        status = await self.status(user)
        methods = [Method.PASSWORD.value] if status.has_password else []
        return methods + [str(m) for m in self.second_factor_methods(status)]

    async def require_recent_auth(self, user: User, session: SessionRecord) -> None:
        """Sensitive actions need a sign-in or re-authentication within the window.

        Raises:
            ReauthenticationRequired: with the methods this user can re-authenticate with.
        """
        if self._clock.now() - session.auth_time <= self._settings.reauthentication_window:
            return
        raise ReauthenticationRequired(await self.available_reauth_methods(user))

    async def reauth_passkey_options(self, user: User) -> dict[str, Any]:
        challenge = await self._new_challenge("reauth", owner=user.id)
        return webauthn.authentication_options(
            rp_id=self.rp_id, challenge=challenge, allow=await self._factors.list_passkeys(user.id)
        )

    async def reauthenticate(
        self,
        user: User,
        session: SessionRecord,
        *,
        method: str,
        secret: str | None = None,
        credential: dict[str, Any] | None = None,
        context: RequestContext,
    ) -> tuple[SessionRecord, IssuedSession | None]:
        """Prove a factor again: the session's auth_time moves up. When the proof raises the assurance
        level (aal1 to aal2), that is a privilege change and a new session (new id) replaces it; it is
        returned so the caller can set the new cookie."""
        amr: list[Amr]
        if method == Method.PASSWORD:
            stored = await self._users.get_password(user.id)
            await self._check_code_budget(user.id)
            if (
                stored is None
                or await self._hasher.verify(expected_hash=stored.hash, password=secret or "") is None
            ):
                await self._code_failed(user, method, context)
                raise MfaCodeInvalid("The password is incorrect.")
            amr = [Amr.PASSWORD]
        elif method == Method.PASSKEY:
            if credential is None:
                raise InvalidRequest("credential is required.")
            challenge = await self._take_challenge("reauth", credential, owner=user.id)
            _, passkey = await self._verify_assertion(
                credential, challenge, expected_user=user.id, context=context
            )
            amr = [passkey_amr(passkey), Amr.USER_PRESENCE]
        else:
            amr = [await self._verify_code(user, method, secret or "", context)]
        now = self._clock.now()
        second = any(a in (Amr.OTP, Amr.HARDWARE_KEY, Amr.SOFTWARE_KEY) for a in amr)
        aal = Aal.AAL2 if second or session.aal is Aal.AAL2 else Aal.AAL1
        merged = list(dict.fromkeys([*session.amr, *amr]))
        await self._audit.record(AuditKind.REAUTHENTICATED, user_id=user.id, context=context, method=method)
        if aal is not session.aal:  # a privilege change: the session gets a new id (no fixation)
            issued = await self._sessions.issue_session(
                user_id=user.id, aal=aal, amr=merged, context=context, auth_time=now
            )
            await self._sessions.end_session(session)
            return issued.record, issued
        await self._sessions.record_reauthentication(session, auth_time=now, aal=aal, amr=merged)
        return replace(session, auth_time=now, aal=aal, amr=tuple(merged)), None

    # --- managing passkeys --------------------------------------------------------------------------

    async def passkey_registration_options(self, user: User, session: SessionRecord) -> dict[str, Any]:
        await self.require_recent_auth(user, session)
        challenge = await self._new_challenge("register", owner=user.id)
        return webauthn.registration_options(
            rp_id=self.rp_id,
            rp_name=self._rp_name,
            user_id=user.id,
            user_name=user.email,
            existing=await self._factors.list_passkeys(user.id),
            challenge=challenge,
        )

    async def add_passkey(
        self,
        user: User,
        session: SessionRecord,
        *,
        credential: dict[str, Any],
        name: str | None,
        context: RequestContext,
    ) -> tuple[Passkey, FactorAdded]:
        await self.require_recent_auth(user, session)
        challenge = await self._take_challenge("register", credential, owner=user.id)
        verified = webauthn.verify_passkey_registration(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=self.rp_id,
            expected_origins=self._origins,
        )
        if await self._factors.get_passkey_by_credential(verified.credential_id) is not None:
            raise PasskeyRejected("This passkey is already registered.")
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
        await self._audit.record(
            AuditKind.PASSKEY_ADDED, user_id=user.id, context=context, passkey=passkey.id
        )
        return passkey, FactorAdded(await self._first_factor_codes(user, first, context))

    async def rename_passkey(
        self, user: User, passkey_id: str, name: str, *, context: RequestContext
    ) -> None:
        cleaned = _clean_name(name)
        if not cleaned:
            raise InvalidRequest("Give the passkey a name of 1 to 100 printable characters.")
        if not await self._factors.rename_passkey(user.id, passkey_id, cleaned):
            raise FactorNotFound()
        await self._audit.record(
            AuditKind.PASSKEY_RENAMED, user_id=user.id, context=context, passkey=passkey_id
        )

    async def remove_passkey(
        self, user: User, session: SessionRecord, passkey_id: str, *, context: RequestContext
    ) -> None:
        await self.require_recent_auth(user, session)
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
        await self.require_recent_auth(user, session)
        status = await self.status(user)
        if not status.has_password:
            raise FactorNotFound("This account has no password.")
        if not [p for p in status.passkeys if not p.flagged]:
            raise LastSignInMethod("Add a passkey before removing your password.")
        await self._users.delete_password(user.id)
        await self._audit.record(AuditKind.PASSWORD_REMOVED, user_id=user.id, context=context)

    # --- TOTP -----------------------------------------------------------------------------------------

    def _open_totp(self, credential: TotpCredential) -> str:
        try:
            return self._box.open(credential.secret, purpose=TOTP_PURPOSE).decode()
        except DecryptionFailed as exc:
            raise TotpNotStarted("The authenticator secret cannot be read; set it up again.") from exc

    async def start_totp(self, user: User, session: SessionRecord, *, issuer: str) -> TotpEnrollment:
        """A new secret, stored encrypted and unconfirmed until a valid code comes back."""
        await self.require_recent_auth(user, session)
        existing = await self._factors.get_totp(user.id)
        if existing is not None and existing.confirmed:
            raise InvalidRequest("An authenticator app is already set up; remove it first.")
        secret = new_totp_secret()
        await self._factors.put_totp(
            TotpCredential(
                user_id=user.id,
                secret=self._box.seal(secret.encode(), purpose=TOTP_PURPOSE),
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
        secret = self._open_totp(credential)
        return TotpEnrollment(secret=secret, uri=provisioning_uri(secret, account=user.email, issuer=issuer))

    async def confirm_totp(
        self, user: User, session: SessionRecord, *, code: str, context: RequestContext
    ) -> FactorAdded:
        await self.require_recent_auth(user, session)
        credential = await self._factors.get_totp(user.id)
        if credential is None or credential.confirmed:
            raise TotpNotStarted()
        await self._check_code_budget(user.id)
        step = verify_totp_code(
            secret=self._open_totp(credential), code=code, now=self._clock.now(), last_used_step=0
        )
        if step is None or not await self._factors.use_totp_step(user.id, step):
            await self._code_failed(user, "totp_setup", context)
            raise MfaCodeInvalid()
        first = not await self.has_second_factor(user)
        await self._factors.confirm_totp(user.id)
        await self._audit.record(AuditKind.TOTP_ENABLED, user_id=user.id, context=context)
        return FactorAdded(await self._first_factor_codes(user, first, context))

    async def remove_totp(self, user: User, session: SessionRecord, *, context: RequestContext) -> None:
        await self.require_recent_auth(user, session)
        if not await self._factors.delete_totp(user.id):
            raise FactorNotFound()
        await self._audit.record(AuditKind.TOTP_REMOVED, user_id=user.id, context=context)

    # --- recovery codes -------------------------------------------------------------------------------

    async def _first_factor_codes(self, user: User, first: bool, context: RequestContext) -> list[str] | None:
        if not first:
            return None
        return await self._new_recovery_codes(user, context)

    async def _new_recovery_codes(self, user: User, context: RequestContext) -> list[str]:
        codes = new_recovery_codes()
        await self._factors.replace_recovery_codes(
            user.id, [recovery_code_digest(c) for c in codes], at=self._clock.now()
        )
        await self._audit.record(AuditKind.RECOVERY_CODES_GENERATED, user_id=user.id, context=context)
        return codes

    async def regenerate_recovery_codes(
        self, user: User, session: SessionRecord, *, context: RequestContext
    ) -> list[str]:
        """New codes, shown once; the old ones stop working."""
        await self.require_recent_auth(user, session)
        if not await self.has_second_factor(user):
            raise InvalidRequest("Add a passkey or an authenticator app first.")
        return await self._new_recovery_codes(user, context)

    # --- the upgrade prompt ---------------------------------------------------------------------------

    async def should_offer_passkey(self, user: User) -> bool:
        if user.passkey_prompt_snoozed_until and user.passkey_prompt_snoozed_until > self._clock.now():
            return False
        return not await self._factors.list_passkeys(user.id)

    async def snooze_passkey_prompt(self, user: User) -> None:
        await self._users.snooze_passkey_prompt(
            user.id, self._clock.now() + self._settings.passkey_prompt_snooze
        )

    # --- operator-approved recovery -------------------------------------------------------------------

    async def request_recovery(
        self, user: User, *, requested_by: str, wait: int | None = None, context: RequestContext
    ) -> RecoveryRequest:
        """An operator approved resetting this user's factors; it happens after the waiting period,
        during which the user is shown the request and can cancel it by signing in."""
        now = self._clock.now()
        request = RecoveryRequest(
            id=new_id(),
            user_id=user.id,
            requested_by=requested_by[:200],
            requested_at=now,
            execute_after=now + (self._settings.recovery_wait if wait is None else wait),
        )
        await self._factors.add_recovery_request(request)
        await self._audit.record(
            AuditKind.RECOVERY_REQUESTED,
            user_id=user.id,
            context=context,
            request=request.id,
            execute_after=str(int(request.execute_after)),
            by=request.requested_by,
        )
        return request

    async def pending_recovery(self, user: User) -> Sequence[RecoveryRequest]:
        return await self._factors.pending_recovery_requests(user_id=user.id)

    async def cancel_recovery(self, user: User, request_id: str, *, context: RequestContext) -> None:
        owned = any(r.id == request_id for r in await self.pending_recovery(user))  # only the user's own
        if not owned or not await self._factors.finish_recovery_request(
            request_id, at=self._clock.now(), cancelled=True
        ):
            raise FactorNotFound("No such recovery request.")
        await self._audit.record(
            AuditKind.RECOVERY_CANCELLED, user_id=user.id, context=context, request=request_id
        )

    async def execute_due_recoveries(self) -> int:
        """Reset the factors of every user whose recovery waiting period is over (the sweeper calls it)."""
        now = self._clock.now()
        done = 0
        for request in await self._factors.pending_recovery_requests():
            if request.execute_after > now:
                continue
            if not await self._factors.finish_recovery_request(request.id, at=now, cancelled=False):
                continue  # another process did it
            await self._factors.delete_all_factors(request.user_id)
            ended = await self._sessions.revoke_all_sessions(request.user_id)
            await self._audit.record(
                AuditKind.RECOVERY_COMPLETED,
                user_id=request.user_id,
                request=request.id,
                sessions_ended=str(ended),
            )
            done += 1
        return done


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


__all__ = ["LOW_RECOVERY_CODES", "FactorAdded", "Factors", "MfaRequired", "PendingLogin", "TotpEnrollment"]
