"""Step-up cannot bring back what ended while its proof was being checked, and only real sign-in
methods step up (security review of issue 11)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import FakeClock
from tests.conftest import STRONG_PASSWORD
from tests.mfa.helpers import new_account, session_record, totp_code
from threshold.core.errors import SessionNotFound
from threshold.core.models import RequestContext
from threshold.core.revocation import Cause, Reach
from threshold.services import Services

CONTEXT = RequestContext(ip="203.0.113.60", user_agent="pytest")


def services_of(app: httpx.AsyncClient) -> Services:
    found: Services = app.services  # type: ignore[attr-defined]
    return found


async def test_a_step_up_whose_session_was_revoked_meanwhile_issues_nothing(app: httpx.AsyncClient) -> None:
    """The session was revoked (offboarding, "sign out everywhere", a reset) while the step-up's slow
    proof ran: the step-up must not hand out a fresh session."""
    account = await new_account(app, "revoked")
    services = services_of(app)
    record = await session_record(app, app)
    user = await services.users.get(account.user_id)
    assert user is not None
    await services.revoker.end_access(Reach.everything(user.id), cause=Cause.SIGN_OUT_EVERYWHERE)
    with pytest.raises(SessionNotFound):
        await services.stepup.reauthenticate(
            user, record, method="password", secret=STRONG_PASSWORD, context=CONTEXT
        )
    assert await services.sessions.list_sessions(user.id) == []


async def test_a_step_up_across_a_password_reset_issues_nothing(app: httpx.AsyncClient) -> None:
    account = await new_account(app, "epoch")
    services = services_of(app)
    record = await session_record(app, app)
    user = await services.users.get(account.user_id)
    assert user is not None
    stepup: Any = services.stepup
    proving = stepup._proving
    real_prove = proving.prove

    async def prove_while_a_reset_commits(*args: Any, **kwargs: Any) -> Any:
        proof = await real_prove(*args, **kwargs)
        await services.users.bump_credential_epoch(user.id)  # a credential change commits meanwhile
        return proof

    proving.prove = prove_while_a_reset_commits
    try:
        with pytest.raises(SessionNotFound):
            await services.stepup.reauthenticate(
                user, record, method="password", secret=STRONG_PASSWORD, context=CONTEXT
            )
    finally:
        del proving.prove
    assert await services.sessions.list_sessions(user.id) == []


async def test_an_unconfirmed_authenticator_does_not_step_up(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A TOTP setup that was never confirmed is no second factor: its code must not raise a session to
    aal2 through the step-up form."""
    account = await new_account(app, "setup")
    setup = await account.client.post("/api/v1/mfa/totp/setup")
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    response = await account.client.post(
        "/api/v1/reauthenticate", json={"method": "totp_setup", "code": totp_code(secret, clock)}
    )
    assert response.status_code in (400, 422), response.text
    services = services_of(app)
    user = await services.users.get(account.user_id)
    assert user is not None
    record = await session_record(app, app)
    with pytest.raises(Exception) as refused:
        await services.stepup.reauthenticate(
            user, record, method="totp_setup", secret=totp_code(secret, clock), context=CONTEXT
        )
    assert getattr(refused.value, "code", "") == "invalid_request"
    assert (await app.get("/api/v1/session")).json()["session"]["aal"] == "aal1"
