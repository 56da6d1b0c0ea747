"""What a mailbox receives: multipart text + HTML, from the configured sender, branded with the product
name, every link under THRESHOLD_ISSUER."""

from __future__ import annotations

import html
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any

from tests.conftest import ISSUER, csrf, signup, unique_email
from tests.email.conftest import MailApp
from tests.email.helpers import Received


async def _three_kinds_of_mail(mail: MailApp, email: str) -> list[Received]:
    """A verification link (sign-up), a reset link and a sign-in link + code, in that order."""
    assert (await signup(mail.client, email)).status_code == 201
    other = mail.browser()
    await csrf(other)
    assert (await other.post("/api/v1/password/reset/request", json={"email": email})).status_code == 202
    await mail.deliver()  # (each is prepared in the background: keep their order)
    assert (await other.post("/api/v1/login/email", json={"email": email})).status_code == 202
    received = await mail.inbox(email)
    assert len(received) == 3, [m.subject for m in received]
    return received


def _assert_well_formed(message: Received, *, email: str, sender: str, product: str) -> None:
    raw = message.message
    assert raw.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in raw.iter_parts()] == ["text/plain", "text/html"]
    (author,) = raw["From"].addresses
    assert (author.display_name, author.addr_spec) == parseaddr(sender)
    assert message.mail_from == author.addr_spec  # the envelope sender is the From address
    assert raw["To"] == email and message.rcpt_tos == (email,)
    assert raw["Message-ID"] and raw["Date"]
    assert raw["Auto-Submitted"] == "auto-generated"
    assert message.subject.endswith(f" · {product}"), message.subject
    assert product in message.text and product in html.unescape(message.html)
    links = message.links() + message.html_links()
    assert links, message.text
    for link in links:
        assert link.startswith(ISSUER + "/"), link


async def test_every_message_is_multipart_from_the_sender_with_issuer_links(mail: MailApp) -> None:
    email = unique_email("shape")
    verify, reset, login = await _three_kinds_of_mail(mail, email)
    assert mail.settings.sender == "Threshold <no-reply@auth.threshold.test>"
    for message in (verify, reset, login):
        _assert_well_formed(message, email=email, sender=mail.settings.sender, product="Threshold")
    assert verify.link("/verify-email").startswith(f"{ISSUER}/verify-email?token=")
    assert reset.link("/reset-password").startswith(f"{ISSUER}/reset-password?token=")
    assert "20 minutes" in reset.text
    assert login.link("/login/email/verify").startswith(f"{ISSUER}/login/email/verify?token=")
    assert len(login.code()) == 6
    assert "203.0.113.7" in login.text  # where the sign-in was asked from
    # Three different secrets, none of them repeated in another message.
    secrets_sent = [
        verify.link("/verify-email"),
        reset.link("/reset-password"),
        login.link("/login/email/verify"),
    ]
    assert len(set(secrets_sent)) == 3


async def test_the_theme_brands_the_mail_and_mail_from_sets_the_sender(
    mail_factory: Callable[..., Any],
) -> None:
    themed: MailApp = await mail_factory(theme={"product_name": "Acme & Co Login"})
    email = unique_email("theme")
    for message in await _three_kinds_of_mail(themed, email):
        _assert_well_formed(
            message,
            email=email,
            sender="Acme & Co Login <no-reply@auth.threshold.test>",
            product="Acme & Co Login",
        )
        assert "Threshold" not in message.text and "Threshold" not in message.html
        assert "Acme &amp; Co Login" in message.html  # escaped in HTML, not injected

    sender: MailApp = await mail_factory(mail_from="Acme Security <security@acme.example>")
    email = unique_email("from")
    assert (await signup(sender.client, email)).status_code == 201
    (message,) = await sender.inbox(email)
    assert message.message["From"] == "Acme Security <security@acme.example>"
    assert message.mail_from == "security@acme.example"
