"""The `organization` scope: the organization selected in the session and the role there, in the ID token,
the access token, userinfo and introspection; remembered by the code and the refresh tokens; the role read
live; and a removed member's sessions and tokens for that organization ended at once, nobody else's."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import login
from tests.oidc.helpers import (
    OP,
    RP,
    Tokens,
    invalid_token,
    oauth_error,
    pkce,
    redirected,
    unverified,
    verify,
)
from threshold.adapters.sql.org_repos import SqlOrgRepo
from threshold.core.accounts import OPERATOR
from threshold.core.orgs.models import Organization
from threshold.oidc.models import ID_TOKEN_DEFAULT_ALG

ORG_SCOPE = "openid email offline_access organization"
PLAIN_SCOPE = "openid email offline_access"
SCOPES = ("openid", "email", "offline_access", "organization")
ORG_CLAIMS = ("org_id", "org_slug", "org_role")


async def new_org(op: OP, name: str) -> Organization:
    return await op.services.orgs.create(name=f"{name} {op.clock.now():.0f}", context=OPERATOR)


async def join(op: OP, org: Organization, email: str, role: str = "member") -> None:
    await op.services.orgs.add_member(org, email=email, role=role, context=OPERATOR)
    op.clock.advance(1)  # joined one after the other (a new session selects the first joined)


async def select(op: OP, browser: httpx.AsyncClient, org: Organization) -> None:
    response = await browser.post("/api/v1/organizations/select", json={"org": org.slug})
    assert response.status_code == 200, response.text
    assert response.json()["organization"]["id"] == org.id


def org_claims(claims: dict[str, Any]) -> dict[str, Any]:
    return {name: claims[name] for name in ORG_CLAIMS if name in claims}


def expected(org: Organization, role: str) -> dict[str, str]:
    return {"org_id": org.id, "org_slug": org.slug, "org_role": role}


async def everywhere(op: OP, rp: RP, tokens: Tokens) -> list[dict[str, Any]]:
    """The organization claims of the ID token, the access token (both verified against the JWKS),
    userinfo and introspection."""
    keys = await op.jwks()
    id_claims = verify(tokens.id_token, keys, ID_TOKEN_DEFAULT_ALG)
    access_claims = verify(tokens.access, keys, rp.signing_alg)
    userinfo = await op.userinfo(tokens.access)
    assert userinfo.status_code == 200, userinfo.text
    introspected = await op.introspect(rp, tokens.access)
    assert introspected.json()["active"] is True, introspected.text
    return [org_claims(c) for c in (id_claims, access_claims, userinfo.json(), introspected.json())]


async def active(op: OP, rp: RP, token: str) -> bool:
    answer: bool = (await op.introspect(rp, token)).json()["active"]
    return answer


async def test_the_scope_puts_the_selected_organization_and_role_in_every_token(op: OP) -> None:
    rp = await op.register(scopes=SCOPES)
    account = await op.sign_up()
    acme = await new_org(op, "Acme")
    await join(op, acme, account["user"]["email"], "admin")
    await select(op, op.browser, acme)

    with_scope = await op.tokens(rp, scope=ORG_SCOPE)
    assert await everywhere(op, rp, with_scope) == [expected(acme, "admin")] * 4
    refresh_answer = (await op.introspect(rp, with_scope.refresh)).json()
    assert org_claims(refresh_answer) == expected(acme, "admin")

    without = await op.tokens(rp, scope=PLAIN_SCOPE)
    assert await everywhere(op, rp, without) == [{}] * 4
    refreshed = await op.refresh(rp, without.refresh)
    assert refreshed.status_code == 200, refreshed.text
    assert org_claims(unverified(refreshed.json()["access_token"])[1]) == {}
    assert org_claims(unverified(refreshed.json()["id_token"])[1]) == {}


async def test_no_claims_without_a_selected_organization(op: OP) -> None:
    rp = await op.register(scopes=SCOPES)
    await op.sign_up()  # a member of nothing: the session selects nothing

    tokens = await op.tokens(rp, scope=ORG_SCOPE)

    assert await everywhere(op, rp, tokens) == [{}] * 4
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200


async def test_the_role_is_read_live_at_every_refresh_and_check(op: OP) -> None:
    rp = await op.register(scopes=SCOPES)
    account = await op.sign_up()
    acme = await new_org(op, "Acme")
    await join(op, acme, account["user"]["email"], "member")
    await select(op, op.browser, acme)
    tokens = await op.tokens(rp, scope=ORG_SCOPE)
    assert org_claims(unverified(tokens.access)[1]) == expected(acme, "member")

    await join(op, acme, account["user"]["email"], "owner")  # a new role, not a new membership

    assert org_claims((await op.userinfo(tokens.access)).json()) == expected(acme, "owner")
    refreshed = await op.refresh(rp, tokens.refresh)
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert org_claims(unverified(body["access_token"])[1]) == expected(acme, "owner")
    assert org_claims(unverified(body["id_token"])[1]) == expected(acme, "owner")
    narrowed = await op.refresh(rp, body["refresh_token"], scope="openid")
    assert narrowed.status_code == 200, narrowed.text
    assert org_claims(unverified(narrowed.json()["access_token"])[1]) == {}


async def test_switching_changes_the_claims_of_the_next_authorization(op: OP) -> None:
    rp = await op.register(scopes=SCOPES)
    account = await op.sign_up()
    email = account["user"]["email"]
    acme, globex = await new_org(op, "Acme"), await new_org(op, "Globex")
    await join(op, acme, email, "admin")
    await join(op, globex, email, "member")
    assert (await login(op.browser, email)).status_code == 200  # a new session selects the first joined
    listed = (await op.browser.get("/api/v1/organizations")).json()["organizations"]
    assert [(o["slug"], o["role"], o["selected"]) for o in listed] == [
        (acme.slug, "admin", True),
        (globex.slug, "member", False),
    ]
    before = await op.tokens(rp, scope=ORG_SCOPE)
    assert org_claims(unverified(before.id_token)[1]) == expected(acme, "admin")
    old_cookie = op.session_cookie()

    await select(op, op.browser, globex)

    assert op.session_cookie() != old_cookie
    after = await op.tokens(rp, scope=ORG_SCOPE)
    assert await everywhere(op, rp, after) == [expected(globex, "member")] * 4
    stale = op.another_browser()
    stale.cookies.set("__Host-threshold_session", old_cookie)
    assert not await op.signed_in(stale)  # the old session id is dead
    listed = (await op.browser.get("/api/v1/organizations")).json()["organizations"]
    assert [o["slug"] for o in listed if o["selected"]] == [globex.slug]


async def test_a_refresh_after_the_membership_ended_is_refused_and_revokes_the_family(op: OP) -> None:
    """The membership removed behind the provider's back (the store itself): the session lives on,
    but nothing issued for the organization stands (the live check of oidc.live_grant)."""
    rp = await op.register(scopes=SCOPES)
    account = await op.sign_up()
    acme = await new_org(op, "Acme")
    await join(op, acme, account["user"]["email"], "admin")
    await select(op, op.browser, acme)
    tokens = await op.tokens(rp, scope=ORG_SCOPE)
    plain = await op.tokens(rp, scope=PLAIN_SCOPE)

    assert await SqlOrgRepo(op.services.engine).remove_member(acme.id, account["user"]["id"])

    invalid_token(await op.userinfo(tokens.access))
    assert not await active(op, rp, tokens.access)
    assert not await active(op, rp, tokens.refresh)
    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")
    await join(op, acme, account["user"]["email"], "admin")  # back again: the family stays revoked
    oauth_error(await op.refresh(rp, tokens.refresh), 400, "invalid_grant")
    assert not await active(op, rp, tokens.refresh) and not await active(op, rp, tokens.access)
    assert await op.signed_in()  # the session and the tokens for no organization were never for acme
    assert await active(op, rp, plain.access)
    assert (await op.refresh(rp, plain.refresh)).status_code == 200


async def test_a_code_for_an_organization_the_person_left_gives_tokens_without_it(op: OP) -> None:
    rp = await op.register(scopes=SCOPES)
    account = await op.sign_up()
    acme = await new_org(op, "Acme")
    await join(op, acme, account["user"]["email"], "admin")
    await select(op, op.browser, acme)
    code, verifier, _ = await op.code(rp, scope=ORG_SCOPE)
    assert await SqlOrgRepo(op.services.engine).remove_member(acme.id, account["user"]["id"])

    exchanged = await op.exchange(rp, code, verifier)

    assert exchanged.status_code == 200, exchanged.text
    tokens = Tokens(exchanged.json(), verifier, "")
    assert org_claims(unverified(tokens.access)[1]) == {} and org_claims(unverified(tokens.id_token)[1]) == {}
    assert org_claims((await op.userinfo(tokens.access)).json()) == {}


async def test_removing_a_member_ends_exactly_that_persons_sessions_and_tokens_for_the_org(op: OP) -> None:
    rp = await op.register(scopes=SCOPES)
    acme, globex = await new_org(op, "Acme"), await new_org(op, "Globex")
    # Signed in before joining anything: a session for no organization, and its tokens.
    account = await op.sign_up()
    email, user_id = account["user"]["email"], account["user"]["id"]
    for_none = await op.tokens(rp, scope=ORG_SCOPE)
    await join(op, acme, email, "admin")
    await join(op, globex, email, "member")
    # A laptop working in acme (the first joined), with tokens for acme and tokens without the scope.
    laptop = op.another_browser("192.0.2.10")
    assert (await login(laptop, email)).status_code == 200
    for_acme = await op.tokens(rp, laptop, scope=ORG_SCOPE)
    plain_in_acme_session = await op.tokens(rp, laptop, scope=PLAIN_SCOPE)
    # A phone working in globex.
    phone = op.another_browser("192.0.2.11")
    assert (await login(phone, email)).status_code == 200
    await select(op, phone, globex)
    for_globex = await op.tokens(rp, phone, scope=ORG_SCOPE)
    # Someone else working in acme.
    colleague = op.another_browser("192.0.2.12")
    colleague_account = await op.sign_up(colleague)
    await join(op, acme, colleague_account["user"]["email"], "owner")
    await select(op, colleague, acme)
    theirs = await op.tokens(rp, colleague, scope=ORG_SCOPE)

    await op.services.orgs.remove_member(acme, email=email, context=OPERATOR)

    assert not await op.signed_in(laptop)
    for token in (for_acme.access, for_acme.refresh, plain_in_acme_session.access):
        assert not await active(op, rp, token)
    invalid_token(await op.userinfo(for_acme.access))
    oauth_error(await op.refresh(rp, for_acme.refresh), 400, "invalid_grant")
    oauth_error(await op.refresh(rp, plain_in_acme_session.refresh), 400, "invalid_grant")
    # The person's other sessions and tokens, and everyone else's, stand.
    assert await op.signed_in(op.browser) and await op.signed_in(phone) and await op.signed_in(colleague)
    for tokens in (for_none, for_globex, theirs):
        assert await active(op, rp, tokens.access) and await active(op, rp, tokens.refresh)
    assert org_claims((await op.userinfo(for_globex.access)).json()) == expected(globex, "member")
    assert org_claims((await op.userinfo(theirs.access)).json()) == expected(acme, "owner")
    for tokens in (for_none, for_globex, theirs):
        assert (await op.refresh(rp, tokens.refresh)).status_code == 200
    events = await op.services.audit_log.list_for_user(user_id)
    removed = [e for e in events if e.kind.value == "org_member_removed"]
    assert len(removed) == 1
    assert removed[0].detail == {
        "org": acme.id,
        "role": "admin",
        "sessions_ended": "1",
        "refresh_tokens_revoked": "1",
        "actor": "operator",
    }


async def test_discovery_and_who_may_ask_for_the_scope(op: OP) -> None:
    document = (await op.rp.get("/.well-known/openid-configuration")).json()
    assert "organization" in document["scopes_supported"]
    assert set(ORG_CLAIMS) <= set(document["claims_supported"])
    await op.sign_up()
    plain_rp = await op.register()  # registered without the scope: may not ask for it
    _, challenge = pkce()
    refused = redirected(await op.authorize(op.authorize_params(plain_rp, challenge, scope=ORG_SCOPE)))
    assert refused["error"] == "invalid_scope"
    admin_rp = await op.register(scopes=(*SCOPES, "threshold:org_admin"))
    alone = redirected(
        await op.authorize(op.authorize_params(admin_rp, challenge, scope="openid threshold:org_admin"))
    )
    assert alone["error"] == "invalid_scope"
    # A client's own token is for no user: never the organization scopes, whatever it registered.
    service = await op.provider.create_client(
        name="svc",
        grant_types=["client_credentials"],
        scopes=["api:read", "organization", "threshold:org_admin"],
    )
    assert service.secret is not None
    credentials = (service.client.client_id, service.secret)
    own = await op.rp.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=credentials)
    assert own.status_code == 200 and own.json()["scope"] == "api:read", own.text
    asked = await op.rp.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "scope": "organization"}, auth=credentials
    )
    oauth_error(asked, 400, "invalid_scope")
