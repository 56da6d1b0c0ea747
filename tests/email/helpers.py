"""A real SMTP server for the tests (aiosmtpd on loopback) and what a mail reader does with a message:
parse it, find its links and its code.

The sink runs in aiosmtpd's own thread; a message is stored before the server answers 250 to DATA,
so once a sender returns, what it sent is here.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import html
import ipaddress
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support import free_port

URL = re.compile(r"https?://[^\s<>\"']+")
HREF = re.compile(r"""\bhref="([^"]+)\"""")
CODE = re.compile(r"^Code: (\d{6})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Received:
    """One message as the SMTP server got it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    tls: bool = False
    login: str | None = None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None, "no text/plain part"
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None, "no text/html part"
        return str(part.get_content())

    def links(self) -> list[str]:
        """Every URL of the plain-text part, in order."""
        return URL.findall(self.text)

    def html_links(self) -> list[str]:
        """Every href of the HTML part, unescaped as a mail client would."""
        return [html.unescape(href) for href in HREF.findall(self.html)]

    def link(self, path: str) -> str:
        """The one link to `path` (same in both parts)."""
        found = [url for url in self.links() if urlsplit(url).path == path]
        assert len(found) == 1, (path, self.links())
        assert found[0] in self.html_links(), (found[0], self.html_links())
        return found[0]

    def code(self) -> str:
        """The 6-digit code of a sign-in message (also shown in the HTML part)."""
        match = CODE.search(self.text)
        assert match, self.text
        assert match.group(1) in self.html
        return match.group(1)


def token_of(url: str) -> str:
    values = parse_qs(urlsplit(url).query).get("token")
    assert values and len(values) == 1, url
    return values[0]


@dataclass
class SmtpSink:
    """aiosmtpd on 127.0.0.1 at a fixed port, so it can be stopped (an outage) and started again."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    """Recipients answered with 550 at RCPT TO."""
    starttls: ssl.SSLContext | None = None
    """Offer STARTTLS with this server context, and require it before MAIL FROM."""
    implicit_tls: ssl.SSLContext | None = None
    """Speak TLS from the first byte (smtps://)."""
    credentials: tuple[str, str] | None = None
    """Require AUTH with this login and password."""

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> SmtpSink:
        assert self._controller is None
        options: dict[str, Any] = {}
        if self.starttls is not None:
            options.update(tls_context=self.starttls, require_starttls=True)
        if self.credentials is not None:
            options.update(authenticator=self._authenticate, auth_required=True)
        if self.implicit_tls is not None:
            # aiosmtpd counts only STARTTLS as TLS for AUTH: offer AUTH on the TLS socket without
            # requiring it there (`Received.login` tells whether the client signed in).
            options.update(ssl_context=self.implicit_tls, auth_require_tls=False, auth_required=False)
        controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.credentials == (
            data.login.decode(),
            data.password.decode(),
        ):
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    def _store(self, item: Received) -> None:
        with self._changed:
            self.received.append(item)
            self._changed.notify_all()

    def to(self, address: str, subject: str = "") -> list[Received]:
        """Messages received for `address` (case-insensitive) whose subject contains `subject`."""
        wanted = address.casefold()
        with self._changed:
            return [
                m
                for m in self.received
                if wanted in (r.casefold() for r in m.rcpt_tos) and subject.casefold() in m.subject.casefold()
            ]

    def wait_for(self, address: str, subject: str = "", *, count: int = 1, timeout: float = 15.0) -> Received:
        """Block until `count` matching messages arrived (a real server delivers in the background);
        returns the latest."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.to(address, subject)
                if len(found) >= count:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no mail to {address} with {subject!r} after {timeout}s; "
                        f"received: {[(m.rcpt_tos, m.subject) for m in self.received]}"
                    )
                self._changed.wait(left)

    def where(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._changed:
            return [m for m in self.received if predicate(m)]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.casefold() in self.sink.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.sink._store(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=message,
                tls=server.transport.get_extra_info("ssl_object") is not None,
                login=login,
            )
        )
        return "250 OK: queued"


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context
