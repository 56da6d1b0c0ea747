"""Server-side browser sessions: opaque 256-bit ids, stored only as SHA-256 digests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from threshold.core.clock import Clock
from threshold.core.devices import device_label
from threshold.core.errors import SessionNotFound
from threshold.core.models import Aal, Amr, RequestContext, SessionRecord
from threshold.core.ports import SessionStore
from threshold.core.secrets import digest, new_id, new_token
from threshold.settings import SessionSettings

MAX_USER_AGENT = 512


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new session. `token` goes into the cookie and is never stored."""

    token: str
    record: SessionRecord


class SessionService:
    def __init__(self, store: SessionStore, clock: Clock, settings: SessionSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings

    async def issue_session(
        self,
        *,
        user_id: str,
        aal: Aal,
        amr: Sequence[Amr],
        context: RequestContext,
        auth_time: float | None = None,
        org_id: str | None = None,
        connection_id: str | None = None,
        upstream_acr: str | None = None,
        upstream_amr: Sequence[str] = (),
    ) -> IssuedSession:
        """Create a session with a brand-new id (every privilege change calls this: no fixation)."""
        now = self._clock.now()
        token = new_token()
        user_agent = context.user_agent[:MAX_USER_AGENT]
        record = SessionRecord(
            digest=digest(token),
            public_id=new_id(),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            idle_expires_at=now + self._settings.idle_timeout,
            absolute_expires_at=now + self._settings.absolute_lifetime,
            aal=aal,
            amr=tuple(amr),
            ip=context.ip,
            user_agent=user_agent,
            device_label=device_label(user_agent),
            auth_time=auth_time if auth_time is not None else now,
            org_id=org_id,
            connection_id=connection_id,
            upstream_acr=upstream_acr,
            upstream_amr=tuple(upstream_amr),
        )
        await self._store.create(record)
        return IssuedSession(token=token, record=record)

    async def reissue(self, record: SessionRecord, *, org_id: str | None) -> IssuedSession | None:
        """The same sign-in under a new id with another organization selected (a change of privilege,
        so a new id); None when the session ended meanwhile (of two concurrent switches, one wins)."""
        token = new_token()
        renewed = replace(record, digest=digest(token), public_id=new_id(), org_id=org_id)
        if not await self._store.delete(record.digest):
            return None
        await self._store.create(renewed)
        return IssuedSession(token=token, record=renewed)

    async def end_org_sessions(self, *, user_id: str, org_id: str) -> list[SessionRecord]:
        """End the user's sessions that selected this organization (a membership ended)."""
        ended = [r for r in await self._store.list_for_user(user_id) if r.org_id == org_id]
        for record in ended:
            await self._store.delete(record.digest)
        return ended

    async def check_session(self, token: str) -> SessionRecord | None:
        """The live session for a cookie value, or None. Writes last-seen at most once per interval."""
        if not token or len(token) > 128:
            return None
        return await self.check_digest(digest(token))

    async def check_digest(self, key: str) -> SessionRecord | None:
        """check_session for a cookie value already digested (the caller keyed its cache by it)."""
        record = await self._store.get(key)
        if record is None:
            return None
        now = self._clock.now()
        if now >= record.expires_at:
            await self._store.delete(key)
            return None
        if now - record.last_seen_at >= self._settings.touch_interval:
            idle_expires_at = min(now + self._settings.idle_timeout, record.absolute_expires_at)
            await self._store.touch(key, last_seen_at=now, idle_expires_at=idle_expires_at)
            record = replace(record, last_seen_at=now, idle_expires_at=idle_expires_at)
        return record

    async def live_session(self, key: str) -> SessionRecord | None:
        """The unexpired session with this digest, read as it is (no last-seen write)."""
        record = await self._store.get(key)
        if record is None or self._clock.now() >= record.expires_at:
            return None
        return record

    async def list_sessions(self, user_id: str) -> list[SessionRecord]:
        now = self._clock.now()
        records = [r for r in await self._store.list_for_user(user_id) if r.expires_at > now]
        return sorted(records, key=lambda r: r.last_seen_at, reverse=True)

    async def find_session(self, *, user_id: str, public_id: str) -> SessionRecord:
        """One of the user's sessions by its public id.

        Raises:
            SessionNotFound: no session of this user has that id.
        """
        for record in await self._store.list_for_user(user_id):
            if record.public_id == public_id:
                return record
        raise SessionNotFound()

    async def end_session(self, record: SessionRecord) -> None:
        await self._store.delete(record.digest)

    async def take_session(self, record: SessionRecord) -> bool:
        """End the session; whether it still existed (of two concurrent takers, one gets True)."""
        return await self._store.delete(record.digest)

    async def end_user_sessions(
        self, user_id: str, *, keep: SessionRecord | None = None
    ) -> list[SessionRecord]:
        """End every session of the user (but `keep`); the sessions ended. Only core.revocation calls
        this: ending a person's access is one operation there."""
        kept = keep.digest if keep is not None else None
        listed = [r for r in await self._store.list_for_user(user_id) if r.digest != kept]
        await self._store.delete_for_user(user_id, except_digest=kept)
        return listed
