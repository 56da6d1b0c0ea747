"""Single-use values under concurrency, at the storage guard the API relies on.

Concurrent API requests (see test_signin and test_totp) do not always interleave at the critical
statement in-process, so the conditional UPDATE that makes a TOTP step and a recovery code single use
is also raced directly here: of many concurrent consumers exactly one wins, on each backend.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.api.helpers import FakeClock
from tests.mfa.helpers import STEP, enrol_totp, new_account
from threshold.adapters.sql.factor_repos import SqlFactorRepo
from threshold.core.methods.recovery_codes import recovery_code_digest

RACERS = 6


async def test_a_totp_step_is_taken_once(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    repo = SqlFactorRepo(app.services.engine)  # type: ignore[attr-defined]
    step = int(clock.now() // STEP) + 1
    results = await asyncio.gather(*(repo.use_totp_step(account.user_id, step) for _ in range(RACERS)))
    assert sorted(results) == [False] * (RACERS - 1) + [True]
    assert not await repo.use_totp_step(account.user_id, step - 1)  # an earlier step is gone too
    assert await repo.use_totp_step(account.user_id, step + 1)


async def test_a_recovery_code_is_spent_once(app: httpx.AsyncClient, clock: FakeClock) -> None:
    account = await new_account(app)
    await enrol_totp(account, clock)
    repo = SqlFactorRepo(app.services.engine)  # type: ignore[attr-defined]
    spent = recovery_code_digest(account.recovery_codes[0])
    results = await asyncio.gather(
        *(repo.use_recovery_code(account.user_id, spent, at=clock.now()) for _ in range(RACERS))
    )
    assert sorted(results) == [False] * (RACERS - 1) + [True]
    assert await repo.count_recovery_codes(account.user_id) == 9


async def test_a_pending_login_completes_once(app: httpx.AsyncClient, clock: FakeClock) -> None:
    """Two second factors sent at once for one pending sign-in (a TOTP code and a recovery code, both
    valid) give one session, not two: the pending login is consumed in one step."""
    from tests.mfa.helpers import pending_login, send_code, totp_code

    account = await new_account(app)
    await enrol_totp(account, clock)
    assert account.totp_secret is not None
    await app.post("/api/v1/logout")
    await pending_login(app, account.email)
    results = await asyncio.gather(
        send_code(app, "totp", totp_code(account.totp_secret, clock, steps=1)),
        send_code(app, "recovery_code", account.recovery_codes[1]),
    )
    assert sorted(r.status_code for r in results) == [200, 401], [r.text for r in results]
    assert next(r for r in results if r.status_code == 401).json()["code"] == "flow_expired"
