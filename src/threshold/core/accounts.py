"""Account flows: sign-up, password sign-in, password change, operator actions.

Thin web views (JSON and HTML) and the CLI call these; none of them takes a request object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.emails import normalize_email
from threshold.core.errors import (
    CurrentPasswordWrong,
    EmailInvalid,
    EmailUnavailable,
    SignupDisabled,
    UserNotFound,
)
from threshold.core.flows.outcome import SignedIn, VerificationPending
from threshold.core.flows.signin import SignIn
from threshold.core.flows.stepup import StepUp
from threshold.core.methods.password import PasswordMethod
from threshold.core.methods.proofs import PASSWORD

if TYPE_CHECKING:
    from threshold.core.deletion import Deletions
    from threshold.core.email import EmailFlows
from threshold.core.models import (
    AuditEvent,
    AuditKind,
    PasswordCredential,
    RequestContext,
    SessionRecord,
    User,
)
from threshold.core.passwords import PasswordHasher, PasswordPolicy
from threshold.core.ports import UserRepo
from threshold.core.ratelimit import LoginThrottle
from threshold.core.revocation import AccessRevoker, Cause, Ended, Reach
from threshold.core.secrets import new_id
from threshold.core.sessions import IssuedSession, SessionService

OPERATOR = RequestContext(ip="cli", user_agent="threshold-cli")


class Accounts:
    def __init__(
        self,
        *,
        users: UserRepo,
        sessions: SessionService,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        throttle: LoginThrottle,
        auditor: Auditor,
        clock: Clock,
        signup_enabled: bool,
        password: PasswordMethod,
        stepup: StepUp,
        signin: SignIn,
        revoker: AccessRevoker,
    ) -> None:
        self._users = users
        self._revoker = revoker
        self._sessions = sessions
        self._hasher = hasher
        self._policy = policy
        self._throttle = throttle
        self._audit = auditor
        self._clock = clock
        self._signup_enabled = signup_enabled
        self._password = password
        self._stepup = stepup
        self._signin = signin
        self._email: EmailFlows | None = None
        self._deletions: Deletions | None = None
        self._verification = "off"

    def attach_deletions(self, deletions: Deletions) -> None:
        """Deletions are built after Accounts (they need the revoker and the console's store)."""
        self._deletions = deletions

    def attach_email(self, email: EmailFlows, *, verification: str) -> None:
        """Email flows are built after Accounts (they share its collaborators)."""
        self._email = email
        self._verification = verification

    async def _new_user(self, *, email: str, password: str) -> tuple[User, PasswordCredential]:
        address = normalize_email(email)
        await self._policy.check_new_password(password, email=address.display)
        now = self._clock.now()
        user = User(
            id=new_id(),
            email=address.display,
            email_normalized=address.normalized,
            email_verified=False,
            disabled=False,
            created_at=now,
        )
        credential = PasswordCredential(
            user_id=user.id, hash=await self._hasher.hash(password), updated_at=now
        )
        await self._users.add(user, credential)
        return user, credential

    async def sign_up(
        self, *, email: str, password: str, context: RequestContext, replacing: SessionRecord | None = None
    ) -> SignedIn | VerificationPending:
        """Create an account with a password and sign it in.

        Raises:
            SignupDisabled, RateLimited, EmailInvalid, PasswordRejected, EmailUnavailable.
        """
        if not self._signup_enabled:
            raise SignupDisabled()
        await self._throttle.check_signup(ip=context.ip)
        if self._verification == "required" and self._email is not None:
            try:
                user, _ = await self._new_user(email=email, password=password)
            except EmailUnavailable:  # the same answer as a new account; the owner gets a notice
                await self._email.signup_attempt_on_existing(email)
                return VerificationPending()
            await self._signed_up(user, context)
            await self._email.send_verification(user)
            return VerificationPending()
        user, _ = await self._new_user(email=email, password=password)
        await self._signed_up(user, context)
        if self._email is not None and self._verification == "optional":
            await self._email.send_verification(user)
        return await self._signin.complete(
            user, [PASSWORD], context=context, epoch=user.credential_epoch, replacing=replacing, audited=False
        )

    async def _signed_up(self, user: User, context: RequestContext) -> None:
        """Every sign-up, whatever the verification policy: audited, and its network familiar (exempt
        from the per-account limit, as a completed sign-in's is: core.ratelimit)."""
        await self._audit.record(AuditKind.SIGNUP, user_id=user.id, context=context)
        await self._throttle.note_network(user_id=user.id, ip=context.ip)

    async def change_password(
        self,
        *,
        user: User,
        current_session: SessionRecord,
        current_password: str,
        new_password: str,
        context: RequestContext,
    ) -> IssuedSession:
        """Replace (or, for a passkey-only account, set) the password, end every session and issue the
        caller a new one (new id).

        Raises:
            RateLimited, CurrentPasswordWrong, PasswordRejected, ReauthenticationRequired.
        """
        if not await self._password.has_password(user):
            # A passkey-only account setting a password: a recent passkey sign-in or step-up proves it.
            await self._stepup.require_recent_auth(user, current_session)
            reservation = None
        else:
            reservation = await self._throttle.reserve_login(
                email_normalized=user.email_normalized, ip=context.ip, user_id=user.id
            )
        if (
            reservation is not None
            and await self._password.verify_password(user, current_password, context) is None
        ):
            await self._audit.record(
                AuditKind.LOGIN_FAILED,
                user_id=user.id,
                context=context,
                reason="password_change_wrong_password",
            )
            raise CurrentPasswordWrong()
        if reservation is not None:
            await self._throttle.login_succeeded(reservation, ip=context.ip, user_id=user.id)
        has_mfa = await self._stepup.has_second_factor(user)
        await self._policy.check_new_password(new_password, email=user.email, has_mfa=has_mfa)
        await self._users.set_password(
            PasswordCredential(
                user_id=user.id, hash=await self._hasher.hash(new_password), updated_at=self._clock.now()
            )
        )
        ended = await self._revoker.end_access(
            Reach.everything(user.id), cause=Cause.PASSWORD_CHANGED, context=context
        )
        issued = await self._sessions.issue_session(
            user_id=user.id,
            aal=current_session.aal,
            amr=current_session.amr,
            context=context,
            auth_time=self._clock.now(),
            org_id=current_session.org_id,
            connection_id=current_session.connection_id,
            upstream_acr=current_session.upstream_acr,
            upstream_amr=current_session.upstream_amr,
        )
        await self._audit.record(
            AuditKind.PASSWORD_CHANGED,
            user_id=user.id,
            context=context,
            sessions_revoked=str(len(ended.sessions)),
        )
        return issued

    async def current_user(self, record: SessionRecord) -> User | None:
        """The user behind a live session; a disabled user's sessions are ended on sight."""
        user = await self._users.get(record.user_id)
        if user is None or user.disabled:
            await self._sessions.end_session(record)
            return None
        return user

    async def revoke_session(self, user: User, public_id: str, *, context: RequestContext) -> SessionRecord:
        """Revoke one of the user's own sessions. Raises SessionNotFound."""
        record = await self._sessions.find_session(user_id=user.id, public_id=public_id)
        await self._revoker.end_access(
            Reach.session(record), cause=Cause.SESSION_REVOKED, context=context, session=record.public_id
        )
        return record

    async def revoke_other_sessions(
        self, user: User, current: SessionRecord, *, context: RequestContext
    ) -> int:
        ended = await self._revoker.end_access(
            Reach.all_but(current), cause=Cause.SIGN_OUT_EVERYWHERE, context=context
        )
        return len(ended.sessions)

    async def log_out(self, user: User, current: SessionRecord, *, context: RequestContext) -> None:
        """End this session and the tokens issued under it; its applications hear of it."""
        await self._revoker.end_access(
            Reach.session(current), cause=Cause.LOGOUT, context=context, session=current.public_id
        )

    async def security_events(self, user: User, *, limit: int = 20) -> Sequence[AuditEvent]:
        return await self._audit.events_for(user.id, limit=limit)

    # Operator actions (CLI and admin API).

    async def create_user(
        self, *, email: str, password: str, context: RequestContext = OPERATOR, verified: bool = False
    ) -> User:
        """An account made by the operator; `verified` when the operator vouches for the address."""
        user, _ = await self._new_user(email=email, password=password)
        if verified and await self._users.set_email_verified(user.id, user.email_normalized):
            user = replace(user, email_verified=True)
        await self._audit.record(AuditKind.USER_CREATED, user_id=user.id, context=context)
        return user

    async def find_user(self, email_or_id: str) -> User:
        user = await self._users.get(email_or_id)
        if user is None:
            try:
                user = await self._users.get_by_email(normalize_email(email_or_id).normalized)
            except EmailInvalid:
                user = None
        if user is None:
            raise UserNotFound()
        return user

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> Sequence[User]:
        return await self._users.list(limit=limit, offset=offset)

    async def set_disabled(
        self,
        user: User,
        *,
        disabled: bool,
        context: RequestContext = OPERATOR,
        cause: Cause = Cause.USER_DISABLED,
    ) -> int:
        """Disable (ending every session, grant and application session, for `cause`) or re-enable an
        account. Returns the sessions ended."""
        await self._users.set_disabled(user.id, disabled)
        if self._deletions is not None:  # a deletion in its grace period follows the operator
            await self._deletions.operator_locked(user, disabled=disabled, context=context)
        revoked = 0
        if disabled:
            ended = await self._revoker.end_access(Reach.everything(user.id), cause=cause, context=context)
            revoked = len(ended.sessions)
        kind = AuditKind.USER_DISABLED if disabled else AuditKind.USER_ENABLED
        await self._audit.record(kind, user_id=user.id, context=context, sessions_revoked=str(revoked))
        return revoked

    async def set_mfa_required(
        self, user: User, *, required: bool, context: RequestContext = OPERATOR
    ) -> None:
        """An operator requires (or stops requiring) a second factor for this account."""
        await self._users.set_mfa_required(user.id, required)
        await self._audit.record(
            AuditKind.MFA_POLICY_CHANGED, user_id=user.id, context=context, required=str(required).lower()
        )

    async def revoke_user_sessions(self, user: User, *, context: RequestContext = OPERATOR) -> Ended:
        """The operator ends every session and token of the account ("sign out everywhere")."""
        return await self._revoker.end_access(
            Reach.everything(user.id), cause=Cause.OPERATOR_REVOKED, context=context
        )
