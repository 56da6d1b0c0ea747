"""Step-up: sensitive actions need a sign-in or re-authentication within mfa.reauthentication_window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.helpers import SESSION_COOKIE, FakeClock, assert_problem, browser
from tests.conftest import STRONG_PASSWORD
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.helpers import (
    Account,
    assert_refused,
    audit_kinds,
    enrol_totp,
    let_time_pass,
    new_account,
    passkey_options,
    pending_login,
    register_passkey,
    send_code,
    session_record,
    totp_code,
)

WINDOW = 300
ALL_METHODS = ["password", "passkey", "totp", "recovery_code"]
SECOND_FACTORS = ["passkey", "totp", "recovery_code"]
"""Changing the second factors of an account that has one needs one of these, not the password."""


@dataclass
class Stale:
    """A browser signed in longer ago than the window, for an account with TOTP and a passkey."""

    app: httpx.AsyncClient
    account: Account
    passkey_id: str
    authenticator: SoftAuthenticator


@pytest.fixture
async def stale(app_factory: Callable[..., Any], clock: FakeClock) -> Stale:
    app = await app_factory(mfa={"reauthentication_window": WINDOW, "code_attempts": 3})
    account = await new_account(app)
    await enrol_totp(account, clock)
    authenticator = SoftAuthenticator()
    passkey = (await register_passkey(account, authenticator)).json()["passkey"]
    await let_time_pass(app, clock, WINDOW + 1)
    return Stale(app, account, passkey["id"], authenticator)


def sensitive(passkey_id: str) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/v1/passkeys/options"),
        ("DELETE", f"/api/v1/passkeys/{passkey_id}"),
        ("POST", "/api/v1/mfa/totp/setup"),
        ("DELETE", "/api/v1/mfa/totp"),
        ("POST", "/api/v1/mfa/recovery-codes"),
    ]


async def assert_all_need_reauth(app: httpx.AsyncClient, passkey_id: str) -> None:
    for method, path in sensitive(passkey_id):
        body = assert_problem(await app.request(method, path), 401, "reauthentication_required")
        assert body["methods"] == SECOND_FACTORS, (path, body)


async def test_sensitive_actions_need_a_recent_sign_in_and_work_after_reauthentication(
    stale: Stale, clock: FakeClock
) -> None:
    app, account, passkey_id = stale.app, stale.account, stale.passkey_id
    await assert_all_need_reauth(app, passkey_id)
    # the refusals changed nothing, and reading or renaming needs no step-up
    status = (await app.get("/api/v1/mfa")).json()
    assert status["totp"] is True and status["passkeys"] == 1 and status["recovery_codes_left"] == 10
    assert (await app.patch(f"/api/v1/passkeys/{passkey_id}", json={"name": "Renamed"})).status_code == 204

    before = await session_record(app, app)
    token = app.cookies.get(SESSION_COOKIE)
    response = await app.post(
        "/api/v1/reauthenticate", json={"method": "password", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200, response.text
    # Issue 11, hole 9: every re-authentication issues a new session id (ASVS 5, 7.2.4).
    assert any(h.startswith(SESSION_COOKIE + "=") for h in response.headers.get_list("set-cookie"))
    assert response.json()["session"]["id"] != before.public_id
    after = await session_record(app, app)
    assert app.cookies.get(SESSION_COOKIE) != token
    assert after.public_id != before.public_id
    assert after.auth_time == pytest.approx(clock.now()) and after.auth_time > before.auth_time
    # ... but the password alone does not let anyone swap the second factors of this account.
    await assert_all_need_reauth(app, passkey_id)
    assert account.totp_secret
    stepped = await app.post(
        "/api/v1/reauthenticate", json={"method": "totp", "code": totp_code(account.totp_secret, clock)}
    )
    assert stepped.status_code == 200, stepped.text

    assert (await app.post("/api/v1/passkeys/options")).status_code == 200
    regenerated = await app.post("/api/v1/mfa/recovery-codes")
    assert regenerated.status_code == 200 and len(regenerated.json()["recovery_codes"]) == 10
    assert (await app.delete(f"/api/v1/passkeys/{passkey_id}")).status_code == 204
    assert (await app.delete("/api/v1/mfa/totp")).status_code == 204
    assert (await app.post("/api/v1/mfa/totp/setup")).status_code == 200

    await let_time_pass(app, clock, WINDOW + 1)  # the window applies again from the re-authentication
    assert_problem(await app.post("/api/v1/mfa/totp/setup"), 401, "reauthentication_required")
    assert "reauthenticated" in await audit_kinds(app, account.user_id)


async def test_reauthenticate_with_totp_raises_the_session_to_aal2(stale: Stale, clock: FakeClock) -> None:
    app, account = stale.app, stale.account
    assert account.totp_secret
    assert (await app.get("/api/v1/session")).json()["session"]["aal"] == "aal1"  # signed up: password only
    response = await app.post(
        "/api/v1/reauthenticate", json={"method": "totp", "code": totp_code(account.totp_secret, clock)}
    )
    assert response.status_code == 200, response.text
    session = response.json()["session"]
    assert session["id"] != account.session_id  # aal1 -> aal2 is a privilege change: a new session id
    assert SESSION_COOKIE in response.headers.get("set-cookie", "")
    assert session["aal"] == "aal2" and {"pwd", "otp"} <= set(session["amr"])
    assert (await app.get("/api/v1/session")).json()["session"]["aal"] == "aal2"
    assert (await app.post("/api/v1/passkeys/options")).status_code == 200
    # the code is spent for sign-in too
    async with browser(app) as other:
        await pending_login(other, account.email)
        await assert_refused(
            await send_code(other, "totp", totp_code(account.totp_secret, clock)), other, 400, "invalid_code"
        )


async def test_reauthenticate_with_a_passkey(stale: Stale) -> None:
    app, account, passkey_id = stale.app, stale.account, stale.passkey_id
    authenticator = stale.authenticator
    options = await passkey_options(app, "/api/v1/reauthenticate/passkey/options")
    assert [c["id"] for c in options["allowCredentials"]] == list(authenticator.credentials)
    bad = authenticator.get(options, origin="https://evil.example")
    assert_problem(
        await app.post("/api/v1/reauthenticate", json={"method": "passkey", "credential": bad}),
        400,
        "passkey_invalid",
    )
    await assert_all_need_reauth(app, passkey_id)

    options = await passkey_options(app, "/api/v1/reauthenticate/passkey/options")
    good = authenticator.get(options)
    response = await app.post("/api/v1/reauthenticate", json={"method": "passkey", "credential": good})
    assert response.status_code == 200, response.text
    session = response.json()["session"]
    assert session["id"] != account.session_id  # aal1 -> aal2: a new session id
    assert session["aal"] == "aal2" and {"pwd", "hwk", "user"} <= set(session["amr"])
    assert (await app.post("/api/v1/mfa/recovery-codes")).status_code == 200
    replay = await app.post("/api/v1/reauthenticate", json={"method": "passkey", "credential": good})
    assert_problem(replay, 400, "challenge_expired")


async def test_a_login_challenge_cannot_be_used_to_reauthenticate(
    stale: Stale,
) -> None:
    app, passkey_id = stale.app, stale.passkey_id
    authenticator = stale.authenticator
    options = await passkey_options(app)  # a sign-in challenge, not a step-up one
    credential = authenticator.get(options)
    response = await app.post("/api/v1/reauthenticate", json={"method": "passkey", "credential": credential})
    assert_problem(response, 400, "challenge_expired")
    await assert_all_need_reauth(app, passkey_id)


async def test_wrong_password_on_reauthentication_is_refused_and_throttled(
    stale: Stale, clock: FakeClock
) -> None:
    app, account, passkey_id = stale.app, stale.account, stale.passkey_id
    assert account.totp_secret
    for attempt in range(3):  # mfa.code_attempts
        wrong = await app.post(
            "/api/v1/reauthenticate", json={"method": "password", "password": f"nope {attempt}"}
        )
        assert_problem(wrong, 400, "invalid_code")
    await assert_all_need_reauth(app, passkey_id)
    locked = await app.post(
        "/api/v1/reauthenticate", json={"method": "password", "password": STRONG_PASSWORD}
    )
    assert_problem(locked, 429, "rate_limited")
    assert int(locked.headers["retry-after"]) >= 1
    totp = await app.post(
        "/api/v1/reauthenticate", json={"method": "totp", "code": totp_code(account.totp_secret, clock)}
    )
    assert_problem(totp, 429, "rate_limited")  # one budget per account, whatever the method
    async with browser(app) as other:  # the sign-in second step shares it
        await pending_login(other, account.email)
        assert_problem(
            await send_code(other, "totp", totp_code(account.totp_secret, clock)), 429, "rate_limited"
        )
    await assert_all_need_reauth(app, passkey_id)


async def test_reauthentication_needs_a_session(app: httpx.AsyncClient) -> None:
    async with browser(app) as anonymous:
        response = await anonymous.post(
            "/api/v1/reauthenticate", json={"method": "password", "password": "x"}
        )
        assert_problem(response, 401, "not_authenticated")
        assert_problem(
            await anonymous.post("/api/v1/reauthenticate/passkey/options"), 401, "not_authenticated"
        )
