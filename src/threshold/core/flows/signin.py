"""Sign-in: a first step (password, passkey, emailed link or code), a pending second step when the
account has a second factor, and one completion that issues the session.

Completion is the one place where a session is born from proofs: the assurance comes from
`methods.assurance`, the credential epoch read before the first step must still be current after the
session exists (a password reset or change that committed meanwhile ends it again), the browser's
previous session is ended, the consecutive-failure count is cleared, and the sign-in is audited.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from threshold.core.audit import Auditor
from threshold.core.devices import device_label
from threshold.core.emails import normalize_email
from threshold.core.errors import (
    EmailInvalid,
    EmailNotVerified,
    InvalidCredentials,
    InvalidRequest,
    PendingLoginMissing,
    RateLimited,
)
from threshold.core.flows.inventory import Inventory
from threshold.core.flows.outcome import MfaRequired, RestoreOffered, SignedIn, SignInOutcome
from threshold.core.flows.pending import PendingLogins
from threshold.core.flows.proving import Proving
from threshold.core.flows.stepup import StepUp
from threshold.core.i18n import N_
from threshold.core.lock import SignInLock
from threshold.core.methods.assurance import assess, is_strong
from threshold.core.methods.passkey import PasskeyMethod
from threshold.core.methods.proofs import SSO, Proof, Upstream
from threshold.core.models import AuditEvent, AuditKind, Method, RequestContext, SessionRecord, User
from threshold.core.orgs.ports import OrgRepo
from threshold.core.ports import SignInClosed, SignInWrites, UserRepo
from threshold.core.ratelimit import LoginThrottle, Settlement, network_of
from threshold.core.sessions import SessionService

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from threshold.core.deletion import Deletions
    from threshold.core.email import EmailFlows
    from threshold.core.sso.policy import SsoGate


class SignIn:
    def __init__(
        self,
        *,
        users: UserRepo,
        sessions: SessionService,
        throttle: LoginThrottle,
        proving: Proving,
        passkey: PasskeyMethod,
        inventory: Inventory,
        pending: PendingLogins,
        stepup: StepUp,
        auditor: Auditor,
        closing: SignInWrites,
        lock: SignInLock | None = None,
        orgs: OrgRepo | None = None,
        notify_new_device: bool = True,
    ) -> None:
        """`closing` writes a completed sign-in's closing writes (see `complete`); `notify_new_device`:
        a first sign-in from a browser is audited as such (and so emailed)."""
        self._lock = lock or SignInLock()
        self._closing = closing
        self._notify_new_device = notify_new_device
        self._deletions: Deletions | None = None
        self._users = users
        self._sessions = sessions
        self._throttle = throttle
        self._proving = proving
        self._passkey = passkey
        self._inventory = inventory
        self.pending = pending
        self._stepup = stepup
        self._audit = auditor
        self._orgs = orgs
        self._email: EmailFlows | None = None
        self._verification = "off"
        self._gate: SsoGate | None = None

    def attach_email(self, email: EmailFlows, *, verification: str) -> None:
        """Email flows are built after the sign-in flow (they continue into it)."""
        self._email = email
        self._verification = verification

    def attach_deletions(self, deletions: Deletions) -> None:
        """Deletions are built after the sign-in flow: a sign-in in a deletion's grace period may keep
        the account (`restore`)."""
        self._deletions = deletions
        self._lock.attach(deletions)

    def attach_sso_gate(self, gate: SsoGate) -> None:
        """Upstream sign-in is built after the sign-in flow (it continues into it)."""
        self._gate = gate

    # --- first steps ----------------------------------------------------------------------------------

    async def with_password(
        self, *, email: str, password: str, context: RequestContext, replacing: SessionRecord | None = None
    ) -> SignInOutcome:
        """Prove a password; a session (new id) or, with a second factor, a pending sign-in.

        Unknown account, wrong password and disabled account all raise InvalidCredentials after the
        same Argon2id work. The attempt is counted before the password is checked.

        Raises:
            RateLimited, ConsecutiveFailuresCapped: a budget for this address or account is spent.
            InvalidCredentials: anything else that is not a success.
            EmailNotVerified: the right password for an address that must be verified first.
        """
        try:
            normalized = normalize_email(email).normalized
        except EmailInvalid:
            normalized = email[:320].casefold()
        user, credential = await self._users.get_with_password(normalized) or (None, None)
        reservation = await self._throttle.reserve_login(
            email_normalized=normalized, ip=context.ip, user_id=user.id if user else None
        )
        proof = await self._proving.password.verify_against(user, credential, password, context)
        if user is None or proof is None or await self._lock.refuses(user):
            reason = "unknown_account" if user is None else "disabled" if proof else "wrong_password"
            await self._audit.record(
                AuditKind.LOGIN_FAILED, user_id=user.id if user else None, context=context, reason=reason
            )
            reached = reservation.reached()
            if reached and user is not None:  # once per window and limit, not per throttled attempt
                await self._audit.record(
                    AuditKind.LOGIN_THROTTLED, user_id=user.id, context=context, limits=",".join(reached)
                )
            raise InvalidCredentials()
        settlement = self._throttle.password_right(reservation)
        try:
            if self._verification == "required" and not user.email_verified and self._email is not None:
                # The password is right, so saying so reveals nothing; the link is sent again (rate-limited).
                with contextlib.suppress(RateLimited):
                    await self._email.resend_verification(user, context=context)
                raise EmailNotVerified()
            return await self.continue_after(
                user,
                [proof],
                context=context,
                epoch=user.credential_epoch,
                replacing=replacing,
                settling=settlement,
            )
        finally:  # written by the completed sign-in with its own clearing, else here on its own
            await self._throttle.settle(settlement)

    async def continue_after(
        self,
        user: User,
        proofs: Sequence[Proof],
        *,
        context: RequestContext,
        epoch: int,
        replacing: SessionRecord | None = None,
        settling: Settlement | None = None,
    ) -> SignInOutcome:
        """After a first step: a pending sign-in when a second factor is owed, else the session (which
        writes `settling`, the first step's give-back, with its own; see `complete`)."""
        if not is_strong(proofs):
            methods = await self._inventory.second_factors(user)
            if methods:  # no session until the second factor
                if self._gate is not None:  # before asking for a second factor that could not help
                    await self._gate.check(user, proofs, context=context)
                return await self.pending.start(user, proofs=proofs, epoch=epoch, methods=methods)
        return await self._finish(
            user, proofs, context=context, epoch=epoch, replacing=replacing, settling=settling
        )

    async def passkey_options(self) -> dict[str, Any]:
        return await self._passkey.login_options()

    # --- second steps ---------------------------------------------------------------------------------

    async def _pending_user(self, user_id: str) -> User:
        user = await self._users.get(user_id)
        if user is None or await self._lock.refuses(user):
            raise PendingLoginMissing()
        return user

    async def with_code(
        self,
        *,
        pending_token: str | None,
        method: str,
        code: str,
        context: RequestContext,
        replacing: SessionRecord | None = None,
    ) -> SignedIn | RestoreOffered:
        """Second step with a TOTP or recovery code (counted before it is checked)."""
        pending = await self.pending.load(pending_token)
        user = await self._pending_user(pending.user_id)
        if method not in (Method.TOTP, Method.RECOVERY_CODE):
            raise InvalidRequest(N_("method must be totp or recovery_code."))
        proof = await self._proving.prove(user, method=method, secret=code, context=context)
        assert pending_token is not None
        await self.pending.take(pending_token)
        return await self._finish(
            user, [*pending.proofs, proof], context=context, epoch=pending.epoch, replacing=replacing
        )

    async def with_passkey(
        self,
        *,
        credential: dict[str, Any],
        pending_token: str | None,
        context: RequestContext,
        replacing: SessionRecord | None = None,
    ) -> SignedIn | RestoreOffered:
        """A passkey on its own (aal2: possession + user verification), or as the second factor."""
        pending = None
        if pending_token:
            with contextlib.suppress(PendingLoginMissing):
                pending = await self.pending.load(pending_token)
        verified = await self._passkey.verify_assertion(
            credential,
            purpose="login",
            expected_user_id=pending.user_id if pending else None,
            context=context,
        )
        if pending is not None and pending_token:
            try:
                await self.pending.take(pending_token)
            except PendingLoginMissing:
                pending = None  # a concurrent completion used it; the passkey still proves aal2 on its own
        proofs = [*(pending.proofs if pending else ()), verified.proof]
        epoch = pending.epoch if pending else verified.user.credential_epoch
        return await self._finish(verified.user, proofs, context=context, epoch=epoch, replacing=replacing)

    def client_key(self, ip: str) -> str:
        """What per-client limits key on (an IPv6 client's /64 by default): see ratelimit."""
        return self._throttle.client_key(ip)

    async def proved_elsewhere(self, user: User) -> None:
        """The owner proved control another way (a password reset): failures in a row start over."""
        await self._throttle.signed_in(user_id=user.id, email_normalized=user.email_normalized)

    # --- completion -----------------------------------------------------------------------------------

    async def _finish(
        self,
        user: User,
        proofs: Sequence[Proof],
        *,
        context: RequestContext,
        epoch: int,
        replacing: SessionRecord | None,
        settling: Settlement | None = None,
    ) -> SignedIn | RestoreOffered:
        """The session; or, for an account its deletion locked (core.lock let it this far), the offer
        to keep it: the proofs wait under a single-use token, as a pending sign-in's do."""
        if user.disabled:
            deletion = await self._deletions.restorable(user) if self._deletions else None
            if deletion is None or not any(p.method in (Method.PASSWORD, Method.PASSKEY) for p in proofs):
                raise PendingLoginMissing()  # only a password or a passkey keeps an account (core.lock)
            if self._gate is not None:  # the proofs must be ones that could sign the account in
                await self._gate.check(user, proofs, context=context)
            held = await self.pending.start(user, proofs=proofs, epoch=epoch, methods=[], keeps_account=True)
            return RestoreOffered(token=held.token, expires_at=held.expires_at, erase_at=deletion.erase_at)
        return await self.complete(
            user, proofs, context=context, epoch=epoch, replacing=replacing, settling=settling
        )

    async def restore_offer(self, token: str | None) -> float:
        """When the account a keep-the-account offer is about will be erased (the offer page shows it).

        Raises:
            PendingLoginMissing: no such offer, or nothing left to keep.
        """
        pending = await self.pending.load(token)
        user = await self._pending_user(pending.user_id)
        deletion = await self._deletions.restorable(user) if self._deletions else None
        if not pending.keeps_account or deletion is None:
            raise PendingLoginMissing()
        return deletion.erase_at

    async def restore(
        self, *, token: str | None, context: RequestContext, replacing: SessionRecord | None = None
    ) -> SignedIn:
        """Keep the account whose deletion the sign-in behind `token` was offered to cancel: the
        deletion is cancelled, then the session those proofs earn is issued. The token is single-use.

        Raises:
            PendingLoginMissing: no such offer (used, expired), or the erasure became due meanwhile.
        """
        pending = await self.pending.load(token)
        if not pending.keeps_account:  # a second step's token: the second factor is still owed
            raise PendingLoginMissing()
        user = await self._pending_user(pending.user_id)
        assert token is not None
        await self.pending.take(token)
        if self._gate is not None:
            await self._gate.check(user, pending.proofs, context=context)
        if self._deletions is None or not await self._deletions.cancel(user, context=context):
            raise PendingLoginMissing(N_("The account could not be kept. Sign in again."))
        kept = await self._users.get(user.id)
        if kept is None or kept.disabled:
            raise PendingLoginMissing()
        return await self.complete(
            kept, pending.proofs, context=context, epoch=pending.epoch, replacing=replacing
        )

    async def complete(
        self,
        user: User,
        proofs: Sequence[Proof],
        *,
        context: RequestContext,
        epoch: int,
        replacing: SessionRecord | None = None,
        audited: bool = True,
        settling: Settlement | None = None,
    ) -> SignedIn:
        """Issue the session these proofs earn (a new id), or nothing if the credentials changed since
        the first step. `settling`, a right password's give-back (LoginThrottle.password_right), is
        written with the clearing of the consecutive counts, in one round trip.

        Raises:
            PendingLoginMissing: a password reset, change or removal (or a factor reset) committed after
                the first step; the person starts again with the new credentials.
        """
        if user.disabled:  # a locked account never gets a session (see `_finish` and core.lock)
            raise PendingLoginMissing()
        if self._gate is not None:
            await self._gate.check(user, proofs, context=context)
        assurance = assess(proofs)
        upstream = next((p.upstream for p in proofs if p.upstream is not None), None)
        org_id = upstream.org_id if upstream and upstream.org_id else await self.default_org(user.id)
        issued = await self._sessions.issue_session(
            user_id=user.id,
            aal=assurance.aal,
            amr=assurance.amr,
            context=context,
            org_id=org_id,
            connection_id=upstream.connection_id if upstream else None,
            upstream_acr=upstream.acr if upstream else None,
            upstream_amr=upstream.amr if upstream else (),
        )
        # Written first, checked after: a reset that commits later revokes this session with the rest.
        # The check, the audit event, the network (now a familiar one: core.ratelimit) and the browser's
        # sighting are one round trip (ports.SignInWrites); the caller that records its own event and
        # network (sign-up, `audited=False`) only checks.
        event: AuditEvent | None = None
        if audited:
            methods = [p.method for p in proofs]
            event = self._audit.event(
                AuditKind.LOGIN_SUCCEEDED
                if len(methods) == 1 and methods[0] not in (Method.PASSKEY, SSO)
                else AuditKind.MFA_SUCCEEDED,
                user_id=user.id,
                context=context,
                method=methods[-1],
                session=issued.record.public_id,
                **_upstream_detail(upstream),
            )
            closed = await self._closing.close(
                user.id, epoch=epoch, event=event, network=network_of(context.ip), device=context.device
            )
        else:
            current = await self._users.credential_epoch(user.id) == epoch
            closed = SignInClosed(current=current, new_device=False)
        if not closed.current:
            await self._sessions.end_session(issued.record)
            raise PendingLoginMissing(
                N_("The account's credentials changed during this sign-in. Sign in again.")
            )
        if event is not None:  # stored by the closing: announced at once, whatever fails after it
            await self._audit.announce(event, context)
        if closed.new_device and self._notify_new_device:  # audited, and so emailed (core.email.notices)
            try:  # the browser is known from now on: its one notice is recorded here or never
                await self._audit.record(
                    AuditKind.NEW_DEVICE_SIGN_IN,
                    user_id=user.id,
                    context=context,
                    device=device_label(context.user_agent),
                )
            except Exception:  # as a notice's failure always was (it ran as an audit subscriber)
                log.exception("new-device notice for %s not recorded", user.id)
        if replacing is not None:
            await self._sessions.end_session(replacing)
        await self._stepup.note_proofs(issued.record, list(proofs))
        await self._throttle.signed_in(
            user_id=user.id, email_normalized=user.email_normalized, settling=settling
        )
        return SignedIn(user=user, session=issued, assurance=assurance)

    async def default_org(self, user_id: str) -> str | None:
        """The organization a new session selects: the one the person joined first (the switcher on
        the hosted pages selects another)."""
        if self._orgs is None:
            return None
        memberships = await self._orgs.memberships_of(user_id)
        if not memberships:
            return None
        return min(memberships, key=lambda m: (m.created_at, m.org_id)).org_id


def _upstream_detail(upstream: Upstream | None) -> dict[str, str]:
    if upstream is None:
        return {}
    detail = {"connection": upstream.connection_id}
    if upstream.acr:
        detail["upstream_acr"] = upstream.acr[:200]
    if upstream.amr:
        detail["upstream_amr"] = ",".join(upstream.amr)[:200]
    return detail


__all__ = ["MfaRequired", "SignIn", "SignedIn"]
