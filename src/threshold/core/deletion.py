"""Deleting an account: the request, the grace period, and the erasure.

A deletion (the person's own, after a recent proof with the account's strongest factor; or an
operator's) locks the account at once: it is disabled, which every way in and every check of a session,
token or grant already refuses, and `core.revocation` ends every session, refresh token and access
token of the person and tells the applications (back-channel logout). The erasure is scheduled
`account.deletion_grace` later (7 days by default) and a notice goes to the address.

During the grace period the person may sign in again (password, with the second factor if the account
has one, or a passkey): instead of a session, the sign-in engine offers to keep the account
(`SignIn.restore`), and confirming cancels the deletion. `Deletions.restorable` is that one rule.

When it is due, the sweeper erases it: access ended again (idempotent), then in one transaction every
row of the person's data goes and their audit events stay under a pseudonym, without address, user
agent or personal detail (adapters.sql.deletion_repo). A process killed between the two steps leaves the
account whole and still due, so the next sweep finishes it; of two processes erasing at once, one does.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from threshold.core.audit import Auditor
from threshold.core.clock import Clock, iso
from threshold.core.flows.stepup import StepUp
from threshold.core.models import AuditKind, RequestContext, ScheduledDeletion, SessionRecord, User
from threshold.core.ports import DeletionRepo, RateLimitStore, UserRepo
from threshold.core.ratelimit import personal_counter_fragments
from threshold.core.revocation import AccessRevoker, Cause, Reach

log = logging.getLogger(__name__)

SELF = "self"


def new_pseudonym() -> str:
    """What names an erased person in the audit log: random, linked to nothing else."""
    return "erased-" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class DeletionScheduled:
    """The answer to a deletion request: when the account's data is erased (now, for an immediate one)."""

    erase_at: float
    erased: bool = False


class Deletions:
    def __init__(
        self,
        *,
        repo: DeletionRepo,
        users: UserRepo,
        revoker: AccessRevoker,
        stepup: StepUp,
        auditor: Auditor,
        clock: Clock,
        grace: int,
        counters: RateLimitStore | None = None,
    ) -> None:
        self._counters = counters
        self._repo = repo
        self._users = users
        self._revoker = revoker
        self._stepup = stepup
        self._audit = auditor
        self._clock = clock
        self._grace = grace

    # --- requests ---------------------------------------------------------------------------------

    async def request(
        self, user: User, session: SessionRecord, *, context: RequestContext
    ) -> DeletionScheduled:
        """The person deletes their own account (POST /api/v1/account/delete, the account page).

        Raises:
            ReauthenticationRequired: no recent proof with the account's strongest factor.
            LastOperator: the account is the only one that can open the console.
        """
        await self._stepup.require_strongest(user, session)  # (LastOperator: raised by the schedule)
        return await self._schedule(user, by=SELF, grace=self._grace, context=context)

    async def by_operator(
        self, user: User, *, by: str, immediately: bool, context: RequestContext
    ) -> DeletionScheduled:
        """An operator deletes an account (CLI, admin API): after the grace period, or at once.

        Raises:
            LastOperator: the account is the only one that can open the console.
        """
        return await self._schedule(user, by=by, grace=0 if immediately else self._grace, context=context)

    async def _schedule(
        self, user: User, *, by: str, grace: int, context: RequestContext
    ) -> DeletionScheduled:
        now = self._clock.now()
        current = await self._users.get(user.id)  # read fresh: the lock that matters is the stored one
        scheduled = await self._repo.schedule(
            ScheduledDeletion(
                pseudonym=new_pseudonym(),
                user_id=user.id,
                requested_at=now,
                erase_at=now + grace,
                requested_by=by,
                keepable=current is not None and not current.disabled,  # an operator's lock stays theirs
            )
        )  # raises LastOperator for the only account that can open the console
        await self._users.set_disabled(user.id, True)  # done with the schedule; again for the caches
        await self._revoker.end_access(Reach.everything(user.id), cause=Cause.USER_DELETED, context=context)
        await self._audit.record(
            AuditKind.ACCOUNT_DELETION_REQUESTED,
            user_id=user.id,
            context=context,
            by=by,
            erase_at=iso(scheduled.erase_at),
        )  # the notice to the address (core.email.notices) says when, and how to keep the account
        if scheduled.erase_at <= now:
            return DeletionScheduled(erase_at=now, erased=await self._erase(scheduled))
        return DeletionScheduled(erase_at=scheduled.erase_at)

    # --- the grace period -------------------------------------------------------------------------

    async def restorable(self, user: User) -> ScheduledDeletion | None:
        """The deletion a sign-in of this account may still cancel: the account is locked by a deletion
        that is not due yet. (A disabled account without one stays refused.)"""
        if not user.disabled:
            return None
        pending = await self._repo.pending(user.id)
        if pending is None or not pending.keepable or pending.erase_at <= self._clock.now():
            return None
        return pending

    async def operator_locked(self, user: User, *, disabled: bool, context: RequestContext) -> None:
        """An operator (or SCIM) disabled or enabled an account (core.accounts calls it): a deletion in
        its grace period can then no longer be kept by signing in; or, enabled, the account is kept."""
        if await self._repo.operator_locked(user.id, disabled=disabled) and not disabled:
            await self._audit.record(
                AuditKind.ACCOUNT_DELETION_CANCELLED, user_id=user.id, context=context, by="operator"
            )

    async def cancel(self, user: User, *, context: RequestContext) -> bool:
        """Keep the account: the deletion is forgotten and the account unlocked (False: nothing was
        pending, or it became due meanwhile)."""
        if not await self._repo.cancel(user.id, now=self._clock.now()):
            return False
        await self._users.set_disabled(user.id, False)  # done with the cancel; again for the caches
        await self._audit.record(AuditKind.ACCOUNT_DELETION_CANCELLED, user_id=user.id, context=context)
        return True

    # --- erasure ----------------------------------------------------------------------------------

    async def erase_due(self) -> int:
        """Erase every account whose grace period is over (the sweeper calls it); how many."""
        done = 0
        for deletion in await self._repo.due(now=self._clock.now()):
            if await self._erase(deletion):
                done += 1
        return done

    async def _erase(self, deletion: ScheduledDeletion) -> bool:
        if deletion.user_id is None:
            return False
        user = await self._users.get(deletion.user_id)
        if user is None:
            return False
        # Again, in case a session or token was issued in a race with the request: nothing survives.
        await self._revoker.end_access(Reach.everything(user.id), cause=Cause.USER_DELETED)
        erased = await self._repo.erase(deletion, email=user.email, at=self._clock.now())
        if erased:
            log.info("account erased", extra={"pseudonym": deletion.pseudonym})
            await self._forget_counters(user)
        return erased

    async def _forget_counters(self, user: User) -> None:
        """The attempt counters keyed by the account, where they live outside the database (Redis): the
        erasure's transaction dropped the database's own. Should this fail, they end with their windows."""
        if self._counters is None:
            return
        try:
            for fragment in personal_counter_fragments(user.id, user.email_normalized):
                await self._counters.forget(fragment)
        except Exception:  # an outage, or a store refusing SCAN: the erasure itself is done
            log.warning("attempt counters of an erased account left to expire", exc_info=True)
