"""What an operator does in the console, each through its form as a browser posts it: the change is made
by the same operation the CLI and the admin API use, and its audit events name the operator."""

from __future__ import annotations

import re

import httpx

from tests.api.helpers import FakeClock
from tests.console.helpers import ConsoleUser, account_of, events_of, new_person, services_of
from threshold.core.accounts import OPERATOR
from threshold.core.console import PAGE_SIZE
from threshold.core.models import AuditEvent


def named(operator: ConsoleUser, events: list[AuditEvent]) -> None:
    assert events, "no audit event"
    for event in events:
        assert event.detail.get("actor") == f"console:{operator.user_id}", event


def done(response: httpx.Response, what: str) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith(f"done={what}"), response.headers["location"]


def secret_on(page: str) -> str:
    found = re.search(r'<p class="secret"[^>]*>([^<]+)</p>', page)
    assert found, page
    return found.group(1)


async def test_disable_and_enable_an_account(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    done(await operator.post(f"/admin/users/{person.user_id}/disable"), "disabled")
    assert (await account_of(app, person.user_id)).disabled
    assert (await person.browser.get("/api/v1/session")).status_code == 401  # its session ended at once
    named(operator, await events_of(app, person.user_id, "user_disabled"))
    named(operator, await events_of(app, person.user_id, "access_revoked"))
    page = await operator.get(f"/admin/users/{person.user_id}", done="disabled")
    assert "The account is disabled" in page.text and "Enable the account" in page.text
    done(await operator.post(f"/admin/users/{person.user_id}/enable"), "enabled")
    assert not (await account_of(app, person.user_id)).disabled
    named(operator, await events_of(app, person.user_id, "user_enabled"))


async def test_an_operator_cannot_disable_their_own_account(
    app: httpx.AsyncClient, operator: ConsoleUser
) -> None:
    response = await operator.post(f"/admin/users/{operator.user_id}/disable")
    assert response.status_code == 400
    assert "your own account" in response.text
    assert not (await account_of(app, operator.user_id)).disabled


async def test_end_one_session_then_every_session(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    services = services_of(app)
    from tests.api.helpers import browser
    from tests.conftest import login

    second = browser(app)
    assert (await login(second, person.account.email)).status_code == 200
    sessions = await services.sessions.list_sessions(person.user_id)
    assert len(sessions) == 2
    first_id = (await person.browser.get("/api/v1/session")).json()["session"]["id"]
    page = await operator.get(f"/admin/users/{person.user_id}")
    assert f"/sessions/{first_id}/end" in page.text
    done(await operator.post(f"/admin/users/{person.user_id}/sessions/{first_id}/end"), "session_ended")
    assert (await person.browser.get("/api/v1/session")).status_code == 401
    assert (await second.get("/api/v1/session")).status_code == 200
    done(await operator.post(f"/admin/users/{person.user_id}/sessions/end-all"), "sessions_ended")
    assert (await second.get("/api/v1/session")).status_code == 401
    assert await services.sessions.list_sessions(person.user_id) == []
    named(operator, await events_of(app, person.user_id, "session_revoked"))
    named(operator, await events_of(app, person.user_id, "sessions_revoked"))
    missing = await operator.post(f"/admin/users/{person.user_id}/sessions/nosuchsession/end")
    assert missing.status_code == 404


async def test_require_a_second_factor_and_lift_it(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    done(await operator.post(f"/admin/users/{person.user_id}/mfa", {"required": "on"}), "mfa_required")
    assert (await account_of(app, person.user_id)).mfa_required
    done(await operator.post(f"/admin/users/{person.user_id}/mfa", {"required": "off"}), "mfa_optional")
    assert not (await account_of(app, person.user_id)).mfa_required
    named(operator, await events_of(app, person.user_id, "mfa_policy_changed"))
    bad = await operator.post(f"/admin/users/{person.user_id}/mfa", {"required": "maybe"})
    assert bad.status_code == 400 and "Choose whether" in bad.text


async def test_operator_approved_recovery_with_its_waiting_period(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    services = services_of(app)
    user = await account_of(app, person.user_id)
    refused = await operator.post(f"/admin/users/{person.user_id}/recovery", {"wait_hours": "-3"})
    assert refused.status_code == 400 and "24 to 720 hours" in refused.text
    assert await services.recovery.pending_recovery(user) == []
    done(
        await operator.post(f"/admin/users/{person.user_id}/recovery", {"wait_hours": "48"}),
        "recovery_started",
    )
    (pending,) = await services.recovery.pending_recovery(user)
    assert abs(pending.execute_after - (clock.now() + 48 * 3600)) < 5
    assert pending.requested_by == "an operator"  # what the person is shown; the audit names who
    named(operator, await events_of(app, person.user_id, "recovery_requested"))
    page = await operator.get(f"/admin/users/{person.user_id}")
    assert "Recovery pending" in page.text
    done(
        await operator.post(f"/admin/users/{person.user_id}/recovery/{pending.id}/cancel"),
        "recovery_cancelled",
    )
    assert await services.recovery.pending_recovery(user) == []
    named(operator, await events_of(app, person.user_id, "recovery_cancelled"))


async def test_register_edit_rotate_and_delete_a_client(
    app: httpx.AsyncClient, operator: ConsoleUser
) -> None:
    services = services_of(app)
    bad = await operator.post("/admin/clients", {"name": "Shop", "redirect_uris": "http://shop.example/cb"})
    assert bad.status_code == 400  # plain http off loopback: refused by the rules of registration
    assert await services.provider.list_clients() == []
    created = await operator.post(
        "/admin/clients",
        {
            "name": "Shop",
            "kind": "confidential",
            "redirect_uris": "https://shop.example/cb\n\n",
            "first_party": "on",
            "deletion_event_uri": "https://shop.example/events",
        },
    )
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    secret = secret_on(created.text)
    (client,) = await services.provider.list_clients()
    assert client.redirect_uris == ("https://shop.example/cb",) and client.first_party
    assert client.deletion_event_uri == "https://shop.example/events"
    token_call = {"grant_type": "client_credentials"}
    assert (
        await app.post("/oauth2/token", data=token_call, auth=(client.client_id, secret))
    ).status_code != 401
    detail = await operator.get(f"/admin/clients/{client.client_id}")
    assert secret not in detail.text  # shown once
    assert 'value="https://shop.example/events"' in detail.text
    edited = await operator.post(
        f"/admin/clients/{client.client_id}",
        {"name": "Shop 2", "redirect_uris": "https://shop.example/cb\nhttps://shop.example/cb2"},
    )
    done(edited, "client_updated")
    changed = await services.provider.get_client(client.client_id)
    assert changed is not None and changed.name == "Shop 2" and not changed.first_party
    assert changed.redirect_uris == ("https://shop.example/cb", "https://shop.example/cb2")
    assert changed.deletion_event_uri is None  # the form's empty field takes it away
    rotated = await operator.post(f"/admin/clients/{client.client_id}/secret")
    assert rotated.status_code == 200
    new_secret = secret_on(rotated.text)
    assert new_secret != secret
    assert (
        await app.post("/oauth2/token", data=token_call, auth=(client.client_id, secret))
    ).status_code == 401
    assert (
        await app.post("/oauth2/token", data=token_call, auth=(client.client_id, new_secret))
    ).status_code != 401
    done(await operator.post(f"/admin/clients/{client.client_id}/delete"), "client_deleted")
    assert await services.provider.get_client(client.client_id) is None
    for kind in ("client_created", "client_updated", "client_deleted"):
        named(operator, await events_of(app, kind=kind))


async def test_rotate_the_signing_keys(app: httpx.AsyncClient, operator: ConsoleUser) -> None:
    ring = services_of(app).provider.keys
    await ring.ensure_keys()
    before = {k.kid for k in await ring.keys() if k.state.value == "active"}
    done(await operator.post("/admin/keys/rotate"), "keys_rotated")
    after = {k.kid for k in await ring.keys() if k.state.value == "active"}
    assert before and after and not before & after
    named(operator, await events_of(app, kind="keys_rotated"))
    page = await operator.get("/admin/keys")
    for kid in before | after:
        assert kid in page.text


async def test_organizations_domains_and_scim_tokens(app: httpx.AsyncClient, operator: ConsoleUser) -> None:
    services = services_of(app)
    done(await operator.post("/admin/orgs", {"name": "Acme Corp", "slug": "acme"}), "org_created")
    org = await services.orgs.find("acme")
    taken = await operator.post("/admin/orgs", {"name": "Acme again", "slug": "acme"})
    assert taken.status_code in (400, 409) and "alert" in taken.text
    done(await operator.post("/admin/orgs/acme/domains", {"domain": "acme.example"}), "domain_added")
    (claim,) = await services.orgs.domains(org)
    page = await operator.get("/admin/orgs/acme")
    assert claim.txt_value in page.text and claim.txt_name in page.text
    done(
        await operator.post("/admin/orgs/acme/domains/acme.example/verify", {"trust": "on"}),
        "domain_verified",
    )
    assert (await services.orgs.domains(org))[0].verified
    made = await operator.post("/admin/orgs/acme/scim-tokens", {"name": "Entra ID"})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    token = secret_on(made.text)
    scim = await app.get("/scim/v2/Users", headers={"authorization": f"Bearer {token}"})
    assert scim.status_code == 200, scim.text
    page = await operator.get("/admin/orgs/acme")
    assert token not in page.text and "Entra ID" in page.text
    (record,) = await services.scim_token_repo.for_org(org.id)
    done(await operator.post(f"/admin/orgs/acme/scim-tokens/{record.id}/revoke"), "scim_token_revoked")
    assert (await app.get("/scim/v2/Users", headers={"authorization": f"Bearer {token}"})).status_code == 401
    for kind in (
        "org_created",
        "org_domain_added",
        "org_domain_verified",
        "scim_token_created",
        "scim_token_revoked",
    ):
        named(operator, await events_of(app, kind=kind))


async def test_remove_a_connection(app: httpx.AsyncClient, operator: ConsoleUser) -> None:
    from threshold.core.sso.connections import ConnectionSpec

    services = services_of(app)
    org = await services.orgs.create(name="Conn Org", slug="conn", context=OPERATOR)
    spec = ConnectionSpec(
        type="oidc",
        issuer="http://127.0.0.1:9/idp",
        client_id="threshold",
        client_secret="s3cret-value",
    )
    connection = await services.sso.connections.add(org, spec, context=OPERATOR)
    page = await operator.get("/admin/orgs/conn")
    assert connection.id in page.text and "s3cret-value" not in page.text
    done(await operator.post(f"/admin/orgs/conn/connections/{connection.id}/remove"), "connection_removed")
    assert await services.sso.connections.of_org(org) == []
    named(operator, await events_of(app, kind="sso_connection_removed"))


async def test_user_search_pages_by_keyset(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    services = services_of(app)
    made = []
    for n in range(PAGE_SIZE + 7):
        made.append(
            await services.accounts.create_user(
                email=f"page.{n:03d}@keyset.example", password="unused passphrase 77"
            )
        )
    await services.accounts.create_user(email="pagex@other.example", password="unused passphrase 77")
    seen: list[str] = []
    url = "/admin/users?q=page."
    while url:
        response = await operator.browser.get(url, headers={"accept": "text/html"})
        assert response.status_code == 200
        seen += re.findall(r'<a href="/admin/users/[0-9a-z]+">([^<]+)</a>', response.text)
        following = re.search(r'<a href="([^"]+)">Next page</a>', response.text)
        url = following.group(1).replace("&amp;", "&") if following else ""
    assert seen == sorted(u.email for u in made)  # every match once, in order, nothing else
    by_id = await operator.get("/admin/users", q=made[5].id)
    assert re.findall(r'<a href="/admin/users/[0-9a-z]+">([^<]+)</a>', by_id.text) == [made[5].email]
    wildcard = await operator.get("/admin/users", q="page_%")
    assert "No accounts." in wildcard.text  # LIKE's wildcards are matched literally


async def test_search_answers_htmx_with_the_same_page(operator: ConsoleUser) -> None:
    response = await operator.browser.get(
        "/admin/users", params={"q": "operator"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and 'id="user-results"' in response.text
    assert operator.account.email in response.text


async def test_recovery_from_the_console_waits_at_least_the_configured_period(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    """A stolen console session cannot wipe someone's factors before they can cancel: the console's
    shortest wait is THRESHOLD_MFA__RECOVERY_WAIT (shorter ones are the CLI's)."""
    person = await new_person(app, clock)
    services = services_of(app)
    least = services.settings.mfa.recovery_wait / 3600
    for hours in ("0", str(least / 2)):
        response = await operator.post(f"/admin/users/{person.user_id}/recovery", {"wait_hours": hours})
        assert response.status_code == 400, response.text
    assert await services.recovery.pending_recovery(await account_of(app, person.user_id)) == []
    done(
        await operator.post(f"/admin/users/{person.user_id}/recovery", {"wait_hours": ""}), "recovery_started"
    )


async def test_the_person_is_told_of_a_recovery_without_the_operators_address(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    done(await operator.post(f"/admin/users/{person.user_id}/recovery"), "recovery_started")
    account = await person.browser.get("/account", headers={"accept": "text/html"})
    assert "Recovery" in account.text or "recovery" in account.text
    assert operator.account.email not in account.text and "console" not in account.text.lower()


async def test_an_operator_cannot_disable_or_recover_another_operator_from_the_console(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    """Operators' accounts are the CLI's to change: a stolen console session cannot lock the others out."""
    from tests.console.helpers import new_operator

    other = await new_operator(app, clock)
    for action in ("disable", "recovery"):
        response = await operator.post(f"/admin/users/{other.user_id}/{action}")
        assert response.status_code == 403, response.text
        assert "threshold users grant-admin" in response.text
    assert not (await account_of(app, other.user_id)).disabled
    assert await services_of(app).recovery.pending_recovery(await account_of(app, other.user_id)) == []
