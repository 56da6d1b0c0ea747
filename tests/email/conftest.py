"""Fixtures of the email suite: a real SMTP server on loopback, and the app in-process on a fake clock
whose mail goes to that server.

No background worker runs in-process: `MailApp.deliver()` waits for the background work of the
request (reset and sign-in mail are prepared after the answer) and runs the delivery worker once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.api.helpers import USER_AGENT, FakeClock
from tests.conftest import ISSUER, _truncate_pg
from tests.email.helpers import Received, SmtpSink
from tests.mfa.helpers import let_time_pass
from tests.oidc.helpers import OP
from threshold.services import Services, build_services
from threshold.settings import Settings


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """aiosmtpd on 127.0.0.1 and a free port, collecting what it receives (parsed, policy.default)."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@dataclass
class MailApp:
    """One process of the service: settings, services on a fake clock, the ASGI app, its browsers."""

    settings: Settings
    services: Services
    clock: FakeClock
    smtp: SmtpSink
    app: Any
    client: httpx.AsyncClient
    """The first browser (also carries `.services`, for helpers of other suites)."""
    browsers: list[httpx.AsyncClient] = field(default_factory=list)
    closed: bool = False

    def browser(self, ip: str = "203.0.113.7", user_agent: str = USER_AGENT) -> httpx.AsyncClient:
        """Another browser: its own cookie jar (no device cookie yet), optionally another address."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=(ip, 41000)),
            base_url=ISSUER,
            headers={"user-agent": user_agent},
        )
        client.app = self.app  # type: ignore[attr-defined]
        client.services = self.services  # type: ignore[attr-defined]
        self.browsers.append(client)
        return client

    async def deliver(self) -> int:
        """Finish the background work of past requests, then send what is due; returns how many."""
        await self.services.email.drain()
        return await self.services.mail_worker.deliver_due()

    async def inbox(self, address: str, subject: str = "") -> list[Received]:
        """Deliver, then the messages the SMTP server received for `address` (subject containing)."""
        await self.deliver()
        return self.smtp.to(address, subject)

    async def last(self, address: str, subject: str = "") -> Received:
        found = await self.inbox(address, subject)
        assert found, f"no mail to {address} with {subject!r}: {[m.subject for m in self.smtp.received]}"
        return found[-1]

    async def let_time_pass(self, seconds: float) -> None:
        await let_time_pass(self.client, self.clock, seconds)

    async def oidc(self) -> OP:
        """The OIDC suite's view of this app (a relying party's back channel), keys ensured."""
        await self.services.provider.keys.ensure_keys()
        return OP(
            browser=self.client,
            rp=self.browser("198.51.100.20"),
            services=self.services,
            clock=self.clock,
            new_client=lambda ip: self.browser(ip),
        )

    async def close(self) -> None:
        """Stop this process: its clients, then its services (pending background work is awaited)."""
        if self.closed:
            return
        self.closed = True
        for client in (self.client, *self.browsers):
            await client.aclose()
        await self.services.close()


@pytest.fixture
async def mail_factory(
    backend: str, make_settings: Callable[..., Settings], smtp: SmtpSink
) -> AsyncIterator[Callable[..., Any]]:
    """make(settings=None, clock=None, **overrides) -> a MailApp sending to `smtp`.

    Passing the `settings` of an earlier MailApp builds another process on the same database (a
    restart, or a second worker); overrides go to Settings (smtp_url defaults to the test server).
    """
    from threshold.web.app import create_app

    built: list[MailApp] = []

    async def make(
        settings: Settings | None = None, clock: FakeClock | None = None, **overrides: Any
    ) -> MailApp:
        if settings is None:
            settings = make_settings(**{"smtp_url": smtp.url, **overrides})
        clock = clock or FakeClock()
        services = build_services(settings, clock=clock)
        if backend != "sqlite" and not built:
            await _truncate_pg(services)
        app = create_app(settings, services=services)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
            base_url=ISSUER,
            headers={"user-agent": USER_AGENT},
        )
        client.app = app  # type: ignore[attr-defined]
        client.services = services  # type: ignore[attr-defined]
        made = MailApp(settings=settings, services=services, clock=clock, smtp=smtp, app=app, client=client)
        built.append(made)
        return made

    yield make
    for made in built:
        await made.close()


@pytest.fixture
async def mail(mail_factory: Callable[..., Any]) -> MailApp:
    """The app with default settings, mail to the test SMTP server."""
    made: MailApp = await mail_factory()
    return made
