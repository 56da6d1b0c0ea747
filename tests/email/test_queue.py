"""The persistent mail queue: an SMTP outage delays mail and loses none, a restart keeps what was
queued, two workers never send a message twice, and a message is given up after max_attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import csrf, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import SmtpSink
from threshold.adapters.mail.queue import LEASE, backoff
from threshold.adapters.sql import schema as t
from threshold.core.models import OutgoingMail

RESET = "Reset your password"


async def _row(mail: MailApp, to: str) -> dict[str, Any]:
    async with mail.services.engine.connect() as conn:
        rows = (await conn.execute(select(t.mail_queue).where(t.mail_queue.c.to_address == to))).all()
    assert len(rows) == 1, rows
    return dict(rows[0]._mapping)


async def _ask_reset(mail: MailApp, email: str) -> None:
    browser = mail.browser()
    await csrf(browser)
    assert (await browser.post("/api/v1/password/reset/request", json={"email": email})).status_code == 202
    await mail.services.email.drain()


def _queue_direct(mail: MailApp, to: str) -> OutgoingMail:
    return OutgoingMail(
        kind="verify_email", to=to, context={"link": f"{mail.settings.issuer}/verify-email?token=x"}
    )


async def _account(mail: MailApp, prefix: str) -> str:
    email = unique_email(prefix)
    assert (await signup(mail.browser(), email)).status_code == 201
    assert await mail.deliver() == 1  # the verification link
    return email


async def test_an_smtp_outage_delays_mail_with_backoff_and_loses_none(mail: MailApp, smtp: SmtpSink) -> None:
    email = await _account(mail, "outage")
    smtp.stop()
    await _ask_reset(mail, email)
    start = mail.clock.now()

    assert await mail.services.mail_worker.deliver_due() == 0  # no exception escapes
    row = await _reset_row(mail)
    assert row["attempts"] == 1 and row["sent_at"] is None and row["failed_at"] is None
    assert row["next_attempt_at"] == pytest.approx(start + backoff(1)) and backoff(1) == 5
    assert row["last_error"].startswith("SMTPConnectError"), row
    assert row["lease_until"] is None

    # Not due yet: nothing is tried.
    assert await mail.services.mail_worker.deliver_due() == 0
    assert (await _reset_row(mail))["attempts"] == 1

    # Second failure: the wait doubles.
    await mail.let_time_pass(5)
    assert await mail.services.mail_worker.deliver_due() == 0
    row = await _reset_row(mail)
    assert row["attempts"] == 2 and row["next_attempt_at"] == pytest.approx(mail.clock.now() + 10)

    # The server is back: once the wait is over, the message goes out exactly once.
    smtp.start()
    assert await mail.services.mail_worker.deliver_due() == 0
    assert smtp.to(email, RESET) == []
    await mail.let_time_pass(10)
    assert await mail.services.mail_worker.deliver_due() == 1
    assert await mail.services.mail_worker.deliver_due() == 0
    await mail.let_time_pass(3600)
    assert await mail.services.mail_worker.deliver_due() == 0
    assert len(smtp.to(email, RESET)) == 1
    row = await _reset_row(mail)
    assert row["sent_at"] == pytest.approx(mail.clock.now() - 3600) and row["transport"] == "smtp"
    assert row["last_error"] is None and row["attempts"] == 3


async def _reset_row(mail: MailApp) -> dict[str, Any]:
    async with mail.services.engine.connect() as conn:
        rows = (await conn.execute(select(t.mail_queue).where(t.mail_queue.c.kind == "reset_password"))).all()
    assert len(rows) == 1, rows
    return dict(rows[0]._mapping)


async def test_a_refused_recipient_is_given_up_and_does_not_block_the_others(
    mail: MailApp, smtp: SmtpSink
) -> None:
    """A 550 at RCPT TO is permanent (RFC 5321 4.2.1): no point retrying it for hours."""
    refused, fine = unique_email("refused"), unique_email("fine")
    smtp.refuse.add(refused)
    for address in (refused, fine):
        await mail.services.mail_queue.enqueue(_queue_direct(mail, address))
    assert await mail.services.mail_worker.deliver_due() == 1
    assert len(smtp.to(fine)) == 1 and smtp.to(refused) == []
    row = await _row(mail, refused)
    assert row["attempts"] == 1 and row["sent_at"] is None and "550" in row["last_error"]
    assert row["failed_at"] is not None
    smtp.refuse.clear()
    await mail.let_time_pass(backoff(1))
    assert await mail.services.mail_worker.deliver_due() == 0
    assert smtp.to(refused) == [] and len(smtp.to(fine)) == 1


async def test_a_message_is_given_up_after_max_attempts(
    mail_factory: Callable[..., Any], smtp: SmtpSink
) -> None:
    mail: MailApp = await mail_factory(email={"max_attempts": 3}, development=True)
    address = unique_email("doomed")
    smtp.stop()
    await mail.services.mail_queue.enqueue(_queue_direct(mail, address))
    for attempt in range(1, 4):
        assert await mail.services.mail_worker.deliver_due() == 0
        row = await _row(mail, address)
        assert row["attempts"] == attempt
        assert (row["failed_at"] is not None) is (attempt == 3)
        await mail.let_time_pass(backoff(attempt))
    smtp.start()
    await mail.let_time_pass(86400)
    assert await mail.services.mail_worker.deliver_due() == 0
    assert smtp.to(address) == [] and (await _row(mail, address))["attempts"] == 3
    assert "failed" in (await mail.client.get("/dev/outbox")).text


async def test_queued_mail_survives_a_restart(mail_factory: Callable[..., Any], smtp: SmtpSink) -> None:
    first: MailApp = await mail_factory()
    email = await _account(first, "restart")
    smtp.stop()
    await _ask_reset(first, email)  # queued; the server is down
    assert await first.services.mail_worker.deliver_due() == 0
    await first.close()

    smtp.start()
    second: MailApp = await mail_factory(settings=first.settings, clock=first.clock)
    await second.let_time_pass(backoff(1))
    assert await second.services.mail_worker.deliver_due() == 1
    (message,) = smtp.to(email, RESET)
    reset = await second.browser().post(
        "/api/v1/password/reset",
        json={
            "token": message.link("/reset-password").split("token=")[1],
            "new_password": "copper meadow violin 2031",
        },
    )
    assert reset.status_code == 200, reset.text


async def test_a_message_claimed_by_a_crashed_worker_is_sent_after_its_lease(
    mail_factory: Callable[..., Any], smtp: SmtpSink
) -> None:
    first: MailApp = await mail_factory()
    address = unique_email("crash")
    await first.services.mail_queue.enqueue(_queue_direct(first, address))
    (claimed,) = await first.services.mail_queue.claim()  # the process dies before sending
    assert claimed.to_address == address
    await first.close()

    second: MailApp = await mail_factory(settings=first.settings, clock=first.clock)
    assert await second.services.mail_worker.deliver_due() == 0  # still leased
    await second.let_time_pass(LEASE + 1)
    assert await second.services.mail_worker.deliver_due() == 1
    assert len(smtp.to(address)) == 1


async def test_two_workers_send_each_message_exactly_once(
    mail_factory: Callable[..., Any], smtp: SmtpSink
) -> None:
    first: MailApp = await mail_factory()
    second: MailApp = await mail_factory(settings=first.settings, clock=first.clock)
    addresses = [unique_email(f"many{i}") for i in range(30)]
    for address in addresses:
        await first.services.mail_queue.enqueue(_queue_direct(first, address))
    sent = 0
    for _ in range(10):
        counts = await asyncio.gather(
            first.services.mail_worker.deliver_due(), second.services.mail_worker.deliver_due()
        )
        sent += sum(counts)
        if sum(counts) == 0:
            break
    assert sent == len(addresses)
    for address in addresses:
        assert len(smtp.to(address)) == 1, address
    assert len(smtp.received) == len(addresses)


async def test_an_idle_poll_finds_due_exactly_what_a_claim_would(mail: MailApp) -> None:
    # An idle poll is one read (lease._any_due) before any transaction, on the fast runner (the asyncpg
    # pool on PostgreSQL, sqlite3 threads on SQLite): it must find a row due whenever the claim's own
    # condition would, through either connection.
    from threshold.adapters.sql import lease
    from threshold.adapters.sql.db import EngineStatements, Statements, UnitAwareStatements

    services = mail.services
    ways: list[Statements] = [EngineStatements(services.engine)]
    assert services.runner is not None
    ways.append(UnitAwareStatements(services.engine, services.runner))

    async def due_by_each() -> list[bool]:
        probe = lease._any_due(t.mail_queue, "sent_at")
        found = [await way.first(probe, {"now": mail.clock.now()}) for way in ways]
        return [bool(row and row["due"]) for row in found]

    await services.mail_worker.deliver_due()  # what earlier tests left
    assert await due_by_each() == [False] * len(ways)
    await services.mail_queue.enqueue(_queue_direct(mail, unique_email("probe")))
    assert await due_by_each() == [True] * len(ways)
    assert len(await services.mail_queue.claim()) == 1
    assert await due_by_each() == [False] * len(ways)  # leased
    assert await services.mail_queue.claim() == []
    await mail.let_time_pass(LEASE + 1)
    assert await due_by_each() == [True] * len(ways)  # the lease ran out
    assert await services.mail_worker.deliver_due() == 1
    assert await due_by_each() == [False] * len(ways)  # sent
