"""Helpers of the second-factor suite: accounts with factors, codes on the fake clock, assertions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp
from redis.client import NEVER_DECODE

from tests.api.helpers import SESSION_COOKIE, FakeClock, assert_problem, set_cookie
from tests.conftest import STRONG_PASSWORD, csrf, login, signup, unique_email
from tests.mfa.authenticator import SoftAuthenticator
from threshold.core.secrets import digest

PENDING_COOKIE = "__Host-threshold_pending"
STEP = 30


@dataclass
class Account:
    """A signed-up user and the browser that signed up (holding a fresh session)."""

    client: httpx.AsyncClient
    email: str
    user_id: str
    session_id: str
    totp_secret: str | None = None
    recovery_codes: list[str] = field(default_factory=list)


async def new_account(client: httpx.AsyncClient, prefix: str = "user") -> Account:
    email = unique_email(prefix)
    response = await signup(client, email)
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(client=client, email=email, user_id=body["user"]["id"], session_id=body["session"]["id"])


def totp_code(secret: str, clock: FakeClock, steps: int = 0) -> str:
    """The code an authenticator app shows `steps` time steps away from the fake clock's now."""
    return pyotp.TOTP(secret).at(clock.now() + steps * STEP)


async def enrol_totp(account: Account, clock: FakeClock) -> dict[str, Any]:
    """Set up TOTP through the API; returns the confirm response (with recovery codes if first)."""
    setup = await account.client.post("/api/v1/mfa/totp/setup")
    assert setup.status_code == 200, setup.text
    account.totp_secret = setup.json()["secret"]
    confirm = await account.client.post(
        "/api/v1/mfa/totp/confirm", json={"code": totp_code(account.totp_secret, clock)}
    )
    assert confirm.status_code == 200, confirm.text
    body: dict[str, Any] = confirm.json()
    account.recovery_codes = body.get("recovery_codes") or account.recovery_codes
    return body


async def register_passkey(
    account: Account, authenticator: SoftAuthenticator, name: str | None = "Laptop", **create: Any
) -> httpx.Response:
    """Registration ceremony: options, the authenticator's response, then POST /api/v1/passkeys."""
    options = await account.client.post("/api/v1/passkeys/options")
    assert options.status_code == 200, options.text
    credential = authenticator.create(options.json()["publicKey"], **create)
    response = await account.client.post("/api/v1/passkeys", json={"credential": credential, "name": name})
    if response.status_code == 201 and "recovery_codes" in response.json():
        account.recovery_codes = response.json()["recovery_codes"]
    return response


async def passkey_options(client: httpx.AsyncClient, path: str = "/api/v1/login/passkey/options") -> Any:
    """The "publicKey" options of a ceremony (fetching the CSRF token first, as a front end does)."""
    await csrf(client)
    response = await client.post(path)
    assert response.status_code == 200, response.text
    return response.json()["publicKey"]


async def passkey_login(
    client: httpx.AsyncClient, authenticator: SoftAuthenticator, **get: Any
) -> httpx.Response:
    """Sign-in ceremony: login options, an assertion, POST /api/v1/login/passkey."""
    options = await passkey_options(client)
    credential = authenticator.get(options, **get)
    return await client.post("/api/v1/login/passkey", json={"credential": credential})


async def pending_login(client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD) -> list[str]:
    """A password sign-in that must stop at the second factor; returns the offered methods."""
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "mfa_required", body
    assert "session" not in body and "user" not in body
    assert not any(SESSION_COOKIE in h for h in response.headers.get_list("set-cookie"))
    assert set_cookie(response, PENDING_COOKIE)["value"]
    methods: list[str] = body["methods"]
    return methods


async def send_code(client: httpx.AsyncClient, method: str, code: str) -> httpx.Response:
    return await client.post("/api/v1/login/mfa", json={"method": method, "code": code})


def assert_signed_in(response: httpx.Response, *, aal: str, amr: set[str]) -> dict[str, Any]:
    """200 with a session of this assurance, a session cookie, and the pending cookie cleared."""
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()["session"]
    assert session["aal"] == aal, session
    assert amr <= set(session["amr"]), session
    assert set_cookie(response, SESSION_COOKIE)["value"]
    return session


async def assert_refused(
    response: httpx.Response, client: httpx.AsyncClient, status: int, code: str
) -> dict[str, Any]:
    """A problem answer that issued no session: no session cookie set, and /api/v1/session is 401."""
    body = assert_problem(response, status, code)
    assert not any(h.startswith(SESSION_COOKIE + "=") for h in response.headers.get_list("set-cookie"))
    if SESSION_COOKIE not in client.cookies:
        assert (await client.get("/api/v1/session")).status_code == 401
    return body


async def session_record(client: httpx.AsyncClient, app: httpx.AsyncClient) -> Any:
    """The server-side record of `client`'s session (read through the app's session store)."""
    token = client.cookies.get(SESSION_COOKIE)
    assert token, "this browser has no session"
    return await app.services.session_store.get(digest(token))  # type: ignore[attr-defined]


async def audit_kinds(app: httpx.AsyncClient, user_id: str) -> list[str]:
    events = await app.services.audit_log.list_for_user(user_id, limit=500)  # type: ignore[attr-defined]
    return [event.kind.value for event in events]


async def let_time_pass(app: httpx.AsyncClient, clock: FakeClock, seconds: float) -> None:
    """Advance the fake clock; on Redis, also expire what Redis would have expired by then.

    The SQL stores compare expiries with the clock the app passes them; Redis expires keys on its
    own (real) clock, set from the same fake instants (PXAT), so a key whose absolute expiry is now
    in the fake past is deleted here, as the Redis clock would do once real time got there.
    """
    clock.advance(seconds)
    redis = app.services.redis  # type: ignore[attr-defined]
    if redis is None:
        return
    prefix = app.services.settings.redis_key_prefix  # type: ignore[attr-defined]
    fake_now_ms = clock.now() * 1000
    undecoded: dict[str, Any] = {NEVER_DECODE: []}  # session keys are binary
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000, **undecoded):
        ttl = await redis.pttl(key)
        if ttl >= 0 and time.time() * 1000 + ttl <= fake_now_ms:
            await redis.delete(key)
