"""The persistent mail queue (a SQL table shared by every process) and its delivery worker.

Enqueueing stores the rendered message; a worker in each process claims due messages with a lease,
sends them, and on failure schedules a retry with exponential backoff. A crash or an SMTP outage
delays mail but loses none: an unsent row stays until it is delivered or given up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from threshold.adapters.mail.render import render_mail
from threshold.adapters.sql import lease
from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import Statements, reading, translate_errors, writing
from threshold.adapters.sql.lease import LEASE as LEASE  # re-exported: how long a claimed message is held
from threshold.core.clock import Clock
from threshold.core.i18n import REQUEST_LANGUAGE
from threshold.core.models import OutgoingMail
from threshold.core.secrets import new_id
from threshold.i18n import Catalogues
from threshold.settings import ThemeSettings

log = logging.getLogger(__name__)
MAX_BACKOFF = 3600.0


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: str
    kind: str
    to_address: str
    subject: str
    text_body: str
    html_body: str
    created_at: float
    attempts: int
    sent_at: float | None
    failed_at: float | None
    last_error: str | None
    transport: str | None


def _queued(row: Row[Any]) -> QueuedMail:
    return QueuedMail(
        id=row.id,
        kind=row.kind,
        to_address=row.to_address,
        subject=row.subject,
        text_body=row.text_body,
        html_body=row.html_body,
        created_at=row.created_at,
        attempts=int(row.attempts),
        sent_at=row.sent_at,
        failed_at=row.failed_at,
        last_error=row.last_error,
        transport=row.transport,
    )


def backoff(attempts: int) -> float:
    """5 s, 10 s, 20 s ... capped at an hour."""
    return lease.backoff(attempts, base=5.0, cap=MAX_BACKOFF)


class SqlMailQueue:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        theme: ThemeSettings,
        catalogues: Catalogues,
        *,
        keep_sent_bodies: bool = False,
        statements: Statements | None = None,
    ) -> None:
        """`statements`: where the polls' one read runs (PostgreSQL: the asyncpg pool's, lease.claim)."""
        self._engine = engine
        self._statements = statements
        self._clock = clock
        self._theme = theme
        self._catalogues = catalogues
        self._keep_sent_bodies = keep_sent_bodies
        self.wakeup = asyncio.Event()

    def _scrubbed(self) -> dict[str, str]:
        """Bodies carry live links and codes: once a message is done with, they are not kept
        (except in development mode, where /dev/outbox shows them)."""
        return {} if self._keep_sent_bodies else {"text_body": "", "html_body": ""}

    async def enqueue(self, mail: OutgoingMail) -> None:
        # written in the language of the request that queues it (the default outside a request)
        rendered = render_mail(mail, self._theme, self._catalogues.get(REQUEST_LANGUAGE.get()))
        now = self._clock.now()
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    t.mail_queue.insert().values(
                        id=new_id(),
                        kind=mail.kind,
                        to_address=mail.to,
                        subject=rendered.subject[:300],
                        text_body=rendered.text,
                        html_body=rendered.html,
                        created_at=now,
                        next_attempt_at=now,
                        attempts=0,
                    )
                )
        self.wakeup.set()

    async def claim(self, *, limit: int = 20) -> list[QueuedMail]:
        """Lease due messages; a message leased by another worker is skipped until its lease ends."""
        rows = await lease.claim(
            self._engine,
            t.mail_queue,
            done="sent_at",
            now=self._clock.now(),
            limit=limit,
            statements=self._statements,
        )
        return [_queued(row) for row in rows]

    async def mark_sent(self, mail_id: str, *, transport: str) -> None:
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(
                    update(t.mail_queue)
                    .where(t.mail_queue.c.id == mail_id)
                    .values(
                        sent_at=self._clock.now(),
                        lease_until=None,
                        transport=transport,
                        last_error=None,
                        **self._scrubbed(),
                    )
                )

    async def mark_failed_attempt(self, mail: QueuedMail, error: str, *, max_attempts: int) -> None:
        now = self._clock.now()
        values: dict[str, Any] = {
            "lease_until": None,
            "last_error": error[:300],
            "next_attempt_at": now + backoff(mail.attempts),
        }
        if mail.attempts >= max_attempts:
            values["failed_at"] = now
            values.update(self._scrubbed())
        with translate_errors():
            async with writing(self._engine) as conn:
                await conn.execute(update(t.mail_queue).where(t.mail_queue.c.id == mail.id).values(**values))

    async def backlog(self) -> lease.Backlog:
        """Messages not yet sent nor given up (the metrics)."""
        return await lease.backlog(self._engine, t.mail_queue, done="sent_at")

    async def recent(self, *, limit: int = 50) -> Sequence[QueuedMail]:
        """Newest first: the development outbox page."""
        with translate_errors():
            async with reading(self._engine) as conn:
                rows = (
                    await conn.execute(
                        select(t.mail_queue).order_by(t.mail_queue.c.created_at.desc()).limit(limit)
                    )
                ).all()
        return [_queued(row) for row in rows]

    async def get(self, mail_id: str) -> QueuedMail | None:
        with translate_errors():
            async with reading(self._engine) as conn:
                row = (await conn.execute(select(t.mail_queue).where(t.mail_queue.c.id == mail_id))).first()
        return _queued(row) if row else None


class Transport(Protocol):
    name: str

    async def send(self, mail: QueuedMail, *, sender: str) -> None: ...


class OutboxTransport:
    """The embedded default: nothing leaves the machine; messages stay readable in the queue table
    (and at /dev/outbox in development mode)."""

    name = "outbox"

    async def send(self, mail: QueuedMail, *, sender: str) -> None:
        log.info("mail to %s kept in the local outbox: %s", mail.to_address, mail.subject)


class SmtpTransport:
    """SMTP through aiosmtplib: smtp://user:pass@host:port[?starttls=true] or smtps:// (implicit TLS)."""

    name = "smtp"

    def __init__(self, url: str, *, timeout: float = 15.0) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.hostname = parts.hostname or "localhost"
        self.use_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.use_tls else 25)
        self.start_tls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.verify = query.get("verify", ["true"])[0].lower() not in ("0", "false", "no")

    async def send(self, mail: QueuedMail, *, sender: str) -> None:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].rstrip(">") or "threshold")
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(mail.text_body)
        message.add_alternative(mail.html_body, subtype="html")
        context = ssl.create_default_context() if self.verify else ssl._create_unverified_context()  # noqa: S323
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls if not self.use_tls else False,
            timeout=self.timeout,
            tls_context=context,
        )


