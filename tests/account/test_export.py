"""GET /api/v1/account/export: everything Threshold holds about the person, and none of its secrets;
under a recent proof with the account's strongest factor, a daily budget, and an audit event."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from tests.api.helpers import SESSION_COOKIE, FakeClock, assert_problem, browser
from tests.conftest import STRONG_PASSWORD, login
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.helpers import (
    Account,
    audit_kinds,
    enrol_totp,
    let_time_pass,
    new_account,
    register_passkey,
    send_code,
    totp_code,
)
from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import reading
from threshold.core.models import RequestContext
from threshold.services import Services

EXPORT = "/api/v1/account/export"
WINDOW = 300

SECRET_COLUMNS = {
    ("password_credentials", "hash"),
    ("totp_credentials", "secret"),
    ("recovery_codes", "digest"),
    ("passkeys", "credential_id"),
    ("passkeys", "public_key"),
    ("known_devices", "device"),
    ("sessions", "digest"),
    ("refresh_tokens", "digest"),
    ("authorization_codes", "digest"),
    ("one_time_tokens", "digest"),
    ("recovery_requests", "id"),
}
"""Columns of a person's rows that hold a secret or what verifies one (the export names none of them)."""
SECRET_NAMES = ("hash", "secret", "digest", "public_key", "credential_id", "device")


def test_every_secret_column_of_a_persons_rows_is_listed() -> None:
    """A new table or column of a person's secrets must join SECRET_COLUMNS, which the test below
    checks the export against."""
    found = {
        (table.name, column.name)
        for table in t.metadata.tables.values()
        if "user_id" in table.c
        for column in table.c
        if column.name in SECRET_NAMES
    }
    assert found <= SECRET_COLUMNS, found - SECRET_COLUMNS


async def _stored_secrets(services: Services, user_id: str) -> list[str]:
    values: list[str] = []
    async with reading(services.engine) as conn:
        for table_name, column_name in sorted(SECRET_COLUMNS):
            table = t.metadata.tables[table_name]
            if table_name == "recovery_requests":
                continue  # its id is shown to the person on purpose (to cancel it)
            rows = await conn.execute(select(table.c[column_name]).where(table.c.user_id == user_id))
            values += [str(value) for (value,) in rows if value]
    values += [record.digest for record in await services.sessions.list_sessions(user_id)]
    return values


async def _rich_account(app: httpx.AsyncClient, clock: FakeClock) -> tuple[Account, list[str]]:
    """An account with a password, an authenticator app, recovery codes, a passkey, two sessions and an
    organization; and the secrets its browsers hold (cookies, the TOTP seed, the recovery codes)."""
    account = await new_account(app)
    await enrol_totp(account, clock)
    await register_passkey(account, SoftAuthenticator())
    services: Services = app.services  # type: ignore[attr-defined]
    org = await services.orgs.create(name="Acme Export", context=RequestContext(ip="cli", user_agent="t"))
    await services.orgs.add_member(
        org, email=account.email, role="member", context=RequestContext(ip="cli", user_agent="t")
    )
    held = [str(account.totp_secret), *account.recovery_codes, STRONG_PASSWORD]
    held += [value for name, value in app.cookies.items() if value]
    return account, held


async def test_the_export_holds_the_account_and_none_of_its_secrets(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account, held = await _rich_account(app, clock)
    async with browser(app) as laptop:
        assert (await login(laptop, account.email)).json()["status"] == "mfa_required"
        assert account.totp_secret is not None
        response = await send_code(laptop, "totp", totp_code(account.totp_secret, clock, steps=1))
        assert response.status_code == 200, response.text
        held += [value for _, value in laptop.cookies.items() if value]

    response = await app.get(EXPORT)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="threshold-account-data.json"'
    assert response.headers["cache-control"] == "no-store"
    document: dict[str, Any] = response.json()

    assert document["format"] == "threshold.account-export/1"
    assert document["profile"]["id"] == account.user_id
    assert document["profile"]["email"] == account.email
    methods = document["sign_in_methods"]
    assert methods["password"]["set"] is True
    assert methods["authenticator_app"]["confirmed"] is True
    assert methods["recovery_codes_left"] == len(account.recovery_codes)
    assert [p["name"] for p in methods["passkeys"]] == ["Laptop"]
    sessions = document["sessions"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions].count(True) == 1
    assert [o["name"] for o in document["organizations"]] == ["Acme Export"]
    assert document["recognised_browsers_and_networks"]["networks"]
    kinds = [e["kind"] for e in document["audit_events"]]
    assert {"signup", "totp_enabled", "passkey_added", "mfa_succeeded", "org_member_added"} <= set(kinds)

    text = response.text
    services: Services = app.services  # type: ignore[attr-defined]
    secrets = await _stored_secrets(services, account.user_id) + held
    assert len(secrets) >= 10
    leaked = [secret for secret in secrets if secret in text or json.dumps(secret)[1:-1] in text]
    assert not leaked


async def test_the_export_needs_a_recent_proof_with_the_strongest_factor(
    app_factory: Callable[..., Any], clock: FakeClock
) -> None:
    app = await app_factory(mfa={"reauthentication_window": WINDOW})
    plain = await new_account(app, "plain")
    async with browser(app) as other:
        strong = await new_account(other, "strong")
        await enrol_totp(strong, clock)
        await let_time_pass(app, clock, WINDOW + 1)

        body = assert_problem(await app.get(EXPORT), 401, "reauthentication_required")
        assert "password" in body["methods"]
        proof = await app.post(
            "/api/v1/reauthenticate", json={"method": "password", "password": STRONG_PASSWORD}
        )
        assert proof.status_code == 200, proof.text
        assert (await app.get(EXPORT)).json()["profile"]["id"] == plain.user_id

        body = assert_problem(await other.get(EXPORT), 401, "reauthentication_required")
        assert "password" not in body["methods"]  # the account has a second factor: the password won't do
        proof = await other.post(
            "/api/v1/reauthenticate", json={"method": "password", "password": STRONG_PASSWORD}
        )
        assert_problem(await other.get(EXPORT), 401, "reauthentication_required")
        assert strong.totp_secret is not None
        proof = await other.post(
            "/api/v1/reauthenticate", json={"method": "totp", "code": totp_code(strong.totp_secret, clock)}
        )
        assert proof.status_code == 200, proof.text
        assert (await other.get(EXPORT)).json()["profile"]["id"] == strong.user_id


async def test_the_export_needs_a_session_and_a_csrf_free_get(app: httpx.AsyncClient) -> None:
    assert_problem(await app.get(EXPORT), 401, "not_authenticated")
    app.cookies.set(SESSION_COOKIE, "not-a-session", domain=httpx.URL(str(app.base_url)).host)
    assert_problem(await app.get(EXPORT), 401, "not_authenticated")


async def test_downloads_are_audited_and_limited_per_day(
    app_factory: Callable[..., Any], clock: FakeClock
) -> None:
    app = await app_factory(rate_limit={"export_per_day": 2})
    account = await new_account(app)
    assert (await app.get(EXPORT)).status_code == 200
    assert (await app.get(EXPORT)).status_code == 200
    refused = assert_problem(await app.get(EXPORT), 429, "rate_limited")
    assert refused
    response = await app.get(EXPORT)
    assert int(response.headers["retry-after"]) > 0
    assert (await audit_kinds(app, account.user_id)).count("account_exported") == 2
