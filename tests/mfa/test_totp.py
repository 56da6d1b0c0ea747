"""TOTP (RFC 6238): setup with a server-side QR code, confirmation by a code, ±1 step, single use."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pyotp
from sqlalchemy import text

from tests.api.helpers import FakeClock, assert_problem, browser
from tests.conftest import login
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.helpers import (
    STEP,
    assert_refused,
    assert_signed_in,
    enrol_totp,
    let_time_pass,
    new_account,
    pending_login,
    register_passkey,
    send_code,
    totp_code,
)


async def test_setup_gives_secret_uri_and_qr_and_completes_only_with_a_valid_code(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    setup = await app.post("/api/v1/mfa/totp/setup")
    assert setup.status_code == 200, setup.text
    body = setup.json()
    secret = body["secret"]
    assert len(secret) >= 32 and pyotp.TOTP(secret).now()  # 160 bits, valid base32

    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/Threshold:{account.email}"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Threshold"]

    svg = body["qr_svg"]
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<path" in svg and "<script" not in svg
    assert secret not in svg  # the secret is drawn, not written

    wrong = f"{(int(totp_code(secret, clock)) + 1) % 1_000_000:06d}"
    await assert_refused(
        await app.post("/api/v1/mfa/totp/confirm", json={"code": wrong}), app, 400, "invalid_code"
    )
    status = (await app.get("/api/v1/mfa")).json()
    assert status["totp"] is False and status["methods"] == []

    confirmed = await app.post("/api/v1/mfa/totp/confirm", json={"code": totp_code(secret, clock)})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    status = (await app.get("/api/v1/mfa")).json()
    assert status["totp"] is True
    assert status["recovery_codes_left"] == 10
    assert status["methods"] == ["totp", "recovery_code"]


async def test_confirm_without_setup_is_refused(app: httpx.AsyncClient) -> None:
    await new_account(app)
    assert_problem(
        await app.post("/api/v1/mfa/totp/confirm", json={"code": "123456"}), 409, "totp_not_started"
    )


async def test_recovery_codes_come_with_the_first_factor_only(
    app: httpx.AsyncClient, clock: FakeClock, authenticator: SoftAuthenticator
) -> None:
    account = await new_account(app)
    first = await enrol_totp(account, clock)
    assert len(first["recovery_codes"]) == 10
    second = await register_passkey(account, authenticator)
    assert second.status_code == 201, second.text
    assert "recovery_codes" not in second.json()
    assert (await app.get("/api/v1/mfa")).json()["recovery_codes_left"] == 10  # the first ones still hold


async def test_the_secret_is_encrypted_at_rest(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    secret = account.totp_secret
    assert secret
    async with app.services.engine.connect() as conn:  # type: ignore[attr-defined]
        stored = (
            await conn.execute(
                text("SELECT secret FROM totp_credentials WHERE user_id = :u"), {"u": account.user_id}
            )
        ).scalar_one()
    assert stored
    assert secret not in stored and secret.lower() not in stored.lower()


async def test_one_step_either_side_is_accepted_two_are_not(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    secret = account.totp_secret
    assert secret
    await let_time_pass(app, clock, 10 * STEP)
    async with browser(app) as phone:
        await pending_login(phone, account.email)
        for steps in (-2, 2):
            await assert_refused(
                await send_code(phone, "totp", totp_code(secret, clock, steps)), phone, 400, "invalid_code"
            )
        assert_signed_in(
            await send_code(phone, "totp", totp_code(secret, clock, -1)), aal="aal2", amr={"otp"}
        )
    async with browser(app) as laptop:
        await pending_login(laptop, account.email)
        assert_signed_in(
            await send_code(laptop, "totp", totp_code(secret, clock, 1)), aal="aal2", amr={"otp"}
        )


async def test_a_code_works_once_even_inside_the_window(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    secret = account.totp_secret
    assert secret
    async with browser(app) as phone:
        await pending_login(phone, account.email)
        # the code that confirmed the setup is spent: the same step is refused
        await assert_refused(
            await send_code(phone, "totp", totp_code(secret, clock)), phone, 400, "invalid_code"
        )
        await let_time_pass(app, clock, STEP)
        code = totp_code(secret, clock)
        assert_signed_in(await send_code(phone, "totp", code), aal="aal2", amr={"otp"})
    async with browser(app) as thief:
        await pending_login(thief, account.email)
        await assert_refused(await send_code(thief, "totp", code), thief, 400, "invalid_code")
        # an older step inside the window is refused too once a later one was used
        await assert_refused(
            await send_code(thief, "totp", totp_code(secret, clock, -1)), thief, 400, "invalid_code"
        )


async def test_delete_removes_the_authenticator(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    assert (await app.delete("/api/v1/mfa/totp")).status_code == 204
    status = (await app.get("/api/v1/mfa")).json()
    assert status["totp"] is False
    assert "totp" not in status["methods"]
    assert_problem(await app.delete("/api/v1/mfa/totp"), 404, "factor_not_found")
    await let_time_pass(app, clock, STEP)
    async with browser(app) as other:
        response = await login(other, account.email)
        assert response.status_code == 200, response.text
        assert response.json()["session"]["aal"] == "aal1"  # the password alone is enough again


async def test_two_concurrent_uses_of_one_code_exactly_one_wins(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    assert account.totp_secret
    await let_time_pass(app, clock, STEP)
    code = totp_code(account.totp_secret, clock)
    async with browser(app) as first, browser(app) as second:
        await pending_login(first, account.email)
        await pending_login(second, account.email)
        answers = await asyncio.gather(send_code(first, "totp", code), send_code(second, "totp", code))
    assert sorted(a.status_code for a in answers) == [200, 400], [a.text for a in answers]
    assert_problem(next(a for a in answers if a.status_code != 200), 400, "invalid_code")
