"""The password as a sign-in method: Argon2id through PasswordHasher, with the same work for a missing
account (a dummy hash) and a rehash when the stored parameters are out of date."""

from __future__ import annotations

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.methods.proofs import PASSWORD, Proof
from threshold.core.models import AuditKind, PasswordCredential, RequestContext, User
from threshold.core.passwords import PasswordHasher
from threshold.core.ports import UserRepo


class PasswordMethod:
    def __init__(self, *, users: UserRepo, hasher: PasswordHasher, auditor: Auditor, clock: Clock) -> None:
        self._users = users
        self._audit = auditor
        self._hasher = hasher
        self._clock = clock

    async def verify_password(
        self, user: User | None, password: str, context: RequestContext | None = None
    ) -> Proof | None:
        """The proof when `password` is this user's; None otherwise (same Argon2id work either way).

        A right password under outdated parameters is rehashed; that is the same secret, so the
        credential epoch stays.
        """
        credential = await self._users.get_password(user.id) if user else None
        return await self.verify_against(user, credential, password, context)

    async def verify_against(
        self,
        user: User | None,
        credential: PasswordCredential | None,
        password: str,
        context: RequestContext | None = None,
    ) -> Proof | None:
        """`verify_password` with the user's credential already read (UserRepo.get_with_password, the
        sign-in's first read)."""
        verified = await self._hasher.verify(
            expected_hash=credential.hash if credential else None, password=password
        )
        if user is None or credential is None or verified is None:
            return None
        if verified.needs_rehash:
            await self._users.set_password(
                PasswordCredential(
                    user_id=user.id, hash=await self._hasher.hash(password), updated_at=self._clock.now()
                ),
                same_secret=True,
            )
            await self._audit.record(AuditKind.PASSWORD_REHASHED, user_id=user.id, context=context)
        return PASSWORD

    async def has_password(self, user: User) -> bool:
        return await self._users.get_password(user.id) is not None
