"""Delivery of logout tokens (OpenID Connect Back-Channel Logout 1.0) from a durable queue.

oidc.backchannel queues one row per application and ended session; a worker in every process claims
due rows with a lease (of two workers, one gets each row), signs a fresh logout token for each (its
`jti` is the row's id, so a retry is recognisably the same notice), and posts it to the application's
back-channel logout URI, many at once. A 2xx answer delivers it; anything else (a refusal, an error, a
timeout, an application that is down) schedules a retry with exponential backoff, until the row is
older than `give_up_after`. A crash loses nothing: an undelivered row stays until it is delivered or
given up, and the process that queued a row wakes its own worker at once (the others poll).

Section 2.5: the request is a POST of `logout_token` as a form, and redirects are not followed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.sql import lease
from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import Statements, translate_errors, writing
from threshold.core.clock import Clock
from threshold.oidc.models import ACCOUNT_PURGED, LogoutDelivery
from threshold.oidc.ports import ClientRepo
from threshold.oidc.tokens import TokenMinter
from threshold.settings import BackchannelSettings

log = logging.getLogger(__name__)
CLAIM_BATCH = 200


def _delivery(row: Row[Any]) -> LogoutDelivery:
    return LogoutDelivery(
        id=row.id,
        client_id=row.client_id,
        user_id=row.user_id,
        sid=row.sid,
        cause=row.cause,
        created_at=row.created_at,
        attempts=int(row.attempts),
        kind=row.kind,
    )


class SqlLogoutQueue:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        settings: BackchannelSettings,
        *,
        statements: Statements | None = None,
    ) -> None:
        """`statements`: where the polls' one read runs (PostgreSQL: the asyncpg pool's, lease.claim)."""
        self._engine = engine
        self._statements = statements
        self._clock = clock
        self._settings = settings
        self.wakeup = asyncio.Event()

    def wake(self) -> None:
        self.wakeup.set()

    async def enqueue(self, deliveries: Sequence[LogoutDelivery]) -> None:
        if not deliveries:
            return
        rows = [
            {
                "id": d.id,
                "client_id": d.client_id,
                "user_id": d.user_id,
                "sid": d.sid,
                "cause": d.cause,
                "kind": d.kind,
                "created_at": d.created_at,
                "next_attempt_at": d.created_at,
                "attempts": 0,
            }
            for d in deliveries
        ]
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(insert(t.logout_deliveries), rows)

    async def claim(self, *, limit: int = CLAIM_BATCH) -> list[LogoutDelivery]:
        """Lease due deliveries; a row leased by another worker is skipped until its lease ends."""
        rows = await lease.claim(
            self._engine,
            t.logout_deliveries,
            done="delivered_at",
            now=self._clock.now(),
            limit=limit,
            statements=self._statements,
        )
        return [_delivery(row) for row in rows]

    async def mark_delivered(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        c = t.logout_deliveries.c
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.logout_deliveries)
                    .where(c.id.in_(list(ids)))
                    .values(delivered_at=self._clock.now(), lease_until=None, last_error=None)
                )

    async def mark_failed(self, delivery: LogoutDelivery, error: str) -> None:
        """A failed attempt: retried after a backoff, or given up once the row is too old."""
        now = self._clock.now()
        values: dict[str, Any] = {
            "lease_until": None,
            "last_error": error[:300],
            "next_attempt_at": now + self.backoff(delivery.attempts),
        }
        if now - delivery.created_at >= self._settings.give_up_after:
            values["failed_at"] = now
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.logout_deliveries)
                    .where(t.logout_deliveries.c.id == delivery.id)
                    .values(**values)
                )

    def backoff(self, attempts: int) -> float:
        return lease.backoff(attempts, base=self._settings.retry_base, cap=self._settings.max_backoff)

    async def backlog(self) -> lease.Backlog:
        """Logout tokens not yet delivered nor given up (the metrics)."""
        return await lease.backlog(self._engine, t.logout_deliveries, done="delivered_at")

    async def purge_expired(self, *, now: float, batch: int = 500) -> int:
        """Delivered or given-up rows, a day after they were queued."""
        c = t.logout_deliveries.c
        done = (c.delivered_at.is_not(None) | c.failed_at.is_not(None)) & (c.created_at <= now - 86400)
        old = select(c.id).where(done).limit(batch)
        with translate_errors():
            async with writing(self._engine) as conn:
                result = await conn.execute(t.logout_deliveries.delete().where(c.id.in_(old)))
        return int(result.rowcount)


class LogoutWorker:
    def __init__(
        self,
        queue: SqlLogoutQueue,
        *,
        clients: ClientRepo,
        minter: TokenMinter,
        settings: BackchannelSettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.queue = queue
        self._clients = clients
        self._minter = minter
        self._settings = settings
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            limit = self._settings.concurrency
            self._http = httpx.AsyncClient(
                timeout=self._settings.timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                transport=self._transport,
                headers={"User-Agent": "Threshold back-channel logout"},
            )
        return self._http

    async def deliver_due(self) -> int:
        """Deliver what is due now; how many deliveries were attempted."""
        claimed = await self.queue.claim()
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self._settings.concurrency)

        async def one(delivery: LogoutDelivery) -> tuple[LogoutDelivery, str | None]:
            async with gate:
                return delivery, await self._post(delivery)

        results = await asyncio.gather(*(one(d) for d in claimed))
        await self.queue.mark_delivered([d.id for d, error in results if error is None])
        for delivery, error in results:
            if error is not None:
                await self.queue.mark_failed(delivery, error)
                log.warning(
                    "logout token %s for client %s not delivered (attempt %d): %s",
                    delivery.id,
                    delivery.client_id,
                    delivery.attempts,
                    error,
                )
        return len(claimed)

    async def _post(self, delivery: LogoutDelivery) -> str | None:
        """Post one logout token (or deletion event); None when the application took it, else why not."""
        if delivery.kind == ACCOUNT_PURGED:
            return await self._post_deletion_event(delivery)
        client = await self._clients.get(delivery.client_id)
        if client is None or client.backchannel_logout_uri is None:
            return None  # the client is gone or no longer listens: nothing left to tell
        token = await self._minter.logout_token(
            alg=client.id_token_alg,
            subject=delivery.user_id,
            client_id=client.client_id,
            sid=delivery.sid,
            jti=delivery.id,
        )
        try:
            response = await self._client().post(
                client.backchannel_logout_uri,
                data={"logout_token": token},
                headers={"Cache-Control": "no-store"},
            )
        except (httpx.HTTPError, OSError) as exc:
            return f"{type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _post_deletion_event(self, delivery: LogoutDelivery) -> str | None:
        """RFC 8935: the SET as the body, `application/secevent+jwt`; 202 (any 2xx) is taken."""
        client = await self._clients.get(delivery.client_id)
        if client is None or client.deletion_event_uri is None:
            return None
        event = await self._minter.account_purged_event(
            alg=client.id_token_alg, subject=delivery.user_id, client_id=client.client_id, jti=delivery.id
        )
        try:
            response = await self._client().post(
                client.deletion_event_uri,
                content=event.encode("ascii"),
                headers={"Content-Type": "application/secevent+jwt", "Accept": "application/json"},
            )
        except (httpx.HTTPError, OSError) as exc:
            return f"{type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def run(self) -> None:
        await lease.run_worker(
            self.deliver_due, self.queue.wakeup, poll=self._settings.poll_interval, log=log
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
