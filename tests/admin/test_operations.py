"""What an operator does through /admin/v1 with a threshold:admin service token: clients, users, keys."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from tests.admin.helpers import Admin, bearer, client_credentials, make_admin, services_of
from tests.api.helpers import USER_AGENT, browser
from tests.conftest import login, signup, unique_email
from threshold.core.accounts import OPERATOR
from threshold.core.models import AuditKind


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Admin:
    return await make_admin(client)


# --- clients --------------------------------------------------------------------------------------


async def test_a_created_client_gets_its_secret_once(admin: Admin) -> None:
    response = await admin.post(
        "/clients",
        {"name": "reporting", "grant_types": ["client_credentials"], "scopes": ["reports:read"]},
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret, client_id = created["client_secret"], created["client_id"]
    assert len(secret) >= 32
    assert created["grant_types"] == ["client_credentials"]
    assert created["token_endpoint_auth_method"] == "client_secret_basic"

    one = await admin.get(f"/clients/{client_id}")
    assert one.status_code == 200
    assert "client_secret" not in one.json()
    assert {k: v for k, v in created.items() if k != "client_secret"} == one.json()
    listing = await admin.get("/clients")
    assert client_id in [c["client_id"] for c in listing.json()["clients"]]
    for body in (one.text, listing.text):
        assert secret not in body

    # the secret shown once is the one that works
    token = await admin.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "reports:read"
    wrong = await admin.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret[:-2] + "xx")
    )
    assert wrong.status_code == 401


async def test_a_public_client_has_no_secret(admin: Admin) -> None:
    response = await admin.post(
        "/clients",
        {
            "name": "spa",
            "public": True,
            "redirect_uris": ["https://spa.example.test/cb"],
            "scopes": ["openid"],
        },
    )
    assert response.status_code == 201, response.text
    assert response.json().get("client_secret") is None
    assert response.json()["token_endpoint_auth_method"] == "none"


PRIVATE_EC = dict(ECKey.generate_key("P-256").as_dict(private=True))
BAD_CLIENTS: list[tuple[str, dict[str, Any]]] = [
    ("javascript-uri", {"redirect_uris": ["javascript:alert(document.cookie)"]}),
    ("data-uri", {"redirect_uris": ["data:text/html,<script>alert(1)</script>"]}),
    ("http-not-loopback", {"redirect_uris": ["http://app.example.test/cb"]}),
    ("fragment", {"redirect_uris": ["https://app.example.test/cb#frag"]}),
    ("no-host", {"redirect_uris": ["https:///cb"]}),
    ("relative", {"redirect_uris": ["/callback"]}),
    (
        "bad-logout-uri",
        {"redirect_uris": ["https://a.test/cb"], "post_logout_redirect_uris": ["javascript:x"]},
    ),
    ("code-without-redirect", {"grant_types": ["authorization_code"]}),
    ("unknown-grant", {"grant_types": ["password"], "redirect_uris": ["https://a.test/cb"]}),
    ("implicit-grant", {"grant_types": ["implicit"], "redirect_uris": ["https://a.test/cb"]}),
    ("public-client-credentials", {"public": True, "grant_types": ["client_credentials"]}),
    (
        "public-with-secret",
        {
            "public": True,
            "redirect_uris": ["https://a.test/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
    ),
    (
        "confidential-without-auth",
        {"redirect_uris": ["https://a.test/cb"], "token_endpoint_auth_method": "none"},
    ),
    ("unknown-auth-method", {"redirect_uris": ["https://a.test/cb"], "token_endpoint_auth_method": "magic"}),
    (
        "private-key-jwt-without-jwks",
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"},
    ),
    ("jwks-with-private-key", {"grant_types": ["client_credentials"], "jwks": {"keys": [PRIVATE_EC]}}),
    (
        "jwks-with-shared-secret",
        {"grant_types": ["client_credentials"], "jwks": {"keys": [{"kty": "oct", "k": "A" * 43}]}},
    ),
    ("jwks-garbage", {"grant_types": ["client_credentials"], "jwks": {"keys": "nope"}}),
    ("hmac-signing", {"grant_types": ["client_credentials"], "signing_alg": "HS256"}),
    ("none-signing", {"grant_types": ["client_credentials"], "signing_alg": "none"}),
    ("lifetime-too-short", {"grant_types": ["client_credentials"], "access_token_lifetime": 5}),
    ("lifetime-too-long", {"grant_types": ["client_credentials"], "access_token_lifetime": 86400}),
    ("empty-name", {"name": "", "grant_types": ["client_credentials"]}),
    ("name-not-text", {"name": 42, "grant_types": ["client_credentials"]}),
    ("uris-not-a-list", {"redirect_uris": "https://a.test/cb"}),
    ("public-not-bool", {"public": "yes", "redirect_uris": ["https://a.test/cb"]}),
    ("too-many-grants", {"grant_types": ["client_credentials"] * 4}),
]


async def test_invalid_clients_are_refused_with_a_4xx_and_not_created(admin: Admin) -> None:
    provider = services_of(admin.http).provider
    before = len(await provider.list_clients())
    wrong: list[tuple[str, int]] = []
    for case, fields in BAD_CLIENTS:
        response = await admin.post("/clients", {"name": f"bad-{case}", **fields})
        if not 400 <= response.status_code < 500 or "client_secret" in response.text:
            wrong.append((case, response.status_code))
    assert not wrong, f"accepted or crashed: {wrong}"
    assert len(await provider.list_clients()) == before


async def test_a_body_that_is_not_a_client_is_refused_with_a_4xx(admin: Admin) -> None:
    for content in (b"not json", b"[]", b'{"name": "x"', b"null"):
        response = await admin.http.post(
            "/admin/v1/clients",
            content=content,
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500, (content, response.status_code, response.text)


async def test_clients_are_listed_read_and_deleted(admin: Admin) -> None:
    created = await admin.post(
        "/clients", {"name": "batch", "grant_types": ["client_credentials"], "scopes": ["a"]}
    )
    client_id, secret = created.json()["client_id"], created.json()["client_secret"]
    listed = (await admin.get("/clients")).json()["clients"]
    assert {c["client_id"] for c in listed} == {client_id, admin.issued.client.client_id}
    assert (await admin.get(f"/clients/{client_id}")).json()["name"] == "batch"

    deleted = await admin.delete(f"/clients/{client_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await admin.get(f"/clients/{client_id}")).status_code == 404
    assert (await admin.delete(f"/clients/{client_id}")).status_code == 404
    assert client_id not in [c["client_id"] for c in (await admin.get("/clients")).json()["clients"]]
    token = await admin.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert token.status_code == 401
    assert token.json()["error"] == "invalid_client"
    assert (await admin.get("/clients/no-such-client")).status_code == 404
    assert (await admin.get(f"/clients/{'x' * 5000}")).status_code == 404


APP_CALLBACK = "https://app.example.test/callback"


async def test_a_client_is_updated_in_place(admin: Admin) -> None:
    created = await admin.post(
        "/clients",
        {
            "name": "web app",
            "redirect_uris": ["https://app.example.test/calback"],  # the typo to fix
            "post_logout_redirect_uris": ["https://app.example.test/bye"],
        },
    )
    assert created.status_code == 201, created.text
    client_id, secret = created.json()["client_id"], created.json()["client_secret"]

    fixed = await admin.patch(f"/clients/{client_id}", {"redirect_uris": [APP_CALLBACK]})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["client_id"] == client_id
    assert fixed.json()["redirect_uris"] == [APP_CALLBACK]
    assert "client_secret" not in fixed.json()

    edited = await admin.patch(
        f"/clients/{client_id}",
        {
            "name": "Web app",
            "first_party": True,
            "add_redirect_uris": ["http://127.0.0.1:8080/cb", APP_CALLBACK],  # present already: kept once
            "remove_post_logout_redirect_uris": ["https://app.example.test/bye"],
            "add_post_logout_redirect_uris": ["https://app.example.test/signed-out"],
        },
    )
    assert edited.status_code == 200, edited.text
    read = (await admin.get(f"/clients/{client_id}")).json()
    assert read == edited.json()
    assert read["name"] == "Web app" and read["first_party"] is True
    assert read["redirect_uris"] == [APP_CALLBACK, "http://127.0.0.1:8080/cb"]
    assert read["post_logout_redirect_uris"] == ["https://app.example.test/signed-out"]
    changed = {"client_secret", "name", "first_party", "redirect_uris", "post_logout_redirect_uris"}
    assert {k: v for k, v in read.items() if k not in changed} == {
        k: v for k, v in created.json().items() if k not in changed
    }

    removed = await admin.patch(
        f"/clients/{client_id}", {"remove_redirect_uris": ["http://127.0.0.1:8080/cb"], "first_party": False}
    )
    assert removed.json()["redirect_uris"] == [APP_CALLBACK] and removed.json()["first_party"] is False
    assert (await admin.patch(f"/clients/{client_id}", {})).json() == removed.json()

    # the secret is untouched: the client still authenticates with it (revocation answers 200 to it)
    revoke = await admin.http.post("/oauth2/revoke", data={"token": "unknown"}, auth=(client_id, secret))
    assert revoke.status_code == 200, revoke.text


BAD_UPDATES: list[tuple[str, dict[str, Any]]] = [
    ("http-not-loopback", {"redirect_uris": ["http://app.example.test/cb"]}),
    ("add-http-not-loopback", {"add_redirect_uris": ["http://app.example.test/cb"]}),
    ("javascript-uri", {"add_redirect_uris": ["javascript:alert(document.cookie)"]}),
    ("fragment", {"redirect_uris": ["https://app.example.test/cb#frag"]}),
    ("relative", {"redirect_uris": ["/callback"]}),
    ("bad-logout-uri", {"add_post_logout_redirect_uris": ["data:text/html,x"]}),
    ("no-redirect-left", {"redirect_uris": []}),
    ("remove-the-last", {"remove_redirect_uris": [APP_CALLBACK]}),
    ("remove-unregistered", {"remove_redirect_uris": ["https://app.example.test/other"]}),
    ("replace-and-add", {"redirect_uris": [APP_CALLBACK], "add_redirect_uris": ["https://a.test/cb"]}),
    ("empty-name", {"name": ""}),
    ("long-name", {"name": "x" * 201}),
    ("name-not-text", {"name": 42}),
    ("first-party-not-bool", {"first_party": "yes"}),
    ("uris-not-a-list", {"redirect_uris": APP_CALLBACK}),
    ("too-many-uris", {"redirect_uris": [f"https://a.test/{i}" for i in range(21)]}),
    ("misspelt-field", {"redirect_uri": ["https://app.example.test/new"]}),
    ("not-patchable", {"public": True}),
    ("secret-by-patch", {"client_secret": "chosen-by-the-caller"}),
]


async def test_invalid_updates_are_refused_with_a_4xx_and_change_nothing(admin: Admin) -> None:
    created = await admin.post("/clients", {"name": "web", "redirect_uris": [APP_CALLBACK]})
    client_id = created.json()["client_id"]
    before = (await admin.get(f"/clients/{client_id}")).json()
    wrong: list[tuple[str, int]] = []
    for case, fields in BAD_UPDATES:
        response = await admin.patch(f"/clients/{client_id}", fields)
        if not 400 <= response.status_code < 500:
            wrong.append((case, response.status_code))
    assert not wrong, f"accepted or crashed: {wrong}"
    assert (await admin.get(f"/clients/{client_id}")).json() == before

    http_off_loopback = await admin.patch(f"/clients/{client_id}", {"redirect_uris": ["http://a.test/cb"]})
    assert "loopback" in http_off_loopback.text
    assert (await admin.patch("/clients/no-such-client", {"name": "x"})).status_code == 404
    assert (await admin.patch(f"/clients/{'x' * 5000}", {"name": "x"})).status_code == 404


async def test_a_rotated_secret_is_shown_once_and_the_old_one_stops_working_at_once(admin: Admin) -> None:
    created = await admin.post("/clients", {"name": "batch", "grant_types": ["client_credentials"]})
    client_id, old = created.json()["client_id"], created.json()["client_secret"]

    async def token(secret: str) -> httpx.Response:
        return await admin.http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )

    assert (await token(old)).status_code == 200  # and the client is now in the process's cache
    rotated = await admin.post(f"/clients/{client_id}/secret")
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new = rotated.json()["client_secret"]
    assert len(new) >= 32 and new != old
    assert {k: v for k, v in rotated.json().items() if k != "client_secret"} == {
        k: v for k, v in created.json().items() if k != "client_secret"
    }

    refused = await token(old)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert (await token(new)).status_code == 200
    for body in ((await admin.get(f"/clients/{client_id}")).text, (await admin.get("/clients")).text):
        assert new not in body

    public = await admin.post(
        "/clients", {"name": "spa", "public": True, "redirect_uris": ["https://spa.example.test/cb"]}
    )
    no_secret = await admin.post(f"/clients/{public.json()['client_id']}/secret")
    assert no_secret.status_code == 400 and "client_secret" not in no_secret.json()
    assert (await admin.post("/clients/no-such-client/secret")).status_code == 404


# --- users ----------------------------------------------------------------------------------------


async def test_users_are_listed_without_secrets(admin: Admin) -> None:
    emails = [unique_email("listed") for _ in range(3)]
    ids = []
    for email in emails:
        async with browser(admin.http) as user:
            response = await signup(user, email)
            assert response.status_code == 201, response.text
            ids.append(response.json()["user"]["id"])
    response = await admin.get("/users")
    assert response.status_code == 200
    users = {u["id"]: u for u in response.json()["users"]}
    assert set(ids) <= set(users)
    for user_id, email in zip(ids, emails, strict=True):
        assert users[user_id]["email"] == email
        assert users[user_id]["disabled"] is False
        assert set(users[user_id]) == {"id", "email", "email_verified", "disabled", "created_at"}
    assert "$argon2" not in response.text and "password" not in response.text
    assert len((await admin.get("/users?limit=1")).json()["users"]) == 1
    assert (await admin.get("/users?limit=-5&offset=-1")).status_code == 200
    assert (await admin.get("/users?limit=abc")).status_code == 400


async def test_revoking_a_users_sessions_signs_them_out_at_once_and_is_audited(admin: Admin) -> None:
    email = unique_email("revoked")
    async with browser(admin.http) as laptop, browser(admin.http, ip="198.51.100.40") as phone:
        user_id = (await signup(laptop, email)).json()["user"]["id"]
        assert (await login(phone, email)).status_code == 200
        for device in (laptop, phone):
            assert (await device.get("/api/v1/session")).status_code == 200

        response = await admin.post(f"/users/{email}/revoke-sessions")
        assert response.status_code == 200, response.text
        assert response.json()["sessions_revoked"] == 2
        for device in (laptop, phone):
            assert (await device.get("/api/v1/session")).status_code == 401

        assert (await login(laptop, email)).status_code == 200  # the account itself is untouched
        by_id = await admin.post(f"/users/{user_id}/revoke-sessions")
        assert by_id.json()["sessions_revoked"] == 1
        assert (await laptop.get("/api/v1/session")).status_code == 401

    events = await services_of(admin.http).audit_log.list_for_user(user_id, limit=50)
    revoked = [e for e in events if e.kind is AuditKind.SESSIONS_REVOKED]
    assert len(revoked) == 2
    for event in revoked:
        assert event.ip == "203.0.113.7"
        assert event.user_agent == f"admin-api client={admin.issued.client.client_id}"
        assert USER_AGENT not in (event.user_agent or "")
    assert (await admin.post("/users/nobody@example.com/revoke-sessions")).status_code == 404


async def test_disabling_a_user_ends_their_sessions_until_enabled(admin: Admin) -> None:
    email = unique_email("disabled")
    async with browser(admin.http) as user:
        user_id = (await signup(user, email)).json()["user"]["id"]
        disabled = await admin.post(f"/users/{email}/disable")
        assert disabled.status_code == 200, disabled.text
        assert disabled.json() == {"disabled": True, "sessions_revoked": 1}
        assert (await user.get("/api/v1/session")).status_code == 401
        assert (await login(user, email)).status_code in (401, 403)
        listed = {u["id"]: u for u in (await admin.get("/users")).json()["users"]}
        assert listed[user_id]["disabled"] is True

        enabled = await admin.post(f"/users/{user_id}/enable")
        assert enabled.status_code == 200
        assert enabled.json() == {"disabled": False}
        assert (await login(user, email)).status_code == 200
        assert (await user.get("/api/v1/session")).status_code == 200

    kinds = [e.kind for e in await services_of(admin.http).audit_log.list_for_user(user_id, limit=50)]
    assert AuditKind.USER_DISABLED in kinds and AuditKind.USER_ENABLED in kinds
    assert (await admin.post("/users/nobody@example.com/disable")).status_code == 404


# --- signing keys ---------------------------------------------------------------------------------


def kid_of(token: str) -> str:
    kid: str = jws.extract_compact(token.encode()).headers()["kid"]
    return kid


async def published_kids(http: httpx.AsyncClient) -> set[str]:
    response = await http.get("/oauth2/jwks")
    assert response.status_code == 200
    return {k["kid"] for k in response.json()["keys"]}


def states(keys: list[dict[str, Any]], alg: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {"next": [], "active": [], "retired": []}
    for key in keys:
        if key["alg"] == alg:
            result[key["state"]].append(key["kid"])
    return result


async def test_keys_are_listed_and_rotation_publishes_the_new_next_key(admin: Admin) -> None:
    listed = await admin.get("/keys")
    assert listed.status_code == 200
    keys = listed.json()["keys"]
    assert "private_jwk" not in listed.text and '"d"' not in listed.text
    for alg in ("Ed25519", "ES256", "RS256"):
        assert len(states(keys, alg)["active"]) == 1 and len(states(keys, alg)["next"]) == 1, keys
    before = states(keys, "Ed25519")
    assert kid_of(admin.token) == before["active"][0]

    rotated = await admin.post("/keys/rotate?alg=Ed25519")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json() == {"activated": before["next"]}
    after = states((await admin.get("/keys")).json()["keys"], "Ed25519")
    assert after["active"] == before["next"]
    assert after["retired"] == before["active"]
    assert len(after["next"]) == 1 and after["next"] != before["next"]
    es_before, es_after = states(keys, "ES256"), states((await admin.get("/keys")).json()["keys"], "ES256")
    assert es_after == es_before  # only the asked-for algorithm moved

    jwks = await published_kids(admin.http)
    assert set(after["next"]) | set(after["active"]) | set(after["retired"]) <= jwks

    new_token = (await client_credentials(admin.http, admin.issued)).json()["access_token"]
    assert kid_of(new_token) == after["active"][0]
    assert (await admin.get("/keys")).status_code == 200  # the old token: its retired key is published
    assert (await admin.http.get("/admin/v1/keys", headers=bearer(new_token))).status_code == 200

    everything = await admin.post("/keys/rotate")
    assert everything.status_code == 200
    assert len(everything.json()["activated"]) == 3
    assert (await admin.post("/keys/rotate?alg=HS256")).status_code == 400
    assert (await admin.post("/keys/rotate?alg=none")).status_code == 400


async def test_deleting_a_user_locks_them_out_now_and_erases_after_the_grace_or_at_once(admin: Admin) -> None:
    later, now = unique_email("leaving"), unique_email("gone")
    async with browser(admin.http) as laptop, browser(admin.http, ip="198.51.100.41") as phone:
        user_id = (await signup(laptop, later)).json()["user"]["id"]
        gone_id = (await signup(phone, now)).json()["user"]["id"]

        scheduled = await admin.delete(f"/users/{later}")
        assert scheduled.status_code == 202, scheduled.text
        assert scheduled.json()["status"] == "scheduled"
        assert (await laptop.get("/api/v1/session")).status_code == 401
        assert (await login(laptop, later)).json()["status"] == "deletion_scheduled"  # it can still be kept

        erased = await admin.delete(f"/users/{gone_id}?immediately=true")
        assert erased.status_code == 202, erased.text
        assert erased.json()["status"] == "erased"
        assert (await phone.get("/api/v1/session")).status_code == 401
        assert (await login(phone, now)).status_code == 401
    assert await services_of(admin.http).users.get(gone_id) is None
    assert (await admin.delete("/users/nobody@example.com")).status_code == 404
    events = await services_of(admin.http).audit_log.list_for_user(user_id, limit=50)
    requested = [e for e in events if e.kind is AuditKind.ACCOUNT_DELETION_REQUESTED]
    assert [e.detail["by"] for e in requested] == [f"admin-api client={admin.issued.client.client_id}"]


async def test_the_last_operator_with_console_access_is_not_deleted(admin: Admin) -> None:
    services = services_of(admin.http)
    email = unique_email("sole-operator")
    async with browser(admin.http) as laptop:
        await signup(laptop, email)
        user = await services.accounts.find_user(email)
        await services.console.grant(user, by="test", context=OPERATOR)
        refused = await admin.delete(f"/users/{email}?immediately=true")
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "last_operator"
        assert (await laptop.get("/api/v1/session")).status_code == 200  # nothing happened
