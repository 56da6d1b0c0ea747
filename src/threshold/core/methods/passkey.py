"""Passkeys as a sign-in method: WebAuthn ceremonies (stateless helpers in `webauthn`) with their
challenges kept here, single use, bound to a purpose and (for step-up and registration) to the user."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.errors import ChallengeExpired, PasskeyRejected
from threshold.core.i18n import N_
from threshold.core.lock import SignInLock
from threshold.core.methods import webauthn
from threshold.core.methods.proofs import Proof, passkey_proof
from threshold.core.models import AuditKind, Passkey, RequestContext, User
from threshold.core.ports import EphemeralStore, FactorRepo, UserRepo
from threshold.core.secrets import digest


@dataclass(frozen=True, slots=True)
class VerifiedPasskey:
    """An assertion checked against a registered passkey of an enabled user."""

    user: User
    passkey: Passkey
    proof: Proof


class PasskeyMethod:
    def __init__(
        self,
        *,
        users: UserRepo,
        factors: FactorRepo,
        ephemeral: EphemeralStore,
        auditor: Auditor,
        clock: Clock,
        rp_id: str,
        rp_name: str,
        origins: list[str],
        challenge_lifetime: int,
        lock: SignInLock | None = None,
    ) -> None:
        self._lock = lock or SignInLock()
        self._users = users
        self._factors = factors
        self._ephemeral = ephemeral
        self._audit = auditor
        self._clock = clock
        self.rp_id = rp_id
        self._rp_name = rp_name
        self._origins = origins
        self._challenge_lifetime = challenge_lifetime

    @staticmethod
    def _challenge_key(purpose: str, challenge: bytes) -> str:
        return f"webauthn:{purpose}:{digest(base64.urlsafe_b64encode(challenge).decode())}"

    async def new_challenge(self, purpose: str, owner: str = "") -> bytes:
        challenge = secrets.token_bytes(32)
        await self._ephemeral.put(
            self._challenge_key(purpose, challenge),
            owner,
            expires_at=self._clock.now() + self._challenge_lifetime,
        )
        return challenge

    async def take_challenge(self, purpose: str, credential: dict[str, Any], owner: str = "") -> bytes:
        """The stored challenge the response signed: single use, unexpired, issued for this purpose/owner."""
        challenge = webauthn.challenge_of(credential)
        stored = await self._ephemeral.take(self._challenge_key(purpose, challenge), now=self._clock.now())
        if stored is None or stored != owner:
            raise ChallengeExpired()
        return challenge

    async def passkeys(self, user: User) -> Sequence[Passkey]:
        return await self._factors.list_passkeys(user.id)

    async def login_options(self) -> dict[str, Any]:
        """Options for a discoverable-credential sign-in (button or autofill)."""
        return webauthn.authentication_options(rp_id=self.rp_id, challenge=await self.new_challenge("login"))

    async def reauth_options(self, user: User) -> dict[str, Any]:
        challenge = await self.new_challenge("reauth", owner=user.id)
        return webauthn.authentication_options(
            rp_id=self.rp_id, challenge=challenge, allow=await self.passkeys(user)
        )

    async def registration_options(self, user: User) -> dict[str, Any]:
        return webauthn.registration_options(
            rp_id=self.rp_id,
            rp_name=self._rp_name,
            user_id=user.id,
            user_name=user.email,
            existing=await self.passkeys(user),
            challenge=await self.new_challenge("register", owner=user.id),
        )

    async def verify_registration(
        self, user: User, credential: dict[str, Any]
    ) -> webauthn.VerifiedPasskeyRegistration:
        challenge = await self.take_challenge("register", credential, owner=user.id)
        verified = webauthn.verify_passkey_registration(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=self.rp_id,
            expected_origins=self._origins,
        )
        if await self._factors.get_passkey_by_credential(verified.credential_id) is not None:
            raise PasskeyRejected(N_("This passkey is already registered."))
        return verified

    async def verify_assertion(
        self,
        credential: dict[str, Any],
        *,
        purpose: str,
        expected_user_id: str | None,
        context: RequestContext | None,
    ) -> VerifiedPasskey:
        """Check a sign-in ("login") or step-up ("reauth") assertion: our challenge, a registered passkey
        (of `expected_user` when given) of an enabled user, a counter that did not go backwards."""
        owner = (expected_user_id or "") if purpose == "reauth" else ""
        challenge = await self.take_challenge(purpose, credential, owner=owner)
        passkey = await self._factors.get_passkey_by_credential(webauthn.credential_id_of(credential))
        if passkey is None or (expected_user_id is not None and passkey.user_id != expected_user_id):
            raise PasskeyRejected()
        user = await self._users.get(passkey.user_id)
        if user is None or (await self._lock.refuses(user) if purpose == "login" else user.disabled):
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
                N_("This passkey reported a signature counter that went backwards and was blocked.")
            )
        await self._factors.update_passkey_use(
            passkey.id,
            sign_count=verified.new_sign_count,
            backup_state=verified.backup_state,
            at=self._clock.now(),
        )
        return VerifiedPasskey(user=user, passkey=passkey, proof=passkey_proof(passkey))
