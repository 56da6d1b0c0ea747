"""Operator-approved recovery: an operator approves resetting a user's factors; it happens after a
waiting period, during which the user is shown the request and can cancel it by signing in."""

from __future__ import annotations

from collections.abc import Sequence

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.errors import FactorNotFound
from threshold.core.i18n import N_
from threshold.core.models import AuditKind, RecoveryRequest, RequestContext, User
from threshold.core.ports import FactorRepo, UserRepo
from threshold.core.revocation import AccessRevoker, Cause, Reach
from threshold.core.secrets import new_id
from threshold.core.sessions import SessionService
from threshold.settings import MfaSettings


class Recovery:
    def __init__(
        self,
        *,
        users: UserRepo,
        factors: FactorRepo,
        sessions: SessionService,
        auditor: Auditor,
        clock: Clock,
        settings: MfaSettings,
        revoker: AccessRevoker,
    ) -> None:
        self._revoker = revoker
        self._users = users
        self._factors = factors
        self._sessions = sessions
        self._audit = auditor
        self._clock = clock
        self._settings = settings

    async def request_recovery(
        self, user: User, *, requested_by: str, wait: int | None = None, context: RequestContext
    ) -> RecoveryRequest:
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
            raise FactorNotFound(N_("No such recovery request."))
        await self._audit.record(
            AuditKind.RECOVERY_CANCELLED, user_id=user.id, context=context, request=request_id
        )

    async def execute_due_recoveries(self) -> int:
        """Reset the factors of every user whose waiting period is over (the sweeper calls it): factors
        gone, every session ended, the credential epoch moved on (no sign-in begun before completes)."""
        now = self._clock.now()
        done = 0
        for request in await self._factors.pending_recovery_requests():
            if request.execute_after > now:
                continue
            if not await self._factors.finish_recovery_request(request.id, at=now, cancelled=False):
                continue  # another process did it
            await self._factors.delete_all_factors(request.user_id)
            await self._users.bump_credential_epoch(request.user_id)
            ended = await self._revoker.end_access(
                Reach.everything(request.user_id), cause=Cause.OPERATOR_RECOVERY, request=request.id
            )
            await self._audit.record(
                AuditKind.RECOVERY_COMPLETED,
                user_id=request.user_id,
                request=request.id,
                sessions_ended=str(len(ended.sessions)),
            )
            done += 1
        return done
