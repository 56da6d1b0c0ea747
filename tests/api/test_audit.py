"""Security events reach the append-only audit log with the client address and user agent."""

from __future__ import annotations

import httpx

from tests.api.helpers import USER_AGENT, browser
from tests.conftest import STRONG_PASSWORD, csrf, login, signup, unique_email
from threshold.core.models import AuditEvent, AuditKind


async def test_account_lifecycle_is_audited(client: httpx.AsyncClient) -> None:
    email = unique_email()
    user_id = (await signup(client, email)).json()["user"]["id"]
    async with browser(client, ip="198.51.100.30") as other:
        other.headers["user-agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/130.0 Safari/537.36"
        assert (await login(other, email, "a wrong password here")).status_code == 401
        other_session = (await login(other, email)).json()["session"]["id"]
    await csrf(client)
    assert (await client.delete(f"/api/v1/sessions/{other_session}")).status_code == 204
    changed = await client.post(
        "/api/v1/password/change",
        json={"current_password": STRONG_PASSWORD, "new_password": "new words for a new day 3"},
    )
    assert changed.status_code == 200
    assert (await client.post("/api/v1/logout")).status_code == 204

    services = client.services  # type: ignore[attr-defined]
    events = await services.audit_log.list_for_user(user_id, limit=50)
    by_kind: dict[AuditKind, list[AuditEvent]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)
        assert event.user_id == user_id
    for kind in (
        AuditKind.SIGNUP,
        AuditKind.LOGIN_FAILED,
        AuditKind.LOGIN_SUCCEEDED,
        AuditKind.SESSION_REVOKED,
        AuditKind.PASSWORD_CHANGED,
        AuditKind.LOGOUT,
    ):
        assert len(by_kind.get(kind, [])) == 1, (kind, [e.kind for e in events])

    def only(kind: AuditKind) -> AuditEvent:
        return by_kind[kind][0]

    for kind in (AuditKind.SIGNUP, AuditKind.SESSION_REVOKED, AuditKind.PASSWORD_CHANGED, AuditKind.LOGOUT):
        event = only(kind)
        assert (event.ip, event.user_agent) == ("203.0.113.7", USER_AGENT), kind
    failed, succeeded = only(AuditKind.LOGIN_FAILED), only(AuditKind.LOGIN_SUCCEEDED)
    for event in (failed, succeeded):
        assert event.ip == "198.51.100.30"
        assert "Chrome/130.0" in (event.user_agent or "")
    assert failed.detail["reason"] == "wrong_password"
    assert succeeded.detail["session"] == other_session
    assert only(AuditKind.SESSION_REVOKED).detail["session"] == other_session
    # no secret ever lands in the log
    for event in events:
        text = repr(event)
        assert STRONG_PASSWORD not in text and "a wrong password here" not in text


async def test_failure_for_a_disabled_account_is_audited(client: httpx.AsyncClient) -> None:
    email = unique_email()
    user_id = (await signup(client, email)).json()["user"]["id"]
    services = client.services  # type: ignore[attr-defined]
    await services.accounts.set_disabled(await services.accounts.find_user(email), disabled=True)
    async with browser(client) as other:
        assert (await login(other, email)).status_code == 401
    reasons = [
        e.detail.get("reason")
        for e in await services.audit_log.list_for_user(user_id)
        if e.kind == AuditKind.LOGIN_FAILED
    ]
    assert reasons == ["disabled"]
