"""Policy: MFA required by Settings or per user; the password minimum drops to 8 with a second factor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.api.helpers import FakeClock, assert_problem, browser
from tests.conftest import STRONG_PASSWORD, login
from tests.mfa.helpers import enrol_totp, new_account, pending_login

TEN_CHARACTERS = "Vq7zK2pMx4"
REQUIRED_BANNER = "Two-step verification is required for your account."


async def mfa_status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/mfa")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_required_by_settings(app_factory: Callable[..., Any], clock: FakeClock) -> None:
    app = await app_factory(mfa={"required": True})
    account = await new_account(app)
    status = await mfa_status(app)
    assert status["mfa_required"] is True and status["enrollment_required"] is True
    assert REQUIRED_BANNER in (await app.get("/account")).text
    await enrol_totp(account, clock)
    status = await mfa_status(app)
    assert status["mfa_required"] is True and status["enrollment_required"] is False
    assert REQUIRED_BANNER not in (await app.get("/account")).text


async def test_not_required_by_default(app: httpx.AsyncClient) -> None:
    await new_account(app)
    status = await mfa_status(app)
    assert status["mfa_required"] is False and status["enrollment_required"] is False


async def test_required_per_user_by_an_operator(app: httpx.AsyncClient) -> None:
    flagged = await new_account(app, "flagged")
    async with browser(app) as other_browser:
        await new_account(other_browser, "other")
        assert (await mfa_status(app))["enrollment_required"] is False
        assert await app.services.users.set_mfa_required(flagged.user_id, True)  # type: ignore[attr-defined]
        status = await mfa_status(app)
        assert status["mfa_required"] is True and status["enrollment_required"] is True
        other = await mfa_status(other_browser)
        assert other["mfa_required"] is False and other["enrollment_required"] is False


async def test_the_password_minimum_is_8_only_with_a_second_factor(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    change = {"current_password": STRONG_PASSWORD, "new_password": TEN_CHARACTERS}
    refused = await app.post("/api/v1/password/change", json=change)
    assert assert_problem(refused, 422, "password_too_short")["min_length"] == 15

    await enrol_totp(account, clock)
    too_short = await app.post("/api/v1/password/change", json={**change, "new_password": "Vq7zK2p"})
    assert assert_problem(too_short, 422, "password_too_short")["min_length"] == 8
    changed = await app.post("/api/v1/password/change", json=change)
    assert changed.status_code == 200, changed.text

    async with browser(app) as other:  # the new password works, and the second factor is still asked
        assert (await login(other, account.email)).status_code == 401
        assert await pending_login(other, account.email, TEN_CHARACTERS) == ["totp", "recovery_code"]
