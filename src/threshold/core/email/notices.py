"""Security notices: the audit events that also email the user (a first sign-in from a browser among them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from threshold.core.clock import Clock, iso
from threshold.core.models import (
    AuditEvent,
    AuditKind,
    RequestContext,
)
from threshold.core.ports import UserRepo

# Security notices: audit kinds that also email the user, with the template to use.
NOTICES: dict[AuditKind, str] = {
    AuditKind.PASSWORD_CHANGED: "notice_password_changed",
    AuditKind.PASSWORD_RESET: "notice_password_changed",
    AuditKind.PASSWORD_REMOVED: "notice_password_changed",
    AuditKind.PASSKEY_ADDED: "notice_factor_added",
    AuditKind.TOTP_ENABLED: "notice_factor_added",
    AuditKind.PASSKEY_REMOVED: "notice_factor_removed",
    AuditKind.TOTP_REMOVED: "notice_factor_removed",
    AuditKind.REFRESH_TOKEN_REUSE: "notice_token_reuse",
    AuditKind.RECOVERY_REQUESTED: "notice_recovery",
    AuditKind.RECOVERY_COMPLETED: "notice_recovery_completed",
    AuditKind.NEW_DEVICE_SIGN_IN: "notice_new_device",
    AuditKind.PASSKEY_COUNTER_REGRESSION: "notice_passkey_blocked",
    AuditKind.ACCOUNT_DELETION_REQUESTED: "notice_account_deletion",
}


SendMail = Callable[..., Awaitable[None]]


class Notices:
    def __init__(
        self,
        *,
        users: UserRepo,
        clock: Clock,
        send: SendMail,
        link: Callable[[str], str],
    ) -> None:
        self._users = users
        self._clock = clock
        self._send = send
        self._link = link

    async def on_event(self, event: AuditEvent, context: RequestContext | None) -> None:
        """Auditor subscriber: security notices, and the browser of a sign-up remembered (a sign-in's is
        sighted by its closing writes, core.flows.signin.SignIn.complete, which audits a new one)."""
        if event.user_id is None:
            return
        if event.kind is AuditKind.SIGNUP and context is not None and context.device:
            await self._users.remember_device(event.user_id, context.device, self._clock.now())
        else:
            await self.notify(event)

    async def notify(self, event: AuditEvent) -> None:
        """Email the user about a security event."""
        template = NOTICES.get(event.kind)
        if template is None or event.user_id is None:
            return
        user = await self._users.get(event.user_id)
        if user is None:
            return
        await self._send(
            template,
            user.email,
            when=iso(event.at),
            ip=event.ip or "unknown",
            device=event.detail.get("device", ""),
            erase_at=event.detail.get("erase_at", ""),
            account=self._link("/account"),
        )
