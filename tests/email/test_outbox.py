"""The embedded default: without THRESHOLD_SMTP_URL mail stays in a local outbox, readable at
/dev/outbox only in development mode (it holds live links and codes)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from tests.conftest import signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import SmtpSink
from threshold.adapters.mail.queue import OutboxTransport, SmtpTransport


async def test_the_outbox_page_exists_only_in_development_mode(mail_factory: Callable[..., Any]) -> None:
    for overrides in ({}, {"smtp_url": None}):
        mail: MailApp = await mail_factory(**overrides)
        email = unique_email("hidden")
        assert (await signup(mail.client, email)).status_code == 201
        await mail.deliver()
        page = await mail.browser().get("/dev/outbox")
        assert page.status_code == 404 and email not in page.text


async def test_without_smtp_mail_shows_in_the_development_outbox(
    mail_factory: Callable[..., Any], smtp: SmtpSink
) -> None:
    mail: MailApp = await mail_factory(smtp_url=None, development=True)
    assert isinstance(mail.services.mail_worker.transport, OutboxTransport)
    email = unique_email("outbox")
    assert (await signup(mail.client, email)).status_code == 201
    await mail.services.email.drain()

    queued = await mail.browser().get("/dev/outbox")
    assert queued.status_code == 200
    assert email in queued.text and "queued (0 attempts)" in queued.text

    assert await mail.deliver() == 1
    page = html.unescape((await mail.browser().get("/dev/outbox")).text)
    assert "Confirm your email address · Threshold" in page and "· sent" in page
    assert f"{mail.settings.issuer}/verify-email?token=" in page  # the live link, to click in development
    (stored,) = await mail.services.mail_queue.recent()
    assert stored.transport == "outbox" and stored.sent_at is not None
    assert smtp.received == []  # nothing left the machine


async def test_an_smtp_url_selects_the_smtp_transport(mail: MailApp, smtp: SmtpSink) -> None:
    transport = mail.services.mail_worker.transport
    assert isinstance(transport, SmtpTransport)
    assert (transport.hostname, transport.port, transport.use_tls, transport.start_tls) == (
        "127.0.0.1",
        smtp.port,
        False,
        False,
    )
    parsed = SmtpTransport("smtps://user%40corp:p%3Ass@mail.example:2465?verify=false")
    assert (
        parsed.hostname,
        parsed.port,
        parsed.use_tls,
        parsed.username,
        parsed.password,
        parsed.verify,
    ) == (
        "mail.example",
        2465,
        True,
        "user@corp",
        "p:ss",
        False,
    )
    starttls = SmtpTransport("smtp://mail.example?starttls=true")
    assert (starttls.port, starttls.start_tls, starttls.use_tls) == (25, True, False)
