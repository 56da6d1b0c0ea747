"""The applications' side of an end of access (core.revocation): their grants end, and the ones that
registered a back-channel logout URI are told (OpenID Connect Back-Channel Logout 1.0).

`end_grants` revokes what the reach covers: every grant of the user, the grants under the ended sessions,
the grants issued for an organization, or one refresh-token family; the access tokens issued under
those grants are refused at once (oidc.live_grant). Which applications held a grant under an ended
session is read from the grants, and each gets one notice per session (`sid`, the one its ID tokens
carry, and `sub`).

`notify` turns the notices of applications with a `backchannel_logout_uri` into rows of the durable
delivery queue (adapters.backchannel signs and posts them, retrying with backoff until the application
answers), and wakes this process's delivery worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from threshold.core.clock import Clock
from threshold.core.models import SessionRecord
from threshold.core.revocation import Cause, GrantsEnded, LogoutNotice, Reach
from threshold.core.secrets import new_id
from threshold.oidc.models import LogoutDelivery
from threshold.oidc.ports import ClientRepo, LogoutQueue, RefreshTokenRepo


class ProviderApplications:
    def __init__(self, *, refresh_tokens: RefreshTokenRepo, clients: ClientRepo, clock: Clock) -> None:
        self._refresh = refresh_tokens
        self._clients = clients
        self._clock = clock
        self._queue: LogoutQueue | None = None
        self._wake: Callable[[], None] = lambda: None

    def attach_queue(self, queue: LogoutQueue, wake: Callable[[], None]) -> None:
        """The delivery queue (an adapter, built after the provider) and how to wake its worker; until
        then nobody is notified."""
        self._queue = queue
        self._wake = wake

    async def end_grants(self, reach: Reach, ended: Sequence[SessionRecord]) -> GrantsEnded:
        now = self._clock.now()
        revoked = 0
        if reach.family is not None:
            revoked += await self._refresh.revoke_family(reach.family.family_id, now=now)
        if reach.client_id is not None:
            revoked += await self._refresh.revoke_for_user(reach.user_id, now=now, client_id=reach.client_id)
        elif reach.sessions is not None:
            digests = sorted({r.digest for r in reach.sessions})  # ended or not: what rested on them goes
            revoked += await self._refresh.revoke_for_sessions(digests, now=now) if digests else 0
        elif reach.org_id is not None:
            revoked += await self._refresh.revoke_for_org(reach.user_id, reach.org_id, now=now)
        elif reach.keep is not None:
            digests = sorted(r.digest for r in ended)
            revoked += await self._refresh.revoke_for_sessions(digests, now=now) if digests else 0
        elif reach.family is None:
            revoked += await self._refresh.revoke_for_user(reach.user_id, now=now)
        notices: dict[tuple[str, str | None], LogoutNotice] = {}
        if reach.family is not None:
            family = reach.family
            notices[(family.client_id, family.sid)] = LogoutNotice(
                family.client_id, family.user_id, family.sid
            )
        sids = {r.digest: r.public_id for r in ended}
        if sids:
            for client_id, session_digest in await self._refresh.clients_for_sessions(
                reach.user_id, sorted(sids), now=now
            ):
                if reach.client_id is not None and client_id != reach.client_id:
                    continue
                sid = sids[session_digest]
                notices.setdefault((client_id, sid), LogoutNotice(client_id, reach.user_id, sid))
        return GrantsEnded(refresh_tokens=revoked, notices=tuple(notices.values()))

    async def notify(self, notices: Sequence[LogoutNotice], *, cause: Cause) -> int:
        if not notices or self._queue is None:
            return 0
        registered: dict[str, bool] = {}
        for client_id in {n.client_id for n in notices}:
            client = await self._clients.get(client_id)
            registered[client_id] = client is not None and client.backchannel_logout_uri is not None
        now = self._clock.now()
        deliveries = [
            LogoutDelivery(
                id=new_id(),
                client_id=n.client_id,
                user_id=n.user_id,
                sid=n.sid,
                cause=cause.value,
                created_at=now,
            )
            for n in notices
            if registered[n.client_id]
        ]
        if deliveries:
            await self._queue.enqueue(deliveries)
            self._wake()
        return len(deliveries)
