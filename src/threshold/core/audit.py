"""Recording security events in the append-only audit log."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from threshold.core.clock import Clock
from threshold.core.models import AuditEvent, AuditKind, RequestContext
from threshold.core.ports import AuditLog

log = logging.getLogger("threshold.audit")


class Auditor:
    def __init__(
        self, log_store: AuditLog, clock: Clock, *, observer: Callable[[AuditEvent], None] | None = None
    ) -> None:
        """`observer` sees every recorded event, synchronously (the metrics are derived from it)."""
        self._store = log_store
        self._clock = clock
        self._observer = observer
        self._subscribers: list[Callable[[AuditEvent, RequestContext | None], Awaitable[None]]] = []

    def subscribe(self, subscriber: Callable[[AuditEvent, RequestContext | None], Awaitable[None]]) -> None:
        """Run `subscriber` after each recorded event (notifications); its failures are logged, not raised."""
        self._subscribers.append(subscriber)

    async def record(
        self,
        kind: AuditKind,
        *,
        user_id: str | None,
        context: RequestContext | None = None,
        **detail: str,
    ) -> AuditEvent:
        event = self.event(kind, user_id=user_id, context=context, **detail)
        await self._store.append(event)
        await self.announce(event, context)
        return event

    def event(
        self, kind: AuditKind, *, user_id: str | None, context: RequestContext | None = None, **detail: str
    ) -> AuditEvent:
        """The event `record` would store, not stored: for a write that stores it together with others in
        one round trip (a sign-in's closing writes, core.flows.closing), which then `announce`s it."""
        if context is not None and context.actor and "actor" not in detail:
            detail["actor"] = context.actor[:200]  # the operator who acted, on every event they caused
        return AuditEvent(
            kind=kind,
            at=self._clock.now(),
            user_id=user_id,
            ip=context.ip if context else None,
            user_agent=context.user_agent[:512] if context else None,
            detail=detail,
        )

    async def append(self, event: AuditEvent) -> None:
        """Store an event built by `event` (then `announce` it)."""
        await self._store.append(event)

    async def announce(self, event: AuditEvent, context: RequestContext | None) -> None:
        """What follows a stored event: the metrics, the subscribers (notices) and the log line."""
        if self._observer is not None:
            self._observer(event)
        for subscriber in self._subscribers:
            try:
                await subscriber(event, context)
            except Exception:
                log.exception("audit subscriber failed for %s", event.kind.value)
        log.info("audit %s user=%s ip=%s %s", event.kind.value, event.user_id, event.ip, event.detail or "")

    async def events_for(self, user_id: str, *, limit: int = 20) -> Sequence[AuditEvent]:
        return await self._store.list_for_user(user_id, limit=limit)
