"""The SMTP transport against a server that wants TLS and a login: STARTTLS, implicit TLS (smtps),
credentials from the URL, and certificate checks on by default."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import SmtpSink, self_signed_context
from threshold.adapters.mail.queue import backoff
from threshold.adapters.sql import schema as t
from threshold.core.models import OutgoingMail

LOGIN, PASSWORD = "mailer@corp", "s3cret: pass"
QUOTED = "mailer%40corp:s3cret%3A%20pass"


@pytest.fixture
def secure_sinks(tmp_path: Path) -> Iterator[Callable[..., SmtpSink]]:
    started: list[SmtpSink] = []

    def start(**options: Any) -> SmtpSink:
        sink = SmtpSink(credentials=(LOGIN, PASSWORD), **options).start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


async def _send_one(mail: MailApp) -> tuple[str, int]:
    address = unique_email("tls")
    await mail.services.mail_queue.enqueue(
        OutgoingMail(
            kind="verify_email", to=address, context={"link": f"{mail.settings.issuer}/verify-email"}
        )
    )
    return address, await mail.services.mail_worker.deliver_due()


async def _last_error(mail: MailApp, address: str) -> str:
    async with mail.services.engine.connect() as conn:
        statement = select(t.mail_queue.c.last_error).where(t.mail_queue.c.to_address == address)
        value = (await conn.execute(statement)).scalar_one()
    return str(value)


async def test_starttls_and_login(
    mail_factory: Callable[..., Any], secure_sinks: Callable[..., SmtpSink], tmp_path: Path
) -> None:
    sink = secure_sinks(starttls=self_signed_context(tmp_path))
    mail: MailApp = await mail_factory(
        smtp_url=f"smtp://{QUOTED}@127.0.0.1:{sink.port}?starttls=true&verify=false"
    )
    address, sent = await _send_one(mail)
    assert sent == 1
    (message,) = sink.to(address)
    assert message.tls and message.login == LOGIN


async def test_implicit_tls_and_login(
    mail_factory: Callable[..., Any], secure_sinks: Callable[..., SmtpSink], tmp_path: Path
) -> None:
    sink = secure_sinks(implicit_tls=self_signed_context(tmp_path))
    mail: MailApp = await mail_factory(smtp_url=f"smtps://{QUOTED}@127.0.0.1:{sink.port}?verify=false")
    address, sent = await _send_one(mail)
    assert sent == 1
    (message,) = sink.to(address)
    assert message.tls and message.login == LOGIN


async def test_an_untrusted_certificate_or_a_wrong_password_delays_the_mail(
    mail_factory: Callable[..., Any], secure_sinks: Callable[..., SmtpSink], tmp_path: Path
) -> None:
    sink = secure_sinks(starttls=self_signed_context(tmp_path))
    checked: MailApp = await mail_factory(smtp_url=f"smtp://{QUOTED}@127.0.0.1:{sink.port}?starttls=true")
    address, sent = await _send_one(checked)  # the certificate is verified unless verify=false
    assert sent == 0 and sink.to(address) == []
    assert "CERTIFICATE_VERIFY_FAILED" in await _last_error(checked, address)

    wrong: MailApp = await mail_factory(
        smtp_url=f"smtp://{LOGIN.replace('@', '%40')}:nope@127.0.0.1:{sink.port}?starttls=true&verify=false"
    )
    address, sent = await _send_one(wrong)
    assert sent == 0 and sink.to(address) == []
    assert (await _last_error(wrong, address)).startswith("SMTPAuthenticationError")
    await wrong.let_time_pass(backoff(1))
    assert await wrong.services.mail_worker.deliver_due() == 0  # tried again, still refused
