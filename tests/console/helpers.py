"""Helpers of the console suite: operators and other people signed in, forms posted as a browser does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import httpx

from tests.api.helpers import FakeClock, browser
from tests.conftest import ISSUER
from tests.mfa.helpers import Account, enrol_totp, new_account, pending_login, send_code, totp_code
from threshold.core.accounts import OPERATOR
from threshold.core.console import AuditQuery
from threshold.core.models import AuditEvent, AuditKind, User
from threshold.services import Services

NO_ACCESS = "You don&#39;t have access to this page."
HTML = {"accept": "text/html"}


@dataclass
class ConsoleUser:
    """A person with a browser of their own on the app (and, for an operator, console access)."""

    app: httpx.AsyncClient
    browser: httpx.AsyncClient
    account: Account
    clock: FakeClock

    @property
    def user_id(self) -> str:
        return self.account.user_id

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.browser.get(path, params=params or None, headers=HTML)

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, token: bool = True
    ) -> httpx.Response:
        """A form posted from a console page (the CSRF token of the browser's pages, same origin)."""
        fields = dict(data or {})
        if token:
            fields["csrf_token"] = await self.csrf_token()
        return await self.browser.post(path, data=fields, headers={**HTML, "origin": ISSUER})

    async def csrf_token(self) -> str:
        """The browser's CSRF token (the one its pages' forms carry: the cookie's double)."""
        token: str = (await self.browser.get("/api/v1/csrf")).json()["token"]
        return token

    async def step_up(self) -> None:
        """Prove the authenticator app again (the next time step: a code is good once)."""
        assert self.account.totp_secret
        self.clock.advance(30)
        response = await self.browser.post(
            "/reauthenticate",
            data={
                "csrf_token": await self.csrf_token(),
                "method": "totp",
                "code": totp_code(self.account.totp_secret, self.clock),
                "next": "/admin/",
                "factor": "1",
            },
            headers={**HTML, "origin": ISSUER},
        )
        assert response.status_code == 303, response.text


def services_of(app: httpx.AsyncClient) -> Services:
    """The services behind the app (built by the suite's app factory)."""
    return cast(Services, app.services)  # type: ignore[attr-defined]


async def account_of(app: httpx.AsyncClient, user_id: str) -> User:
    """The account as stored now."""
    user = await services_of(app).users.get(user_id)
    assert user is not None
    return user


async def grant(app: httpx.AsyncClient, user_id: str) -> None:
    services = services_of(app)
    user = await services.users.get(user_id)
    assert user is not None
    assert await services.console.grant(user, by="test", context=OPERATOR)


async def signed_in(app: httpx.AsyncClient, clock: FakeClock, account: Account) -> httpx.AsyncClient:
    """A new browser signed in to `account` with the password and its TOTP code (aal2)."""
    other = browser(app)
    assert account.totp_secret
    await pending_login(other, account.email)
    clock.advance(30)
    response = await send_code(other, "totp", totp_code(account.totp_secret, clock))
    assert response.json()["session"]["aal"] == "aal2", response.text
    return other


async def new_operator(
    app: httpx.AsyncClient, clock: FakeClock, *, second_factor: bool = True
) -> ConsoleUser:
    """An account with an authenticator app, granted console access, signed in again with its password and
    the app (aal2); without `second_factor`, the browser that signed up and then set up the app (aal1)."""
    signup_browser = browser(app)
    account = await new_account(signup_browser, "operator")
    await enrol_totp(account, clock)
    await grant(app, account.user_id)
    session = await signed_in(app, clock, account) if second_factor else signup_browser
    return ConsoleUser(app, session, account, clock)


async def new_person(app: httpx.AsyncClient, clock: FakeClock, prefix: str = "person") -> ConsoleUser:
    """An account that is not an operator, signed in with its password."""
    other = browser(app)
    account = await new_account(other, prefix)
    return ConsoleUser(app, other, account, clock)


async def events_of(
    app: httpx.AsyncClient, user_id: str | None = None, kind: str | None = None
) -> list[AuditEvent]:
    query = AuditQuery(user_id=user_id, kind=AuditKind(kind) if kind else None)
    return list(await services_of(app).console.audit_page(query, limit=1000))


def forms_on(page: str) -> list[str]:
    """The action of every POST form on a page."""
    return re.findall(r'<form method="post" action="([^"]+)"', page)
