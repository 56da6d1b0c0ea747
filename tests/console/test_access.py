"""Who gets into the console: operators (`threshold users grant-admin`) on an aal2 session; every change
within the re-authentication window; everyone else a 403 that says nothing of a console."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import FakeClock
from tests.console.conftest import WINDOW
from tests.console.helpers import (
    HTML,
    NO_ACCESS,
    ConsoleUser,
    account_of,
    events_of,
    forms_on,
    grant,
    new_operator,
    new_person,
    services_of,
)
from threshold.core.accounts import OPERATOR

PAGES = ["/admin/", "/admin/users", "/admin/clients", "/admin/keys", "/admin/orgs", "/admin/audit"]


def refused(response: httpx.Response) -> None:
    """The generic 403 page: nothing in it names a console or what would let one in."""
    assert response.status_code == 403, response.text
    assert NO_ACCESS in response.text
    for word in ("console", "operator", "second factor", "grant-admin", "/admin"):
        assert word not in response.text.lower(), word


async def test_no_session_gets_the_generic_refusal(app: httpx.AsyncClient, operator: ConsoleUser) -> None:
    async with httpx.AsyncClient(transport=app._transport, base_url=str(app.base_url)) as anonymous:
        for path in PAGES:
            refused(await anonymous.get(path, headers=HTML))
        target = f"/admin/users/{operator.user_id}/disable"
        refused(await anonymous.post(target, headers=HTML))
    assert not (await account_of(app, operator.user_id)).disabled


async def test_people_without_access_get_the_same_refusal_even_at_aal2(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    for path in PAGES:
        refused(await person.get(path))
    refused(await person.post(f"/admin/users/{operator.user_id}/disable"))
    # a person with a second factor, signed in with it, is still not an operator
    other = await new_operator(app, clock)
    await services_of(app).console.revoke(
        await account_of(app, other.user_id),
        by="test",
        context=OPERATOR,
    )
    for path in PAGES:
        refused(await other.get(path))
    assert not (await account_of(app, operator.user_id)).disabled


async def test_an_operator_gets_in_at_aal2(operator: ConsoleUser) -> None:
    for path in PAGES:
        response = await operator.get(path)
        assert response.status_code == 200, (path, response.text)
        assert "Signed in as" in response.text


async def test_an_aal1_session_is_refused_until_it_steps_up(app: httpx.AsyncClient, clock: FakeClock) -> None:
    operator = await new_operator(app, clock, second_factor=False)
    response = await operator.get("/admin/users")
    assert response.status_code == 403
    assert "second factor or a passkey" in response.text
    assert "/reauthenticate?next=/admin/users&amp;factor=1" in response.text
    refused_change = await operator.post(f"/admin/users/{operator.user_id}/mfa", {"required": "on"})
    assert refused_change.status_code == 403
    assert not (await account_of(app, operator.user_id)).mfa_required
    await operator.step_up()  # password session + TOTP now: aal2
    assert (await operator.get("/admin/users")).status_code == 200


async def test_an_aal1_operator_without_a_second_factor_is_sent_to_set_one_up(
    app: httpx.AsyncClient, clock: FakeClock
) -> None:
    person = await new_person(app, clock, "bare")
    await grant(app, person.user_id)
    response = await person.get("/admin/")
    assert response.status_code == 403
    assert 'href="/account"' in response.text and "/reauthenticate" not in response.text


async def test_changes_need_a_second_factor_within_the_window(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    clock.advance(WINDOW + 1)
    assert (await operator.get(f"/admin/users/{person.user_id}")).status_code == 200  # reading goes on
    response = await operator.post(f"/admin/users/{person.user_id}/disable")
    assert response.status_code == 303
    assert (
        response.headers["location"] == f"/reauthenticate?next=%2Fadmin%2Fusers%2F{person.user_id}&factor=1"
    )
    assert not (await account_of(app, person.user_id)).disabled
    await operator.step_up()
    response = await operator.post(f"/admin/users/{person.user_id}/disable")
    assert response.status_code == 303 and response.headers["location"].endswith("?done=disabled")
    assert (await account_of(app, person.user_id)).disabled


async def test_a_password_step_up_is_not_enough(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    """Within the window, but the latest proof was the password alone: still the step-up page."""
    clock.advance(WINDOW + 1)
    from tests.conftest import ISSUER, STRONG_PASSWORD

    again = await operator.browser.post(
        "/reauthenticate",
        data={
            "csrf_token": await operator.csrf_token(),
            "method": "password",
            "password": STRONG_PASSWORD,
            "next": "/admin/",
        },
        headers={**HTML, "origin": ISSUER},
    )
    assert again.status_code == 303, again.text
    response = await operator.post(f"/admin/users/{operator.user_id}/mfa", {"required": "on"})
    assert response.status_code == 303 and response.headers["location"].startswith("/reauthenticate?")
    assert not (await account_of(app, operator.user_id)).mfa_required


async def test_taking_access_back_or_disabling_the_account_shuts_the_door_at_once(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    services = services_of(app)
    user = await account_of(app, operator.user_id)
    assert (await operator.get("/admin/")).status_code == 200
    assert await services.console.revoke(user, by="cli", context=OPERATOR)
    refused(await operator.get("/admin/"))
    kinds = [e.kind.value for e in await events_of(app, operator.user_id)]
    assert "console_access_granted" in kinds and "console_access_revoked" in kinds
    await grant(app, operator.user_id)
    assert (await operator.get("/admin/")).status_code == 200
    await services.accounts.set_disabled(user, disabled=True)  # `threshold users disable`
    refused(await operator.get("/admin/"))  # its sessions ended, and a disabled account is no operator


@pytest.mark.parametrize("page", ["user", "/admin/clients", "client", "/admin/keys", "/admin/orgs", "org"])
async def test_every_form_refuses_a_post_without_the_csrf_token_or_from_another_site(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser, page: str
) -> None:
    services = services_of(app)
    person = await new_person(app, clock)
    person_user = await account_of(app, person.user_id)
    await services.recovery.request_recovery(person_user, requested_by="test", context=OPERATOR)
    org = await services.orgs.create(name="Csrf Check", context=OPERATOR)
    await services.orgs.add_domain(org, "csrf.example", context=OPERATOR)
    await operator.post(f"/admin/orgs/{org.slug}/scim-tokens", {"name": "idp"})
    client = await services.provider.create_client(name="csrf app", redirect_uris=["https://app.example/cb"])
    path = {
        "user": f"/admin/users/{person.user_id}",
        "client": f"/admin/clients/{client.client.client_id}",
        "org": f"/admin/orgs/{org.slug}",
    }.get(page, page)
    listing = await operator.get(path)
    actions = forms_on(listing.text)
    assert actions, listing.text
    for action in actions:
        before = len(await events_of(app))
        no_token = await operator.post(action, {"name": "x", "domain": "x.example"}, token=False)
        assert no_token.status_code == 403, (action, no_token.text)
        cross_site = await operator.browser.post(
            action,
            data={"csrf_token": await operator.csrf_token(), "name": "x"},
            headers={**HTML, "origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403, (action, cross_site.text)
        assert len(await events_of(app)) == before, action


async def test_an_identity_providers_mfa_claim_is_no_way_in(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    """An SSO session that is aal2 on the upstream IdP's word (its amr says mfa) gets in only after a
    second factor or passkey is proved here: the console's access rests on no third party."""
    from tests.api.helpers import put_session_cookie
    from threshold.core.methods.proofs import Upstream, upstream_proof
    from threshold.core.models import Aal, Amr, RequestContext

    services = services_of(app)
    upstream = Upstream(connection_id="conn-1", org_id=None, amr=("pwd", "otp", "hwk", "mfa"))
    proof = upstream_proof(upstream, mfa=True)
    issued = await services.sessions.issue_session(
        user_id=operator.user_id,
        aal=Aal.AAL2,
        amr=proof.amr,
        context=RequestContext(ip="203.0.113.7", user_agent="test"),
        connection_id="conn-1",
    )
    await services.stepup.note_proofs(issued.record, [proof])
    assert issued.record.amr == (Amr.PASSWORD, Amr.MFA)  # the IdP's word: no proof was made here
    put_session_cookie(operator.browser, issued.token)
    response = await operator.get("/admin/")
    assert response.status_code == 403 and "second factor or a passkey" in response.text
    person = await new_person(app, clock)
    assert (await operator.post(f"/admin/users/{person.user_id}/disable")).status_code == 403
    assert not (await account_of(app, person.user_id)).disabled
    await operator.step_up()  # the authenticator app, proved here
    assert (await operator.get("/admin/")).status_code == 200
    assert (await operator.post(f"/admin/users/{person.user_id}/disable")).status_code == 303


