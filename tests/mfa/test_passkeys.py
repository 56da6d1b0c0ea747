"""Passkeys through a software authenticator: registration, management, sign-in, and every refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.api.helpers import FakeClock, assert_problem, browser
from tests.conftest import login
from tests.mfa.authenticator import AAGUID, Credential, SoftAuthenticator
from tests.mfa.helpers import (
    assert_refused,
    assert_signed_in,
    audit_kinds,
    enrol_totp,
    let_time_pass,
    new_account,
    passkey_login,
    passkey_options,
    pending_login,
    register_passkey,
    send_code,
)

AAGUID_TEXT = "74687265-7368-6f6c-642d-746573742d31"
assert AAGUID.hex() == AAGUID_TEXT.replace("-", "")


async def passkeys_of(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/passkeys")
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["passkeys"]
    return result


# --- registration and management ----------------------------------------------------------------------


@pytest.mark.parametrize("synced", [False, True], ids=["device-bound", "synced"])
async def test_register_returns_the_passkey_and_first_recovery_codes(
    app: httpx.AsyncClient, synced: bool
) -> None:
    account = await new_account(app)
    response = await register_passkey(account, SoftAuthenticator(synced=synced), name="  My   laptop ")
    assert response.status_code == 201, response.text
    body = response.json()
    passkey = body["passkey"]
    assert passkey["name"] == "My laptop"
    assert passkey["backup_eligible"] is synced and passkey["backup_state"] is synced
    assert passkey["transports"] == ["internal", "hybrid"]
    assert passkey["aaguid"] == AAGUID_TEXT
    assert passkey["flagged"] is False and passkey["last_used_at"] is None
    assert len(body["recovery_codes"]) == 10
    assert await passkeys_of(app) == [passkey]
    status = (await app.get("/api/v1/mfa")).json()
    assert status["passkeys"] == 1 and status["methods"] == ["passkey", "recovery_code"]
    assert "passkey_added" in await audit_kinds(app, account.user_id)


async def test_registration_options_exclude_known_credentials_and_a_second_passkey_adds_no_codes(
    app: httpx.AsyncClient, authenticator: SoftAuthenticator
) -> None:
    account = await new_account(app)
    first = await register_passkey(account, authenticator, name=None)
    assert first.status_code == 201
    assert first.json()["passkey"]["name"].startswith("Passkey on ")  # a default from the browser
    options = await passkey_options(app, "/api/v1/passkeys/options")
    assert options["rp"]["id"] == "auth.threshold.test"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert [c["id"] for c in options["excludeCredentials"]] == list(authenticator.credentials)
    second = await register_passkey(account, SoftAuthenticator(), name="Phone")
    assert second.status_code == 201 and "recovery_codes" not in second.json()
    assert [p["name"] for p in await passkeys_of(app)] == [first.json()["passkey"]["name"], "Phone"]


async def test_a_credential_id_already_registered_is_refused(
    app: httpx.AsyncClient, authenticator: SoftAuthenticator
) -> None:
    """Another account presenting a known credential id (a cloned or forged key) registers nothing."""
    owner = await new_account(app)
    assert (await register_passkey(owner, authenticator)).status_code == 201
    [known] = authenticator.credentials.values()
    async with browser(app) as other_browser:
        other = await new_account(other_browser, "other")
        response = await register_passkey(other, SoftAuthenticator(), credential_id=known.credential_id)
        assert "already registered" in assert_problem(response, 400, "passkey_invalid")["detail"]
        assert await passkeys_of(other_browser) == []
    assert len(await passkeys_of(app)) == 1


async def test_rename_and_delete(app: httpx.AsyncClient, authenticator: SoftAuthenticator) -> None:
    account = await new_account(app)
    created = (await register_passkey(account, authenticator)).json()["passkey"]
    url = f"/api/v1/passkeys/{created['id']}"
    assert (await app.patch(url, json={"name": "Work key"})).status_code == 204
    assert [p["name"] for p in await passkeys_of(app)] == ["Work key"]
    assert_problem(await app.patch(url, json={"name": "   "}), 400, "invalid_request")
    assert_problem(await app.patch(url, json={"name": "x" * 101}), 400, "invalid_request")
    assert_problem(await app.patch("/api/v1/passkeys/nope", json={"name": "A"}), 404, "factor_not_found")
    async with browser(app) as stranger_browser:
        await new_account(stranger_browser, "stranger")
        assert_problem(await stranger_browser.patch(url, json={"name": "Mine"}), 404, "factor_not_found")
        assert_problem(await stranger_browser.delete(url), 404, "factor_not_found")
    assert [p["name"] for p in await passkeys_of(app)] == ["Work key"]
    assert (await app.delete(url)).status_code == 204  # the password is still there
    assert await passkeys_of(app) == []
    assert_problem(await app.delete(url), 404, "factor_not_found")
    kinds = await audit_kinds(app, account.user_id)
    assert "passkey_renamed" in kinds and "passkey_removed" in kinds


async def test_the_last_sign_in_method_cannot_be_deleted(app: httpx.AsyncClient) -> None:
    """A passkey-only account keeps at least one usable passkey."""
    account = await new_account(app)
    laptop, phone = SoftAuthenticator(), SoftAuthenticator()
    first = (await register_passkey(account, laptop, name="Laptop")).json()["passkey"]
    second = (await register_passkey(account, phone, name="Phone")).json()["passkey"]
    assert (await app.delete("/api/v1/password")).status_code == 204
    assert (await app.delete(f"/api/v1/passkeys/{first['id']}")).status_code == 204
    assert_problem(await app.delete(f"/api/v1/passkeys/{second['id']}"), 409, "last_sign_in_method")
    assert [p["id"] for p in await passkeys_of(app)] == [second["id"]]
    async with browser(app) as other:  # the account still signs in, with the passkey alone
        assert (await login(other, account.email)).status_code == 401
        assert_signed_in(await passkey_login(other, phone), aal="aal2", amr={"hwk", "user"})


async def test_a_blocked_passkey_does_not_count_as_a_way_to_sign_in(app: httpx.AsyncClient) -> None:
    """Deleting the last usable passkey of a passkey-only account is refused even if a blocked one
    (counter regression) remains: that one cannot sign in."""
    account = await new_account(app)
    good, cloned = SoftAuthenticator(), SoftAuthenticator()
    usable = (await register_passkey(account, good, name="Good")).json()["passkey"]
    blocked = (await register_passkey(account, cloned, name="Cloned", sign_count=5)).json()["passkey"]
    async with browser(app) as clone:
        await assert_refused(await passkey_login(clone, cloned, sign_count=3), clone, 400, "passkey_invalid")
    assert (await app.delete("/api/v1/password")).status_code == 204
    assert_problem(await app.delete(f"/api/v1/passkeys/{usable['id']}"), 409, "last_sign_in_method")
    assert (await app.delete(f"/api/v1/passkeys/{blocked['id']}")).status_code == 204
    assert_problem(await app.delete(f"/api/v1/passkeys/{usable['id']}"), 409, "last_sign_in_method")
    async with browser(app) as other:
        assert_signed_in(await passkey_login(other, good), aal="aal2", amr={"hwk"})


# --- sign-in ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("synced", "amr"), [(False, "hwk"), (True, "swk")], ids=["device-bound", "synced"])
async def test_sign_in_with_a_passkey_alone(
    app: httpx.AsyncClient, clock: FakeClock, synced: bool, amr: str
) -> None:
    account = await new_account(app)
    authenticator = SoftAuthenticator(synced=synced)
    registered = (await register_passkey(account, authenticator)).json()["passkey"]
    await let_time_pass(app, clock, 5)
    async with browser(app) as other:
        options = await passkey_options(other)
        assert options["rpId"] == "auth.threshold.test"
        assert options["userVerification"] == "required"
        assert not options.get("allowCredentials")  # discoverable: the authenticator picks the account
        credential = authenticator.get(options, sign_count=0 if synced else None)
        response = await other.post("/api/v1/login/passkey", json={"credential": credential})
        session = assert_signed_in(response, aal="aal2", amr={amr, "user"})
        assert "pwd" not in session["amr"] and ({"hwk", "swk"} - {amr}).isdisjoint(session["amr"])
        assert session["id"] != account.session_id
        me = (await other.get("/api/v1/session")).json()
        assert me["user"]["id"] == account.user_id and me["session"]["aal"] == "aal2"
        # a second sign-in works too (a synced passkey keeps reporting 0; a device-bound one counts up)
        again = await passkey_login(other, authenticator, sign_count=0 if synced else None)
        assert_signed_in(again, aal="aal2", amr={amr})
    stored = (await passkeys_of(app))[0]
    assert stored["id"] == registered["id"] and stored["last_used_at"] is not None
    assert stored["flagged"] is False


async def test_a_passkey_as_the_second_factor_after_a_password(
    app: httpx.AsyncClient, authenticator: SoftAuthenticator
) -> None:
    account = await new_account(app)
    assert (await register_passkey(account, authenticator)).status_code == 201
    async with browser(app) as other:
        assert await pending_login(other, account.email) == ["passkey", "recovery_code"]
        session = assert_signed_in(
            await passkey_login(other, authenticator), aal="aal2", amr={"pwd", "hwk", "user"}
        )
        me = (await other.get("/api/v1/session")).json()
        assert me["session"]["id"] == session["id"] and me["user"]["id"] == account.user_id
        assert "__Host-threshold_pending" not in other.cookies
    async with browser(app) as replayer:  # the pending login is spent: its cookie finishes nothing
        await pending_login(replayer, account.email)
        spent = replayer.cookies.get("__Host-threshold_pending")
        assert_signed_in(await passkey_login(replayer, authenticator), aal="aal2", amr={"pwd", "hwk"})
    async with browser(app) as thief:
        thief.cookies.set("__Host-threshold_pending", spent or "", domain="auth.threshold.test", path="/")
        code = account.recovery_codes[0]
        await assert_refused(await send_code(thief, "recovery_code", code), thief, 401, "flow_expired")


# --- refusals -----------------------------------------------------------------------------------------

Attack = Callable[
    [httpx.AsyncClient, httpx.AsyncClient, FakeClock, SoftAuthenticator], Awaitable[httpx.Response]
]


async def _post_assertion(client: httpx.AsyncClient, credential: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/v1/login/passkey", json={"credential": credential})


async def _wrong_origin(app: Any, client: Any, clock: Any, auth: SoftAuthenticator) -> httpx.Response:
    return await passkey_login(client, auth, origin="https://auth.threshold.test.evil.example")


async def _wrong_rp_id(app: Any, client: Any, clock: Any, auth: SoftAuthenticator) -> httpx.Response:
    return await passkey_login(client, auth, rp_id="threshold.test")


async def _no_user_verification(app: Any, client: Any, clock: Any, auth: SoftAuthenticator) -> httpx.Response:
    return await passkey_login(client, auth, user_verified=False)


async def _wrong_ceremony_type(app: Any, client: Any, clock: Any, auth: SoftAuthenticator) -> httpx.Response:
    return await passkey_login(client, auth, client_data_type="webauthn.create")


async def _unknown_credential(app: Any, client: Any, clock: Any, auth: SoftAuthenticator) -> httpx.Response:
    stranger = SoftAuthenticator().new_credential(user_handle=b"someone")
    return await passkey_login(client, auth, credential=stranger)


async def _forged_signature(app: Any, client: Any, clock: Any, auth: SoftAuthenticator) -> httpx.Response:
    """The registered credential id, signed with a key that is not the registered one."""
    real = next(iter(auth.credentials.values()))
    impostor = Credential(
        credential_id=real.credential_id,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        rp_id=real.rp_id,
        user_handle=real.user_handle,
        sign_count=real.sign_count,
    )
    return await passkey_login(client, auth, credential=impostor)


async def _replayed(app: Any, client: Any, clock: Any, auth: SoftAuthenticator) -> httpx.Response:
    async with browser(app) as victim:
        assert (await passkey_login(victim, auth)).status_code == 200
    assert auth.last_response is not None
    return await _post_assertion(client, auth.last_response)  # the same response again


async def _expired(app: Any, client: Any, clock: FakeClock, auth: SoftAuthenticator) -> httpx.Response:
    options = await passkey_options(client)
    await let_time_pass(app, clock, 301)  # webauthn.challenge_lifetime is 300
    return await _post_assertion(client, auth.get(options))


async def _registration_challenge(
    app: Any, client: Any, clock: Any, auth: SoftAuthenticator
) -> httpx.Response:
    options = await passkey_options(app, "/api/v1/passkeys/options")  # issued for a registration
    login_shaped = {"challenge": options["challenge"], "rpId": options["rp"]["id"]}
    return await _post_assertion(client, auth.get(login_shaped))


async def _made_up_challenge(app: Any, client: Any, clock: Any, auth: SoftAuthenticator) -> httpx.Response:
    from tests.mfa.authenticator import b64url

    return await _post_assertion(client, auth.get({"challenge": b64url(b"\x01" * 32), "rpId": auth.rp_id}))


ATTACKS: dict[str, tuple[Attack, str]] = {
    "wrong_origin": (_wrong_origin, "passkey_invalid"),
    "wrong_rp_id": (_wrong_rp_id, "passkey_invalid"),
    "no_user_verification": (_no_user_verification, "passkey_invalid"),
    "wrong_ceremony_type": (_wrong_ceremony_type, "passkey_invalid"),
    "unknown_credential": (_unknown_credential, "passkey_invalid"),
    "forged_signature": (_forged_signature, "passkey_invalid"),
    "replayed_assertion": (_replayed, "challenge_expired"),
    "expired_challenge": (_expired, "challenge_expired"),
    "registration_challenge": (_registration_challenge, "challenge_expired"),
    "made_up_challenge": (_made_up_challenge, "challenge_expired"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_bad_assertion_is_refused_without_a_session(
    app: httpx.AsyncClient, clock: FakeClock, authenticator: SoftAuthenticator, attack: str
) -> None:
    account = await new_account(app)
    assert (await register_passkey(account, authenticator)).status_code == 201
    make, code = ATTACKS[attack]
    async with browser(app) as attacker:
        response = await make(app, attacker, clock, authenticator)
        await assert_refused(response, attacker, 400, code)
    # the genuine authenticator still works afterwards (the refusal was about the response)
    async with browser(app) as owner:
        assert_signed_in(await passkey_login(owner, authenticator), aal="aal2", amr={"hwk"})


async def test_a_bad_assertion_as_second_factor_leaves_no_session(
    app: httpx.AsyncClient, authenticator: SoftAuthenticator
) -> None:
    account = await new_account(app)
    assert (await register_passkey(account, authenticator)).status_code == 201
    async with browser(app) as other:
        await pending_login(other, account.email)
        response = await passkey_login(other, authenticator, origin="https://evil.example")
        await assert_refused(response, other, 400, "passkey_invalid")
        # still pending: the genuine assertion completes it
        assert_signed_in(await passkey_login(other, authenticator), aal="aal2", amr={"pwd", "hwk"})


async def test_another_users_passkey_cannot_finish_this_users_sign_in(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    victim = await new_account(app, "victim")
    await enrol_totp(victim, clock)
    async with browser(app) as attacker_browser:
        attacker = await new_account(attacker_browser, "attacker")
        attacker_key = SoftAuthenticator()
        assert (await register_passkey(attacker, attacker_key)).status_code == 201
    async with browser(app) as shared:
        await pending_login(shared, victim.email)  # knows the victim's password, not the factor
        response = await passkey_login(shared, attacker_key)
        await assert_refused(response, shared, 400, "passkey_invalid")
        assert "__Host-threshold_session" not in shared.cookies


async def test_counter_regression_blocks_the_passkey_and_is_audited(
    app: httpx.AsyncClient, authenticator: SoftAuthenticator
) -> None:
    account = await new_account(app)
    assert (await register_passkey(account, authenticator, sign_count=5)).status_code == 201
    async with browser(app) as clone:
        response = await passkey_login(clone, authenticator, sign_count=3)
        await assert_refused(response, clone, 400, "passkey_invalid")
    [passkey] = await passkeys_of(app)
    assert passkey["flagged"] is True
    events = await app.services.audit_log.list_for_user(account.user_id)  # type: ignore[attr-defined]
    regression = [e for e in events if e.kind.value == "passkey_counter_regression"]
    assert regression and regression[0].detail["stored"] == "5" and regression[0].detail["presented"] == "3"
    async with browser(app) as genuine:  # even a counter that goes up again is refused now
        await assert_refused(
            await passkey_login(genuine, authenticator, sign_count=50), genuine, 400, "passkey_invalid"
        )
    account_page = await app.get("/account")
    assert "blocked: possible clone" in account_page.text


async def test_an_equal_non_zero_counter_is_a_regression(app: httpx.AsyncClient) -> None:
    account = await new_account(app)
    counting = SoftAuthenticator()
    assert (await register_passkey(account, counting, sign_count=7)).status_code == 201
    async with browser(app) as other:
        await assert_refused(
            await passkey_login(other, counting, sign_count=7), other, 400, "passkey_invalid"
        )
    assert (await passkeys_of(app))[0]["flagged"] is True


async def test_registration_refusals(app: httpx.AsyncClient) -> None:
    """Wrong origin, RP id, ceremony type or no user verification: nothing is registered."""
    account = await new_account(app)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"origin": "https://evil.example"}, "passkey_invalid"),
        ({"rp_id": "evil.example"}, "passkey_invalid"),
        ({"user_verified": False}, "passkey_invalid"),
        ({"client_data_type": "webauthn.get"}, "passkey_invalid"),
    ]
    for create, code in cases:
        response = await register_passkey(account, SoftAuthenticator(), **create)
        assert_problem(response, 400, code)
    options = await passkey_options(app, "/api/v1/passkeys/options")
    good = SoftAuthenticator().create(options)
    assert (await app.post("/api/v1/passkeys", json={"credential": good})).status_code == 201
    replay = await app.post("/api/v1/passkeys", json={"credential": good})
    assert_problem(replay, 400, "challenge_expired")
    assert len(await passkeys_of(app)) == 1


async def test_a_registration_challenge_belongs_to_its_user(app: httpx.AsyncClient) -> None:
    await new_account(app, "alice")
    options = await passkey_options(app, "/api/v1/passkeys/options")
    async with browser(app) as mallory_browser:
        await new_account(mallory_browser, "mallory")
        credential = SoftAuthenticator().create(options)  # alice's challenge, mallory's session
        response = await mallory_browser.post("/api/v1/passkeys", json={"credential": credential})
        assert_problem(response, 400, "challenge_expired")
        assert await passkeys_of(mallory_browser) == []