def permanent_failure(error: Exception) -> bool:
    """SMTP 5xx replies are permanent (RFC 5321 section 4.2.1); 4xx and network errors are not."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= r.code < 600 for r in error.recipients)
    if isinstance(error, aiosmtplib.SMTPResponseException) and not isinstance(
        error, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPServerDisconnected
    ):
        return 500 <= error.code < 600
    return False


class MailWorker:
    def __init__(self, queue: SqlMailQueue, transport: Transport, *, sender: str, max_attempts: int) -> None:
        self.queue = queue
        self.transport = transport
        self.sender = sender
        self.max_attempts = max_attempts

    async def deliver_due(self) -> int:
        """Send what is due now; returns how many were sent."""
        sent = 0
        for mail in await self.queue.claim():
            try:
                await self.transport.send(mail, sender=self.sender)
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
                # A 5xx answer (a refused recipient, say) will not change on retry: give it up now.
                limit = mail.attempts if permanent_failure(exc) else self.max_attempts
                await self.queue.mark_failed_attempt(mail, f"{type(exc).__name__}: {exc}", max_attempts=limit)
                # Logged once recorded: what the log says has happened is in the queue (and survives a crash).
                log.warning(
                    "mail %s to %s not delivered (attempt %d): %s",
                    mail.id,
                    mail.to_address,
                    mail.attempts,
                    exc,
                )
                continue
            await self.queue.mark_sent(mail.id, transport=self.transport.name)
            sent += 1
        return sent

    async def run(self, *, poll: float = 2.0) -> None:
        await lease.run_worker(self.deliver_due, self.queue.wakeup, poll=poll, log=log)
