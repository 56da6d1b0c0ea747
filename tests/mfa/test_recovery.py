"""The recovery ladder: recovery codes (regenerable, counted, warned about), then operator-approved reset."""

from __future__ import annotations

import re

import httpx

from tests.api.helpers import FakeClock, assert_problem, browser, form_value
from tests.conftest import ISSUER, login
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.helpers import (
    STEP,
    Account,
    assert_refused,
    assert_signed_in,
    audit_kinds,
    enrol_totp,
    let_time_pass,
    new_account,
    pending_login,
    register_passkey,
    send_code,
    totp_code,
)
from threshold.core.accounts import OPERATOR

BROWSER_POST = {"origin": ISSUER, "sec-fetch-site": "same-origin"}
LOW_WARNING = re.compile(r"You have (\d+) recovery codes? left\. Make new ones")


async def codes_left(client: httpx.AsyncClient) -> int:
    left: int = (await client.get("/api/v1/mfa")).json()["recovery_codes_left"]
    return left


async def test_regenerated_codes_replace_the_old_ones(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    assert_problem(await app.post("/api/v1/mfa/recovery-codes"), 400, "invalid_request")  # no factor yet
    await enrol_totp(account, clock)
    old = account.recovery_codes
    response = await app.post("/api/v1/mfa/recovery-codes")
    assert response.status_code == 200, response.text
    new = response.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert await codes_left(app) == 10
    async with browser(app) as other:
        await pending_login(other, account.email)
        for code in (old[0], old[9]):
            await assert_refused(await send_code(other, "recovery_code", code), other, 400, "invalid_code")
        assert_signed_in(await send_code(other, "recovery_code", new[0]), aal="aal2", amr={"otp"})
    assert await codes_left(app) == 9
    assert (await audit_kinds(app, account.user_id)).count("recovery_codes_generated") == 2


async def test_the_count_falls_and_the_account_page_warns_at_two(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    codes = list(account.recovery_codes)
    page = (await app.get("/account")).text
    assert "10 of 10 recovery codes left" in page and not LOW_WARNING.search(page)

    async with browser(app) as other:  # one spent signing in
        await pending_login(other, account.email)
        assert_signed_in(await send_code(other, "recovery_code", codes.pop()), aal="aal2", amr={"otp"})
    assert await codes_left(app) == 9
    while len(codes) > 3:  # the rest spent re-authenticating
        reauth = await app.post(
            "/api/v1/reauthenticate", json={"method": "recovery_code", "code": codes.pop()}
        )
        assert reauth.status_code == 200, reauth.text
        assert await codes_left(app) == len(codes)
    page = (await app.get("/account")).text
    assert "3 of 10 recovery codes left" in page and not LOW_WARNING.search(page)

    for expected in (2, 1):
        reauth = await app.post(
            "/api/v1/reauthenticate", json={"method": "recovery_code", "code": codes.pop()}
        )
        assert reauth.status_code == 200, reauth.text
        page = (await app.get("/account")).text
        warning = LOW_WARNING.search(page)
        assert warning and int(warning.group(1)) == expected, page
        assert (await app.get("/api/v1/mfa")).json()["recovery_codes_left"] == expected


async def _account_with_factors(app: httpx.AsyncClient, clock: FakeClock) -> Account:
    account = await new_account(app)
    await enrol_totp(account, clock)
    assert (await register_passkey(account, SoftAuthenticator())).status_code == 201
    return account


async def test_an_operator_recovery_shows_a_banner_and_the_user_can_cancel_it(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await _account_with_factors(app, clock)
    user = await app.services.users.get(account.user_id)  # type: ignore[attr-defined]
    request = await app.services.recovery.request_recovery(  # type: ignore[attr-defined]
        user, requested_by="ops", wait=60, context=OPERATOR
    )
    page = (await app.get("/account")).text
    assert "Account recovery requested" in page and "(ops)" in page
    action = f"/account/recovery/{request.id}/cancel"
    assert f'action="{action}"' in page

    cancel = await app.post(action, data={"csrf_token": form_value(page, "csrf_token")}, headers=BROWSER_POST)
    assert cancel.status_code == 303, cancel.text
    assert cancel.headers["location"] == "/account?done=recovery_cancelled"
    assert "Account recovery requested" not in (await app.get("/account")).text
    await let_time_pass(app, clock, 61)
    assert await app.services.recovery.execute_due_recoveries() == 0  # type: ignore[attr-defined]
    status = (await app.get("/api/v1/mfa")).json()
    assert status["totp"] is True and status["passkeys"] == 1 and status["recovery_codes_left"] == 10
    kinds = await audit_kinds(app, account.user_id)
    assert "recovery_requested" in kinds and "recovery_cancelled" in kinds
    assert "recovery_completed" not in kinds


async def test_only_the_user_can_cancel_their_recovery(app: httpx.AsyncClient, clock: FakeClock) -> None:
    victim = await _account_with_factors(app, clock)
    user = await app.services.users.get(victim.user_id)  # type: ignore[attr-defined]
    request = await app.services.recovery.request_recovery(  # type: ignore[attr-defined]
        user, requested_by="ops", wait=60, context=OPERATOR
    )
    async with browser(app) as stranger:
        await new_account(stranger, "stranger")
        page = (await stranger.get("/account")).text
        assert "Account recovery requested" not in page
        response = await stranger.post(
            f"/account/recovery/{request.id}/cancel",
            data={"csrf_token": form_value(page, "csrf_token")},
            headers=BROWSER_POST,
        )
        assert response.status_code == 404, response.status_code
    pending = await app.services.recovery.pending_recovery(user)  # type: ignore[attr-defined]
    assert [r.id for r in pending] == [request.id]


async def test_after_the_wait_the_factors_are_reset_and_every_session_ends(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    account = await _account_with_factors(app, clock)
    assert account.totp_secret
    await let_time_pass(app, clock, STEP)
    async with browser(app) as phone:
        await pending_login(phone, account.email)
        assert_signed_in(
            await send_code(phone, "totp", totp_code(account.totp_secret, clock)), aal="aal2", amr={"otp"}
        )
        user = await app.services.users.get(account.user_id)  # type: ignore[attr-defined]
        await app.services.recovery.request_recovery(  # type: ignore[attr-defined]
            user, requested_by="ops", wait=60, context=OPERATOR
        )
        await let_time_pass(app, clock, 59)
        assert await app.services.recovery.execute_due_recoveries() == 0  # type: ignore[attr-defined]
        assert (await app.get("/api/v1/mfa")).json()["totp"] is True
        await let_time_pass(app, clock, 2)
        assert await app.services.recovery.execute_due_recoveries() == 1  # type: ignore[attr-defined]
        assert await app.services.recovery.execute_due_recoveries() == 0  # type: ignore[attr-defined]
        for browser_ in (app, phone):
            assert_problem(await browser_.get("/api/v1/session"), 401, "not_authenticated")

    status = await app.services.factors.status(user)  # type: ignore[attr-defined]
    assert (status.totp, len(status.passkeys), status.recovery_codes_left) == (False, 0, 0)
    events = await app.services.audit_log.list_for_user(account.user_id)  # type: ignore[attr-defined]
    kinds = [e.kind.value for e in events]
    assert "recovery_requested" in kinds
    completed = next(e for e in events if e.kind.value == "recovery_completed")
    assert completed.detail["sessions_ended"] == "2"

    async with browser(app) as laptop:  # the password alone signs in now
        response = await login(laptop, account.email)
        assert response.status_code == 200, response.text
        assert response.json()["session"]["aal"] == "aal1"
        assert (await laptop.get("/api/v1/session")).status_code == 200


async def test_recovery_codes_carry_at_least_112_bits(app: httpx.AsyncClient, clock: FakeClock) -> None:
    """Issue 11, hole 10: codes were 12 characters of a 31-letter alphabet (about 59 bits) under an
    unsalted SHA-256; at least 112 bits make the digest unsearchable."""
    import math

    from threshold.core.methods.recovery_codes import ALPHABET, normalize_recovery_code

    account = await new_account(app, "bits")
    body = await enrol_totp(account, clock)
    codes = body["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    for code in codes:
        normalized = normalize_recovery_code(code)
        assert set(normalized) <= set(ALPHABET)
        assert len(normalized) * math.log2(len(ALPHABET)) >= 112, code
