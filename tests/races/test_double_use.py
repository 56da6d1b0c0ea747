"""Every single-use credential raced across two instances of the service: one wins, one is refused.

Each test fires the same credential at instance A and instance B at once (asyncio.gather), for
ROUNDS rounds with the starting instance alternating. On SQLite the two instances are two engines on
one database file; on PostgreSQL + Redis they are two engines with their own connection pools and two
Redis clients, so the guard under test is the database's or Redis's, never one process's memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.api.helpers import SESSION_COOKIE, assert_problem
from tests.conftest import csrf, login, signup, unique_email
from tests.email.helpers import token_of
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.helpers import (
    enrol_totp,
    new_account,
    passkey_options,
    pending_login,
    register_passkey,
    send_code,
)
from tests.oidc.helpers import invalid_token, oauth_error
from tests.races.conftest import ROUNDS, Twins

SIGN_IN = "Your sign-in link"


def one_winner(responses: tuple[httpx.Response, httpx.Response]) -> tuple[httpx.Response, httpx.Response]:
    """(winner, loser): exactly one answer is a 200, the other a 400."""
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400], [(r.status_code, r.text[:300]) for r in responses]
    winner = next(r for r in responses if r.status_code == 200)
    loser = next(r for r in responses if r.status_code == 400)
    return winner, loser


def sets_session(response: httpx.Response) -> bool:
    return any(
        h.startswith(SESSION_COOKIE + "=") and not h.startswith(SESSION_COOKIE + '=""')
        for h in response.headers.get_list("set-cookie")
    )


async def test_a_refresh_token_is_rotated_once(twins: Twins) -> None:
    """No grace window: one refresh gets a successor; the other is a reuse (invalid_grant), which
    revokes the whole family, the winner's successor included, and ends the session, as documented."""
    op_a, op_b = await twins.a.oidc(), await twins.b.oidc()
    assert twins.a.settings.oidc.refresh_reuse_grace == 0
    rp = await op_a.register()
    account = await op_a.sign_up()
    email, user_id = account["user"]["email"], account["user"]["id"]
    ops = (op_a, op_b)
    for round_ in range(ROUNDS):
        if round_:
            assert (await login(op_a.browser, email)).status_code == 200
        tokens = await op_a.tokens(rp)
        first, second = ops if round_ % 2 == 0 else ops[::-1]

        winner, loser = one_winner(
            await asyncio.gather(first.refresh(rp, tokens.refresh), second.refresh(rp, tokens.refresh))
        )

        oauth_error(loser, 400, "invalid_grant")
        successor = winner.json()["refresh_token"]
        assert successor != tokens.refresh
        for op in ops:  # reuse detection reached every instance: the family and the session are gone
            oauth_error(await op.refresh(rp, successor), 400, "invalid_grant")
            assert not await op.signed_in()
    events = await twins.a.services.audit_log.list_for_user(user_id, limit=500)
    assert sum(e.kind.value == "refresh_token_reuse" for e in events) == ROUNDS


async def test_an_authorization_code_is_exchanged_once(twins: Twins) -> None:
    """One token response; the other invalid_grant; and the tokens of that one response are revoked by
    the concurrent replay on every instance, whichever of the two requests came first."""
    op_a, op_b = await twins.a.oidc(), await twins.b.oidc()
    rp = await op_a.register()
    await op_a.sign_up()
    ops = (op_a, op_b)
    for round_ in range(ROUNDS):
        code, verifier, _ = await op_a.code(rp)
        first, second = ops if round_ % 2 == 0 else ops[::-1]

        winner, loser = one_winner(
            await asyncio.gather(first.exchange(rp, code, verifier), second.exchange(rp, code, verifier))
        )

        oauth_error(loser, 400, "invalid_grant")
        issued = winner.json()
        assert {"access_token", "id_token", "refresh_token"} <= set(issued)
        for op in ops:
            # The replay revoked what the code issued, as it does when it comes after the exchange
            # (RFC 6749 section 4.1.2), although the winner had not recorded its tokens when it came.
            oauth_error(await op.refresh(rp, issued["refresh_token"]), 400, "invalid_grant")
            invalid_token(await op.userinfo(issued["access_token"]))
            oauth_error(await op.exchange(rp, code, verifier), 400, "invalid_grant")


