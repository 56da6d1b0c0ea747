"""Email flows: address verification, password reset, sign-in by link or code, email change, and the
security notices users receive.

Every emailed secret is a 256-bit token stored as a digest, single use and short-lived. Requests that
could reveal whether an account exists (reset, sign-in by email) answer the same way and do their
account-specific work in the background, so status, body and timing match.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from urllib.parse import urlencode

from threshold.core.audit import Auditor
from threshold.core.clock import Clock
from threshold.core.email.codes import (
    _NO_CODE,
    ConfirmationRequired,
    EmailLoginDisabled,
    EmailLoginStarted,
    TokenInvalid,
    _code_digest,
    login_code,
)
from threshold.core.email.notices import Notices
from threshold.core.emails import normalize_email
from threshold.core.errors import (
    EmailInvalid,
    EmailUnavailable,
    InvalidRequest,
    MfaCodeInvalid,
    RateLimited,
)
from threshold.core.flows.factors import Factors
from threshold.core.flows.outcome import SignInOutcome
from threshold.core.flows.signin import SignIn
from threshold.core.i18n import N_
from threshold.core.methods.proofs import EMAILED
from threshold.core.models import (
    AuditEvent,
    AuditKind,
    OneTimeToken,
    OutgoingMail,
    PasswordCredential,
    RequestContext,
    SessionRecord,
    TokenPurpose,
    User,
)
from threshold.core.passwords import PasswordHasher, PasswordPolicy
from threshold.core.ports import MailQueue, RateLimitStore, TokenRepo, UserRepo
from threshold.core.revocation import AccessRevoker, Cause, Reach
from threshold.core.secrets import digest, equal, new_token
from threshold.core.sessions import SessionService
from threshold.settings import EmailSettings

log = logging.getLogger(__name__)
HOUR = 3600


class EmailFlows:
    def __init__(
        self,
        *,
        users: UserRepo,
        tokens: TokenRepo,
        mail: MailQueue,
        counters: RateLimitStore,
        sessions: SessionService,
        factors: Factors,
        signin: SignIn,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        auditor: Auditor,
        clock: Clock,
        settings: EmailSettings,
        issuer: str,
        product_name: str,
        revoker: AccessRevoker,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._mail = mail
        self._counters = counters
        self._sessions = sessions
        self._factors = factors
        self._signin = signin
        self._hasher = hasher
        self._policy = policy
        self._audit = auditor
        self._clock = clock
        self._settings = settings
        self._issuer = issuer
        self._product = product_name
        self._revoker = revoker
        self._background: set[asyncio.Task[None]] = set()
        self._notices = Notices(users=users, clock=clock, send=self._send, link=self._link)

    # --- plumbing -----------------------------------------------------------------------------------

    def _link(self, path: str, **params: str) -> str:
        return f"{self._issuer}{path}?{urlencode(params)}" if params else f"{self._issuer}{path}"

    async def _send(self, kind: str, to: str, **context: str) -> None:
        await self._mail.enqueue(
            OutgoingMail(kind=kind, to=to, context={"product": self._product, **context})
        )

    def _in_background(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("background email work failed")

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _limit(self, *, address: str, ip: str) -> None:
        """Per-address and per-client-address hourly limits; unknown addresses count the same."""
        now = self._clock.now()
        for key, limit in (
            (f"mail:a:{digest(address)[:40]}", self._settings.per_address),
            (f"mail:ip:{self._signin.client_key(ip)}", self._settings.per_ip),
        ):
            count = await self._counters.increment(key, window=HOUR, now=now)
            if count.count > limit:
                raise RateLimited(count.retry_after)

    async def _new_token(
        self,
        purpose: TokenPurpose,
        user: User,
        *,
        email: str,
        lifetime: int,
        code: str | None = None,
        binding: str | None = None,
    ) -> str:
        token = new_token()
        now = self._clock.now()
        await self._tokens.invalidate(user.id, purpose, now=now)  # only the newest link works
        await self._tokens.add(
            OneTimeToken(
                digest=digest(token),
                purpose=purpose,
                user_id=user.id,
                email=email,
                created_at=now,
                expires_at=now + lifetime,
                code_digest=_code_digest(binding or "", code) if code else None,
                binding=binding,
            )
        )
        return token

    # --- verification ---------------------------------------------------------------------------------

    async def send_verification(self, user: User) -> None:
        if self._settings.verification == "off" or user.email_verified:
            return
        token = await self._new_token(
            TokenPurpose.VERIFY_EMAIL,
            user,
            email=user.email_normalized,
            lifetime=self._settings.verification_lifetime,
        )
        await self._send("verify_email", user.email, link=self._link("/verify-email", token=token))

    async def resend_verification(self, user: User, *, context: RequestContext) -> None:
        await self._limit(address=user.email_normalized, ip=context.ip)
        await self.send_verification(user)

    async def signup_attempt_on_existing(self, email: str) -> None:
        """Sign-up with a taken address (verification required): tell the owner, reveal nothing."""
        try:
            address = normalize_email(email)
        except EmailInvalid:
            return
        user = await self._users.get_by_email(address.normalized)
        if user is None:
            return
        count = await self._counters.increment(
            f"mail:signup-notice:{digest(address.normalized)[:40]}", window=HOUR, now=self._clock.now()
        )
        if count.count > self._settings.per_address:
            return  # still the same answer to the asker; the owner is not flooded
        await self._send(
            "signup_existing", user.email, link=self._link("/login"), reset=self._link("/reset-password")
        )

    async def verify_email(self, token: str, *, context: RequestContext) -> User:
        record = await self._tokens.consume(
            digest(token), purpose=TokenPurpose.VERIFY_EMAIL, now=self._clock.now()
        )
        if record is None:
            raise TokenInvalid()
        if not await self._users.set_email_verified(record.user_id, record.email):
            raise TokenInvalid()  # the address changed since the link was sent
        await self._audit.record(AuditKind.EMAIL_VERIFIED, user_id=record.user_id, context=context)
        user = await self._users.get(record.user_id)
        assert user is not None
        return user

    # --- password reset ---------------------------------------------------------------------------------

    async def request_password_reset(self, email: str, *, context: RequestContext) -> None:
        """Same answer for every address; the email (if any) is prepared in the background."""
        try:
            normalized = normalize_email(email).normalized
        except EmailInvalid:
            normalized = email[:320].casefold()
        await self._limit(address=normalized, ip=context.ip)
        self._in_background(self._reset_mail(normalized, context))

    async def _reset_mail(self, normalized: str, context: RequestContext) -> None:
        user = await self._users.get_by_email(normalized)
        if user is None or user.disabled:
            return
        token = await self._new_token(
            TokenPurpose.RESET_PASSWORD,
            user,
            email=user.email_normalized,
            lifetime=self._settings.reset_lifetime,
        )
        minutes = str(self._settings.reset_lifetime // 60)
        await self._send(
            "reset_password", user.email, link=self._link("/reset-password", token=token), minutes=minutes
        )
        await self._audit.record(AuditKind.PASSWORD_RESET_REQUESTED, user_id=user.id, context=context)

    async def check_reset_token(self, token: str) -> bool:
        return (
            await self._tokens.peek(digest(token), purpose=TokenPurpose.RESET_PASSWORD, now=self._clock.now())
            is not None
        )

    async def reset_password(self, *, token: str, new_password: str, context: RequestContext) -> User:
        """Set a new password from a reset link: every session and refresh token ends; MFA still applies
        at the next sign-in (a reset never bypasses the second factor)."""
        now = self._clock.now()
        record = await self._tokens.peek(digest(token), purpose=TokenPurpose.RESET_PASSWORD, now=now)
        user = await self._users.get(record.user_id) if record else None
        if record is None or user is None or user.disabled or record.email != user.email_normalized:
            raise TokenInvalid()  # (a link sent to an address the account no longer has is void)
        await self._policy.check_new_password(
            new_password, email=user.email, has_mfa=await self._factors.has_second_factor(user)
        )
        if await self._tokens.consume(record.digest, purpose=TokenPurpose.RESET_PASSWORD, now=now) is None:
            raise TokenInvalid()
        await self._users.set_password(
            PasswordCredential(user_id=user.id, hash=await self._hasher.hash(new_password), updated_at=now)
        )
        await self._signin.proved_elsewhere(user)  # a success: the consecutive-failure count ends
        ended = await self._revoker.end_access(
            Reach.everything(user.id), cause=Cause.PASSWORD_RESET, context=context
        )
        if record.email == user.email_normalized and not user.email_verified:
            await self._users.set_email_verified(user.id, user.email_normalized)  # they proved the mailbox
        await self._audit.record(
            AuditKind.PASSWORD_RESET,
            user_id=user.id,
            context=context,
            sessions_revoked=str(len(ended.sessions)),
            refresh_tokens_revoked=str(ended.refresh_tokens),
        )
        return user

    # --- sign-in by email ---------------------------------------------------------------------------------

    async def request_email_login(self, email: str, *, context: RequestContext) -> EmailLoginStarted:
        """Send a link and a 6-digit code; the returned binding goes into the asking browser's cookie."""
        if not self._settings.login_enabled:
            raise EmailLoginDisabled()
        try:
            normalized = normalize_email(email).normalized
        except EmailInvalid:
            normalized = email[:320].casefold()
        await self._limit(address=normalized, ip=context.ip)
        binding = f"{new_token()}.{int(self._clock.now())}"  # when it was issued: see _reserve_code_attempt
        self._in_background(self._login_mail(normalized, digest(binding), context))
        return EmailLoginStarted(binding=binding)

    async def _login_mail(self, normalized: str, binding_digest: str, context: RequestContext) -> None:
        user = await self._users.get_by_email(normalized)
        if user is None or user.disabled:
            return
        code = login_code()
        token = await self._new_token(
            TokenPurpose.EMAIL_LOGIN,
            user,
            email=user.email_normalized,
            lifetime=self._settings.login_lifetime,
            code=code,
            binding=binding_digest,
        )
        await self._send(
            "email_login",
            user.email,
            link=self._link("/login/email/verify", token=token),
            code=code,
            minutes=str(self._settings.login_lifetime // 60),
            ip=context.ip,
        )
        await self._audit.record(AuditKind.EMAIL_LOGIN_REQUESTED, user_id=user.id, context=context)

    async def complete_email_login(
        self,
        *,
        token: str | None,
        code: str | None,
        binding: str | None,
        confirmed: bool,
        context: RequestContext,
        replacing: SessionRecord | None = None,
    ) -> tuple[User, SignInOutcome]:
        """Sign in with the emailed link (token) or code.

        A link opened in the browser that asked signs in; elsewhere it needs `confirmed` (the page asks),
        so a link forwarded or prefetched does not sign anyone in silently. A code works only in the
        browser that asked (its binding cookie) and allows a few wrong tries.

        Raises:
            TokenInvalid, ConfirmationRequired, MfaCodeInvalid, EmailLoginDisabled.
        """
        if not self._settings.login_enabled:
            raise EmailLoginDisabled()
        now = self._clock.now()
        binding_digest = digest(binding) if binding else None
        if token:
            record = await self._tokens.peek(digest(token), purpose=TokenPurpose.EMAIL_LOGIN, now=now)
            if record is None:
                raise TokenInvalid()
            same_browser = (
                record.binding is not None
                and binding_digest is not None
                and equal(record.binding, binding_digest)
            )
            if not same_browser and not confirmed:
                raise ConfirmationRequired()
        elif code and binding_digest:
            record = await self._code_record(binding or "", code, now=now)
        else:
            raise InvalidRequest(N_("Send the link's token, or the code from the browser that asked for it."))
        consumed = await self._tokens.consume(record.digest, purpose=TokenPurpose.EMAIL_LOGIN, now=now)
        user = await self._users.get(record.user_id) if consumed else None
        if consumed is None or user is None or user.disabled or record.email != user.email_normalized:
            raise TokenInvalid()
        if not user.email_verified:
            await self._users.set_email_verified(user.id, user.email_normalized)
            user = await self._users.get(user.id) or user
        # An emailed link proves a mailbox, never a factor: the sign-in continues like any first step.
        outcome = await self._signin.continue_after(
            user, [EMAILED], context=context, epoch=user.credential_epoch, replacing=replacing
        )
        return user, outcome

    async def _code_record(self, binding: str, code: str, *, now: float) -> OneTimeToken:
        """The pending sign-in whose emailed code this browser typed, or an error that says nothing
        about whether the address it asked for has an account.

        The attempt is counted before anything is looked up or compared (an atomic increment: however
        many guesses arrive at once, at most `code_attempts` are compared), and it is counted per
        browser binding, which exists whether or not a message was sent: a wrong code for an account
        and any code for an unknown address meet the same answers, on the same try, in the same time.
        """
        binding_digest = digest(binding)
        attempts = await self._reserve_code_attempt(binding, binding_digest, now=now)
        budget = self._settings.code_attempts
        if attempts > budget:
            raise TokenInvalid()
        record = await self._tokens.latest_for_binding(
            binding_digest, purpose=TokenPurpose.EMAIL_LOGIN, now=now
        )
        expected = record.code_digest if record is not None and record.code_digest else _NO_CODE
        matches = equal(_code_digest(binding_digest, code.strip().replace(" ", "")), expected)
        if record is None or not matches:
            raise MfaCodeInvalid() if attempts < budget else TokenInvalid()
        return record

    async def _reserve_code_attempt(self, binding: str, binding_digest: str, *, now: float) -> int:
        """Count one code attempt for this binding; returns how many there have been.

        The shared counters are fixed windows: a window boundary inside a code's lifetime would start
        a fresh count. So the count is kept in the one window that follows the binding's issue time
        (which the binding carries), and that window ends after the code does. A binding that does not
        say when it was issued, or says something implausible, counts in the window of now: one altered
        by hand names no code (altering the time alters the binding), one issued before bindings
        carried their time lives at most one code lifetime more.
        """
        lifetime = self._settings.login_lifetime
        stamp = binding.rpartition(".")[2]
        issued = int(stamp) if stamp.isdigit() and len(stamp) <= 12 else None
        anchor = issued if issued is not None and now - 2 * lifetime <= issued <= now + lifetime else now
        count = await self._counters.increment(
            f"mail:code:{binding_digest[:40]}", window=lifetime, now=anchor + lifetime
        )
        return count.count

    # --- email change -----------------------------------------------------------------------------------

    async def request_email_change(self, user: User, new_email: str, *, context: RequestContext) -> None:
        """Send a confirmation link to the new address and a notice to the old one."""
        address = normalize_email(new_email)
        if address.normalized == user.email_normalized:
            raise InvalidRequest(N_("That is already your address."))
        await self._limit(address=address.normalized, ip=context.ip)
        if await self._users.get_by_email(address.normalized) is not None:
            raise EmailUnavailable()
        token = await self._new_token(
            TokenPurpose.CHANGE_EMAIL,
            user,
            email=address.display,
            lifetime=self._settings.verification_lifetime,
        )
        await self._send(
            "change_email", address.display, link=self._link("/verify-email", token=token, change="1")
        )
        await self._send("notice_email_change_requested", user.email, new_email=address.display)
        await self._audit.record(AuditKind.EMAIL_CHANGE_REQUESTED, user_id=user.id, context=context)

    async def confirm_email_change(self, token: str, *, context: RequestContext) -> User:
        record = await self._tokens.consume(
            digest(token), purpose=TokenPurpose.CHANGE_EMAIL, now=self._clock.now()
        )
        user = await self._users.get(record.user_id) if record else None
        if record is None or user is None:
            raise TokenInvalid()
        address = normalize_email(record.email)
        await self._users.change_email(user.id, email=address.display, email_normalized=address.normalized)
        await self._send("notice_email_changed", user.email, new_email=address.display)
        await self._audit.record(AuditKind.EMAIL_CHANGED, user_id=user.id, context=context)
        changed = await self._users.get(user.id)
        assert changed is not None
        return changed

    # --- notices ------------------------------------------------------------------------------------------

    async def on_event(self, event: AuditEvent, context: RequestContext | None) -> None:
        """Auditor subscriber: security notices, and new-device detection at sign-in."""
        await self._notices.on_event(event, context)

    async def notify(self, event: AuditEvent) -> None:
        await self._notices.notify(event)