async def test_an_export_from_another_site_is_refused(app: httpx.AsyncClient, operator: ConsoleUser) -> None:
    """A link on another site that starts an export (a GET) is refused: nothing downloads, nothing is
    recorded."""
    for site in ("cross-site", "same-site"):
        response = await operator.browser.get(
            "/admin/audit/export", params={"format": "csv"}, headers={**HTML, "sec-fetch-site": site}
        )
        assert response.status_code == 403, response.text
    assert await events_of(app, kind="audit_exported") == []
    typed = await operator.browser.get(
        "/admin/audit/export", params={"format": "csv"}, headers={**HTML, "sec-fetch-site": "same-origin"}
    )
    assert typed.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/users/someone/disable"),
        ("POST", "/admin/users"),
        ("GET", "/admin/audit/"),
        ("GET", "/admin/no-such-page"),
        ("DELETE", "/admin/keys"),
    ],
)
async def test_nothing_under_admin_tells_a_stranger_what_is_there(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser, method: str, path: str
) -> None:
    person = await new_person(app, clock)
    refused(await person.browser.request(method, path, headers=HTML))
    async with httpx.AsyncClient(transport=app._transport, base_url=str(app.base_url)) as anonymous:
        refused(await anonymous.request(method, path, headers=HTML))
    found = await operator.browser.request(method, path, headers=HTML)
    assert found.status_code in (404, 405), found.text  # an operator learns it is not there
    api = await anonymous_json(app, "/admin/v1/no-such-thing")
    assert api.status_code in (401, 404) and api.headers["content-type"].startswith("application/")


async def anonymous_json(app: httpx.AsyncClient, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=app._transport, base_url=str(app.base_url)) as client:
        return await client.get(path)
