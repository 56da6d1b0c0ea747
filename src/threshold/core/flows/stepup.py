"""Step-up: sensitive actions need a recent sign-in or re-authentication, and changing the second
factors of an account that has one needs a recent second factor or passkey, not the password alone.

Every re-authentication issues a new session (new id, ASVS 5 7.2.4); its assurance is computed from the
session's earlier proofs and the new one, in `methods.assurance`.
"""

from __future__ import annotations

from typing import Any

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.errors import InvalidRequest, ReauthenticationRequired, SessionNotFound
from threshold.core.flows.inventory import Inventory
from threshold.core.flows.proving import Proving
from threshold.core.i18n import N_
from threshold.core.methods.assurance import assess, is_local_second_factor, is_second_factor
from threshold.core.methods.passkey import PasskeyMethod
from threshold.core.methods.proofs import Proof, proofs_of_amr
from threshold.core.models import Aal, AuditKind, Method, RequestContext, SessionRecord, User
from threshold.core.ports import EphemeralStore, UserRepo
from threshold.core.sessions import IssuedSession, SessionService
from threshold.settings import MfaSettings

LOCAL = "1"
"""The step-up mark of a second factor proved here (the value it always had)."""
UPSTREAM = "upstream"
"""The step-up mark of an upstream identity provider's word that it used a second factor."""


class StepUp:
    def __init__(
        self,
        *,
        users: UserRepo,
        proving: Proving,
        passkey: PasskeyMethod,
        inventory: Inventory,
        sessions: SessionService,
        ephemeral: EphemeralStore,
        auditor: Auditor,
        clock: Clock,
        settings: MfaSettings,
    ) -> None:
        self._users = users
        self._proving = proving
        self._passkey = passkey
        self._inventory = inventory
        self._sessions = sessions
        self._ephemeral = ephemeral
        self._audit = auditor
        self._clock = clock
        self._settings = settings

    @staticmethod
    def _strong_key(session: SessionRecord) -> str:
        return f"strong:{session.digest}"

    async def note_proofs(self, session: SessionRecord, proofs: list[Proof]) -> None:
        """Remember (for the step-up window) that this session's latest proofs include a second factor,
        and whether one was proved here, not only an upstream identity provider's word (one write)."""
        if any(is_second_factor(p) for p in proofs):
            expires_at = max(session.auth_time, self._clock.now()) + self._settings.reauthentication_window
            value = LOCAL if any(is_local_second_factor(p) for p in proofs) else UPSTREAM
            await self._ephemeral.put(self._strong_key(session), value, expires_at=expires_at)

    async def available_methods(self, user: User, *, second_factor: bool = False) -> list[str]:
        status = await self._inventory.status(user)
        methods = [Method.PASSWORD.value] if status.has_password and not second_factor else []
        return methods + [str(m) for m in self._inventory.second_factor_methods(status)]

    async def require_recent_auth(
        self, user: User, session: SessionRecord, *, second_factor: bool = False, local: bool = False
    ) -> None:
        """Raises ReauthenticationRequired (with the methods that would do) unless the session's sign-in
        or step-up is recent enough, and, with `second_factor`, included a second factor or passkey
        (with `local`, one proved here: an upstream identity provider's word does not count)."""
        now = self._clock.now()
        recent = now - session.auth_time <= self._settings.reauthentication_window
        if recent and (second_factor or local):
            noted = await self._ephemeral.get(self._strong_key(session), now=now)
            recent = noted is not None and (noted == LOCAL or not local)
        if not recent:
            raise ReauthenticationRequired(await self.available_methods(user, second_factor=second_factor))

    async def has_second_factor(self, user: User) -> bool:
        return await self._inventory.has_second_factor(user)

    async def require_strongest(self, user: User, session: SessionRecord) -> None:
        """A recent proof with the strongest factor the account has: a second factor (or passkey) when
        it has one, else its password. Adding or removing a second factor, and reading or deleting the
        whole account, need this."""
        await self.require_recent_auth(
            user, session, second_factor=await self._inventory.has_second_factor(user)
        )

    async def require_for_factor_change(self, user: User, session: SessionRecord) -> None:
        """Adding or removing a second factor (see `require_strongest`)."""
        await self.require_strongest(user, session)

    async def passkey_options(self, user: User) -> dict[str, Any]:
        return await self._passkey.reauth_options(user)

    async def reauthenticate(
        self,
        user: User,
        session: SessionRecord,
        *,
        method: str,
        secret: str | None = None,
        credential: dict[str, Any] | None = None,
        context: RequestContext,
    ) -> IssuedSession:
        """Prove a factor again; a new session (new id) replaces this one, with a fresh auth_time.

        What ended while the proof was checked stays ended: the old session must still exist when it is
        replaced, and the credentials must not have changed (a reset, a recovery) meanwhile.

        Raises:
            SessionNotFound: the session ended, or the credentials changed, during the step-up.
        """
        epoch = await self._users.credential_epoch(user.id)
        if method == Method.PASSKEY:
            if credential is None:
                raise InvalidRequest(N_("credential is required."))
            verified = await self._passkey.verify_assertion(
                credential, purpose="reauth", expected_user_id=user.id, context=context
            )
            proof = verified.proof
        else:
            proof = await self._proving.prove(user, method=method, secret=secret or "", context=context)
        assurance = assess([*proofs_of_amr(session.amr), proof])
        aal = Aal.AAL2 if session.aal is Aal.AAL2 else assurance.aal  # a step-up never lowers it
        if not await self._sessions.take_session(session):  # revoked meanwhile: nothing to step up
            raise SessionNotFound()
        issued = await self._sessions.issue_session(
            user_id=user.id,
            aal=aal,
            amr=assurance.amr,
            context=context,
            auth_time=self._clock.now(),
            org_id=session.org_id,
            connection_id=session.connection_id,
            upstream_acr=session.upstream_acr,
            upstream_amr=session.upstream_amr,
        )
        if await self._users.credential_epoch(user.id) != epoch:  # written first, checked after
            await self._sessions.end_session(issued.record)
            raise SessionNotFound()
        await self.note_proofs(issued.record, [proof])
        await self._audit.record(
            AuditKind.REAUTHENTICATED,
            user_id=user.id,
            context=context,
            method=method,
            session=issued.record.public_id,
        )
        return issued