async def test_a_recovery_code_signs_in_once(twins: Twins) -> None:
    """Two browsers, each with its own pending sign-in (one on A, one on B), send the same recovery code
    as their second factor at once: one session, one invalid_code, one code spent."""
    account = await new_account(twins.a.browser(), "recovery")
    await enrol_totp(account, twins.a.clock)
    codes = account.recovery_codes
    assert len(codes) >= 10
    rounds = min(ROUNDS, len(codes))
    for round_ in range(rounds):
        first_app, second_app = twins.ordered(round_)
        first, second = first_app.browser(), second_app.browser()
        await pending_login(first, account.email)
        await pending_login(second, account.email)

        winner, loser = one_winner(
            await asyncio.gather(
                send_code(first, "recovery_code", codes[round_]),
                send_code(second, "recovery_code", codes[round_]),
            )
        )

        assert_problem(loser, 400, "invalid_code")
        assert not sets_session(loser)
        assert sets_session(winner) and winner.json()["session"]["aal"] == "aal2"
    status = await account.client.get("/api/v1/mfa")
    assert status.status_code == 200, status.text
    assert status.json()["recovery_codes_left"] == len(codes) - rounds


async def test_a_sign_in_link_signs_in_once(twins: Twins) -> None:
    """The emailed link opened in two browsers at once (one on A, one on B, both confirming): one
    session, one token_invalid."""
    email = unique_email("link")
    assert (await signup(twins.a.browser(), email)).status_code == 201
    for round_ in range(ROUNDS):
        asker = twins.a.browser()
        await csrf(asker)
        assert (await asker.post("/api/v1/login/email", json={"email": email})).status_code == 202
        message = await twins.a.last(email, SIGN_IN)
        token = token_of(message.link("/login/email/verify"))
        first_app, second_app = twins.ordered(round_)
        first, second = first_app.browser(), second_app.browser()
        await csrf(first)
        await csrf(second)
        body: dict[str, Any] = {"token": token, "confirm": True}

        winner, loser = one_winner(
            await asyncio.gather(
                first.post("/api/v1/login/email/verify", json=body),
                second.post("/api/v1/login/email/verify", json=body),
            )
        )

        assert_problem(loser, 400, "token_invalid")
        assert not sets_session(loser)
        assert sets_session(winner) and winner.json()["session"]["amr"] == ["email"]
        # the code of the same message is spent with it (the one answer for every wrong or spent code)
        assert_problem(
            await asker.post("/api/v1/login/email/verify", json={"code": message.code()}),
            400,
            "invalid_code",
        )


async def test_a_passkey_assertion_is_accepted_once(twins: Twins, authenticator: SoftAuthenticator) -> None:
    """One signed assertion (one WebAuthn challenge) posted to A and B at once: one session, one
    challenge_expired."""
    account = await new_account(twins.a.browser(), "passkey")
    assert (await register_passkey(account, authenticator)).status_code == 201
    for round_ in range(ROUNDS):
        first_app, second_app = twins.ordered(round_)
        first, second = first_app.browser(), second_app.browser()
        await csrf(second)
        credential = authenticator.get(await passkey_options(first))  # the challenge is issued by `first`

        winner, loser = one_winner(
            await asyncio.gather(
                first.post("/api/v1/login/passkey", json={"credential": credential}),
                second.post("/api/v1/login/passkey", json={"credential": credential}),
            )
        )

        assert_problem(loser, 400, "challenge_expired")
        assert not sets_session(loser)
        assert sets_session(winner) and winner.json()["user"]["id"] == account.user_id
