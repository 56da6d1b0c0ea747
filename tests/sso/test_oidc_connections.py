"""Upstream OIDC connections, end to end against a real OpenID Provider on loopback (scripted), on both
backends: the round trip, the checks of the ID token, home-realm discovery and `--require-sso`, and the
linking rules that keep an identity provider from taking over an account it is not authoritative for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD, csrf, login, signup
from tests.sso.conftest import SESSION_COOKIE, acme, path_of, rejected, through_idp
from tests.support.oidc_idp import ScriptedIdp
from threshold.core.accounts import OPERATOR
from threshold.core.models import AuditKind
from threshold.core.orgs.models import OrgRole
from threshold.core.sso.models import Policy
from threshold.services import Services

pytestmark = pytest.mark.usefixtures("backend")

Factory = Callable[..., Any]


def services_of(client: httpx.AsyncClient) -> Services:
    svc: Services = client.services  # type: ignore[attr-defined]
    return svc


async def session_of(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/session")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def audit_kinds(services: Services, user_id: str) -> list[str]:
    return [e.kind.value for e in await services.audit_log.list_for_user(user_id)]


# --- the round trip ---------------------------------------------------------------------------------


async def test_a_person_signs_in_at_the_idp_and_lands_in_the_organization(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    org, connection = await acme(services, idp, policy=Policy(role_groups={"acme-admins": "admin"}))
    stored = await services.sso._repo.get(connection.id)
    assert stored is not None and stored.oidc is not None
    assert idp.client_secret not in stored.oidc.client_secret  # sealed at rest
    assert services.sso.connections.client_secret(stored) == idp.client_secret

    back = await through_idp(
        client,
        "/sso/start?email=alice@acme.test&next=/account",
        _idp=idp,
        sub="alice-1",
        email="alice@acme.test",
        email_verified=True,
        amr=["pwd", "mfa"],
        acr="urn:acme:mfa",
        sid="idp-session-1",
        groups=["acme-admins", "staff"],
    )

    assert back.status_code == 303, back.text[:300]
    assert back.cookies.get(SESSION_COOKIE) or client.cookies.get(SESSION_COOKIE)
    body = await session_of(client)
    assert body["user"]["email"] == "alice@acme.test"
    assert body["user"]["email_verified"] is True
    assert body["session"]["aal"] == "aal2"  # the IdP said it used more than one factor
    assert "mfa" in body["session"]["amr"]
    user = await services.users.get_by_email("alice@acme.test")
    assert user is not None
    memberships = await services.orgs.memberships(user)
    assert [(m.org_id, m.role) for m in memberships] == [(org.id, OrgRole.ADMIN)]
    [record] = await services.sessions.list_sessions(user.id)
    assert (record.org_id, record.connection_id) == (org.id, connection.id)
    assert record.upstream_acr == "urn:acme:mfa"
    assert record.upstream_amr == ("pwd", "mfa")
    kinds = await audit_kinds(services, user.id)
    assert "sso_user_provisioned" in kinds and "mfa_succeeded" in kinds

    # The second time, the linked subject decides (the address at the IdP changed: still the same account).
    client.cookies.clear()
    again = await through_idp(
        client, "/sso/start?email=alice@acme.test", _idp=idp, sub="alice-1", email="alice.new@acme.test"
    )
    assert again.status_code == 303
    assert (await session_of(client))["user"]["id"] == user.id
    assert (await session_of(client))["session"]["aal"] == "aal1"  # no MFA said this time


async def test_the_flow_belongs_to_the_browser_that_started_it_and_is_used_once(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    await acme(services, idp)
    idp.next_claims = {"sub": "bob-1", "email": "bob@acme.test", "email_verified": True}
    started = await client.get("/sso/start?email=bob@acme.test")
    async with httpx.AsyncClient() as browser_at_idp:
        callback = path_of((await browser_at_idp.get(started.headers["location"])).headers["location"])

    # Another browser (no flow cookie) cannot finish this flow: login CSRF and stolen callbacks fail.
    other = await client_without_cookies(client)
    refused = await other.get(callback)
    assert refused.status_code == 400
    assert "started in another browser" in refused.text
    assert SESSION_COOKIE not in refused.cookies

    assert (await client.get(callback)).status_code == 303  # the right browser, once
    client.cookies.delete(SESSION_COOKIE)
    replayed = await client.get(callback)
    assert replayed.status_code == 400
    assert SESSION_COOKIE not in replayed.cookies


async def client_without_cookies(client: httpx.AsyncClient) -> httpx.AsyncClient:
    other = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    return other


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"nonce": "someone-elses-nonce"}, "nonce_mismatch"),
        ({"aud": "another-client"}, "audience_mismatch"),
        ({"iss": "http://127.0.0.1:1/evil"}, "issuer_mismatch"),
        ({"exp": 1_000_000_000}, "expired"),
    ],
)
async def test_an_id_token_not_for_this_sign_in_is_refused(
    client: httpx.AsyncClient, idp: ScriptedIdp, override: dict[str, Any], reason: str
) -> None:
    services = services_of(client)
    await acme(services, idp)
    idp.overrides = override
    back = await through_idp(
        client, "/sso/start?email=carol@acme.test", _idp=idp, sub="c", email="carol@acme.test"
    )
    assert back.status_code == 400, back.text[:300]
    assert f"reason: {reason}" in back.text
    assert SESSION_COOKIE not in back.cookies
    assert await services.users.get_by_email("carol@acme.test") is None


async def test_a_token_signed_by_another_key_or_without_a_signature_is_refused(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    from joserfc.jwk import RSAKey

    services = services_of(client)
    await acme(services, idp)
    idp.published = idp.key
    idp.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, a key the IdP never published
    back = await through_idp(
        client, "/sso/start?email=dan@acme.test", _idp=idp, sub="d", email="dan@acme.test"
    )
    rejected(back, "signature_invalid")

    # "alg": "none" (or an HMAC keyed with something public) is not on the allow-list at all.
    idp.key, idp.published = idp.published, None
    idp.header_alg = "none"
    client.cookies.clear()
    unsigned = await through_idp(
        client, "/sso/start?email=dan@acme.test", _idp=idp, sub="d", email="dan@acme.test"
    )
    rejected(unsigned, "signature_invalid")


async def test_microsofts_multi_tenant_issuer_is_resolved_with_the_tokens_tenant(
    client: httpx.AsyncClient, tenant_idp: ScriptedIdp
) -> None:
    services = services_of(client)
    await acme(services, tenant_idp)
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    # Across tenants an `email` is anybody's to set ("nOAuth"): without Entra's xms_edov, not trusted.
    unproved = await through_idp(
        client,
        "/sso/start?email=erin@acme.test",
        _idp=tenant_idp,
        sub="e",
        tid=tenant,
        email="erin@acme.test",
    )
    rejected(unproved, "email_unverified")
    client.cookies.clear()
    ok = await through_idp(
        client,
        "/sso/start?email=erin@acme.test",
        _idp=tenant_idp,
        sub="e",
        tid=tenant,
        email="erin@acme.test",
        xms_edov=True,
    )
    assert ok.status_code == 303, ok.text[:300]

    # A token whose iss names another tenant than its tid claim is refused.
    client.cookies.clear()
    tenant_idp.overrides = {"iss": f"{tenant_idp.base}/00000000-0000-0000-0000-000000000000/v2.0"}
    bad = await through_idp(
        client,
        "/sso/start?email=erin@acme.test",
        _idp=tenant_idp,
        sub="e",
        tid=tenant,
        email="erin@acme.test",
        xms_edov=True,
    )
    rejected(bad, "issuer_mismatch")


# --- linking rules ----------------------------------------------------------------------------------


async def test_an_authoritative_connection_links_the_existing_account(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    assert (await signup(client, "frank@acme.test")).status_code == 201
    frank = await services.users.get_by_email("frank@acme.test")
    assert frank is not None
    assert await services.users.set_email_verified(frank.id, frank.email_normalized)  # he proved it
    await acme(services, idp)
    client.cookies.clear()
    back = await through_idp(
        client,
        "/sso/start?email=frank@acme.test",
        _idp=idp,
        sub="f",
        email="frank@acme.test",
        email_verified=True,
    )
    assert back.status_code == 303
    assert (await session_of(client))["user"]["id"] == frank.id
    assert "sso_identity_linked" in await audit_kinds(services, frank.id)


async def test_a_connection_without_a_verified_domain_never_reaches_an_existing_account(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    """An organization's IdP asserts the address of someone else's account: refused, no session, no link."""
    services = services_of(client)
    assert (await signup(client, "victim@bank.test")).status_code == 201
    victim = await services.users.get_by_email("victim@bank.test")
    assert victim is not None
    before = await services.sessions.list_sessions(victim.id)  # the victim's own, from signing up
    # The attacker's organization claimed bank.test but could not verify it; and has its own IdP.
    _org, connection = await acme(services, idp, slug="evil", domain="bank.test", verified=False)
    client.cookies.clear()
    back = await through_idp(
        client,
        f"/sso/start?connection={connection.id}",
        _idp=idp,
        sub="attacker",
        email="victim@bank.test",
        email_verified=True,
    )
    assert back.status_code == 400
    assert "reason: domain_not_verified" in back.text  # the same answer as for an unknown address
    assert SESSION_COOKIE not in back.cookies
    assert await services.sessions.list_sessions(victim.id) == before
    assert await services.sso._repo.linked(connection.id, "attacker") is None
    assert await services.orgs.memberships(victim) == []
    # An unverified claim routes nothing either: the victim's address is not sent to the attacker's IdP.
    assert await services.sso.connections.route("victim@bank.test") is None


async def test_email_verified_false_never_links_nor_provisions(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    assert (await signup(client, "gina@acme.test")).status_code == 201
    await acme(services, idp)
    for email in ("gina@acme.test", "new-person@acme.test"):
        client.cookies.clear()
        back = await through_idp(
            client, f"/sso/start?email={email}", _idp=idp, sub=f"s-{email}", email=email, email_verified=False
        )
        rejected(back, "email_unverified")
    assert await services.users.get_by_email("new-person@acme.test") is None


async def test_an_organizations_idp_cannot_provision_addresses_outside_its_verified_domains(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    _, connection = await acme(services, idp)
    back = await through_idp(
        client,
        f"/sso/start?connection={connection.id}",
        _idp=idp,
        sub="h",
        email="ceo@bigbank.test",
        email_verified=True,
    )
    rejected(back, "domain_not_verified")
    assert await services.users.get_by_email("ceo@bigbank.test") is None


async def test_social_connections_provision_verified_addresses_and_never_link_by_address(
    client_factory: Factory, idp: ScriptedIdp
) -> None:
    social = [
        {
            "id": "acmeid",
            "name": "AcmeID",
            "issuer": idp.issuer,
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
        }
    ]
    client: httpx.AsyncClient = await client_factory(sso={"social": social})
    page = await client.get("/login")
    assert "Continue with AcmeID" in page.text
    assert "/sso/start?connection=social-acmeid" in page.text

    new = await through_idp(
        client,
        "/sso/start?connection=social-acmeid",
        _idp=idp,
        sub="s1",
        email="ivy@mail.test",
        email_verified=True,
    )
    assert new.status_code == 303
    assert (await session_of(client))["user"]["email"] == "ivy@mail.test"

    client.cookies.clear()
    assert (await signup(client, "jay@mail.test")).status_code == 201
    client.cookies.clear()
    existing = await through_idp(
        client,
        "/sso/start?connection=social-acmeid",
        _idp=idp,
        sub="s2",
        email="jay@mail.test",
        email_verified=True,
    )
    rejected(existing, "link_refused")


# --- home-realm discovery and --require-sso ----------------------------------------------------------


async def test_login_routes_an_address_of_the_organization_to_its_idp_without_checking_anything(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    assert (await signup(client, "kim@acme.test")).status_code == 201
    await acme(services, idp, policy=Policy(require_sso=True))
    client.cookies.clear()
    await csrf(client)
    answers = []
    for email, password in (
        ("kim@acme.test", STRONG_PASSWORD),
        ("kim@acme.test", "wrong"),
        ("nobody@acme.test", "x"),
    ):
        response = await client.post("/api/v1/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        assert SESSION_COOKIE not in response.cookies
        answers.append(response.json())
    assert {a["status"] for a in answers} == {"sso_required"}
    assert answers[0]["redirect"] == "https://auth.threshold.test/sso/start?email=kim%40acme.test"
    assert answers[0] == answers[1]  # the right and the wrong password: the same answer
    user = await services.users.get_by_email("kim@acme.test")
    assert user is not None
    assert "login_failed" not in await audit_kinds(services, user.id)  # the password was never checked

    # The hosted page sends the browser there too, for the email-first step as for a password
    form = {
        "email": "kim@acme.test",
        "password": "",
        "csrf_token": client.cookies["__Host-threshold_csrf"],
        "next": "/account",
    }
    page = await client.post("/login", data=form, headers={"Origin": "https://auth.threshold.test"})
    # (a page that moves on by itself: a 303 after a form may not leave the origin under form-action 'self')
    assert page.status_code == 200
    start = "https://auth.threshold.test/sso/start?email=kim%40acme.test&amp;next=%2Faccount"
    assert f'<meta http-equiv="refresh" content="0;url={start}">' in page.text
    assert f'href="{start}"' in page.text


async def test_a_domain_verified_after_sign_ins_routes_the_next_one(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    """Domain claims, and their absence, are kept in memory (core.orgs.domain_cache); claiming and
    verifying one drops what was kept, so the next sign-in meets the organization's rule."""
    services = services_of(client)
    assert (await signup(client, "noa@acme.test")).status_code == 201
    for _ in range(2):  # the second one answered from memory
        client.cookies.clear()
        await csrf(client)
        assert SESSION_COOKIE in (await login(client, "noa@acme.test")).cookies
    await acme(services, idp, policy=Policy(require_sso=True))
    client.cookies.clear()
    await csrf(client)
    routed = await client.post("/api/v1/login", json={"email": "noa@acme.test", "password": STRONG_PASSWORD})
    assert routed.json()["status"] == "sso_required"


async def test_without_require_sso_the_email_first_step_routes_and_a_password_still_works(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    assert (await signup(client, "lee@acme.test")).status_code == 201
    await acme(services, idp)
    client.cookies.clear()
    await csrf(client)
    routed = await client.post("/api/v1/login", json={"email": "lee@acme.test"})
    assert routed.json()["status"] == "sso_required"
    assert (await login(client, "lee@acme.test")).status_code == 200


async def test_require_sso_closes_every_other_way_in_except_named_break_glass_owners(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    for email in ("owner@acme.test", "mia@acme.test"):
        client.cookies.clear()
        assert (await signup(client, email)).status_code == 201
    org, _ = await acme(services, idp, policy=Policy(require_sso=True, break_glass=("owner@acme.test",)))
    await services.orgs.add_member(org, email="owner@acme.test", role="owner", context=OPERATOR)
    mia = await services.users.get_by_email("mia@acme.test")
    owner = await services.users.get_by_email("owner@acme.test")
    assert mia is not None and owner is not None

    # A passwordless path (an emailed sign-in link) meets the same rule where every session is born.
    from threshold.core.methods.proofs import EMAILED
    from threshold.core.models import RequestContext
    from threshold.core.sso.errors import SsoRequired

    context = RequestContext(ip="203.0.113.7", user_agent="test")
    before = await services.sessions.list_sessions(mia.id)  # the one from signing up, before the rule
    with pytest.raises(SsoRequired):
        await services.signin.complete(mia, [EMAILED], context=context, epoch=mia.credential_epoch)
    assert await services.sessions.list_sessions(mia.id) == before

    client.cookies.clear()
    signed_in = await login(client, "owner@acme.test")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["email"] == "owner@acme.test"
    assert AuditKind.SSO_BREAK_GLASS.value in await audit_kinds(services, owner.id)

    # A break-glass address that is not an owner (any more) is held to the rule like everyone.
    await services.orgs.add_member(org, email="owner@acme.test", role="member", context=OPERATOR)
    client.cookies.clear()
    assert (await login(client, "owner@acme.test")).json()["status"] == "sso_required"


async def test_an_organization_can_require_mfa_at_its_idp(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    await acme(services, idp, policy=Policy(require_idp_mfa=True))
    without = await through_idp(
        client, "/sso/start?email=nia@acme.test", _idp=idp, sub="n", email="nia@acme.test", amr=["pwd"]
    )
    rejected(without, "idp_mfa_missing")
    client.cookies.clear()
    with_mfa = await through_idp(
        client, "/sso/start?email=nia@acme.test", _idp=idp, sub="n", email="nia@acme.test", amr=["pwd", "otp"]
    )
    assert with_mfa.status_code == 303
    assert (await session_of(client))["session"]["aal"] == "aal2"


# --- upstream back-channel logout --------------------------------------------------------------------


async def test_a_back_channel_logout_from_the_idp_ends_the_sessions_it_names_once(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    _, connection = await acme(services, idp)
    assert (
        await through_idp(
            client,
            "/sso/start?email=omar@acme.test",
            _idp=idp,
            sub="o",
            sid="idp-sid-9",
            email="omar@acme.test",
        )
    ).status_code == 303
    assert (await client.get("/api/v1/session")).status_code == 200
    omar = await services.users.get_by_email("omar@acme.test")
    assert omar is not None

    url = f"/sso/oidc/{connection.id}/backchannel-logout"
    with_nonce = await client.post(url, data={"logout_token": idp.logout_token(sid="idp-sid-9", nonce="x")})
    assert with_nonce.status_code == 400
    assert (await client.get("/api/v1/session")).status_code == 200

    stale = await client.post(
        url, data={"logout_token": idp.logout_token(sid="idp-sid-9", iat=int(time.time()) - 3600)}
    )
    assert stale.status_code == 400  # a captured token goes stale
    assert (await client.get("/api/v1/session")).status_code == 200

    token = idp.logout_token(sid="idp-sid-9")
    ended = await client.post(url, data={"logout_token": token})
    assert ended.status_code == 200, ended.text
    assert ended.headers["cache-control"] == "no-store"
    assert (await client.get("/api/v1/session")).status_code == 401
    assert await services.sessions.list_sessions(omar.id) == []

    replayed = await client.post(url, data={"logout_token": token})
    assert replayed.status_code == 400
    assert "replayed" in replayed.json()["error_description"]


async def test_an_organization_can_require_a_local_second_factor_after_its_idp(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    """The IdP's sign-in is the first step; the account's own TOTP is the second, and the session
    then carries both (the connection and organization included)."""
    import pyotp

    services = services_of(client)
    assert (await signup(client, "pat@acme.test")).status_code == 201
    setup = await client.post("/api/v1/mfa/totp/setup")
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    confirm = await client.post("/api/v1/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()})
    assert confirm.status_code == 200, confirm.text
    pat = await services.users.get_by_email("pat@acme.test")
    assert pat is not None
    assert await services.users.set_email_verified(pat.id, pat.email_normalized)  # (else claimed, see below)
    org, connection = await acme(services, idp, policy=Policy(require_local_mfa=True))
    client.cookies.clear()

    back = await through_idp(
        client, "/sso/start?email=pat@acme.test", _idp=idp, sub="p", email="pat@acme.test", amr=["pwd", "mfa"]
    )
    assert back.status_code == 303
    assert back.headers["location"].startswith("/login/mfa")
    assert SESSION_COOKIE not in back.cookies
    assert (await client.get("/api/v1/session")).status_code == 401

    await csrf(client)
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the next step: the one just used to confirm is spent
    done = await client.post("/api/v1/login/mfa", json={"method": "totp", "code": code})
    assert done.status_code == 200, done.text
    assert done.json()["session"]["aal"] == "aal2"
    records = [r for r in await services.sessions.list_sessions(pat.id) if r.connection_id]
    assert [(r.org_id, r.connection_id) for r in records] == [(org.id, connection.id)]


async def test_a_required_local_second_factor_the_account_lacks_must_be_set_up_first(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    services = services_of(client)
    await acme(services, idp, policy=Policy(require_local_mfa=True))
    back = await through_idp(
        client, "/sso/start?email=quinn@acme.test", _idp=idp, sub="q", email="quinn@acme.test"
    )
    assert back.status_code == 303
    assert back.headers["location"] == "/account"  # the account page asks for a second factor first
    quinn = await services.users.get_by_email("quinn@acme.test")
    assert quinn is not None and quinn.mfa_required


async def test_claim_names_are_the_connections_own(client: httpx.AsyncClient, idp: ScriptedIdp) -> None:
    """An IdP that puts the address in `upn` and groups in `roles` (as Entra can)."""
    from threshold.core.sso.connections import ClaimNames

    services = services_of(client)
    org, _ = await acme(services, idp, slug="plain")  # a first connection with the usual names
    other = await services.orgs.create(name="Contoso", slug="contoso", context=OPERATOR)
    await services.orgs.add_domain(other, "contoso.test", context=OPERATOR)
    await services.orgs.verify_domain(other, "contoso.test", trust=True, context=OPERATOR)
    connection = await services.sso.connections.add_oidc(
        other,
        name="Contoso",
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        policy=Policy(role_groups={"Contoso.Admins": "admin"}),
        claims=ClaimNames(email="upn", groups="roles"),
        context=OPERATOR,
    )
    assert services.sso.connections.summary(connection)["claims"] == {
        "email": "upn",
        "name": "name",
        "groups": "roles",
    }
    back = await through_idp(
        client,
        "/sso/start?email=rui@contoso.test",
        _idp=idp,
        sub="r",
        upn="rui@contoso.test",
        email="someone.else@elsewhere.test",
        roles=["Contoso.Admins"],
    )
    assert back.status_code == 303, back.text[:300]
    assert (await session_of(client))["user"]["email"] == "rui@contoso.test"
    rui = await services.users.get_by_email("rui@contoso.test")
    assert rui is not None
    assert [(m.org_id, m.role) for m in await services.orgs.memberships(rui)] == [(other.id, OrgRole.ADMIN)]
    assert org.id != other.id


async def test_an_account_nobody_verified_is_claimed_by_the_authoritative_idp_not_linked_as_it_is(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    """Pre-hijacking: someone signs up with Alice's address before her first SSO sign-in (sign-up does
    not require verification by default). Her IdP, authoritative for the address, gets the account;
    what the squatter set up (password, sessions) is gone."""
    services = services_of(client)
    assert (await signup(client, "alice@acme.test")).status_code == 201  # the squatter
    squatter_session = client.cookies.get(SESSION_COOKIE)
    squatted = await services.users.get_by_email("alice@acme.test")
    assert squatted is not None and not squatted.email_verified
    await acme(services, idp)

    alice = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    back = await through_idp(
        alice, "/sso/start?email=alice@acme.test", _idp=idp, sub="a", email="alice@acme.test"
    )
    assert back.status_code == 303, back.text[:300]
    assert (await session_of(alice))["user"]["id"] == squatted.id
    claimed = await services.users.get(squatted.id)
    assert claimed is not None and claimed.email_verified
    assert await services.users.get_password(squatted.id) is None
    assert "sso_account_claimed" in await audit_kinds(services, squatted.id)

    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, squatter_session or "", domain="auth.threshold.test")
    assert (await client.get("/api/v1/session")).status_code == 401  # the squatter's session ended
    client.cookies.clear()
    assert (await login(client, "alice@acme.test")).status_code == 401  # and the password is gone
    await alice.aclose()


async def test_a_social_connection_does_not_sign_in_addresses_an_organization_manages(
    client_factory: Factory, idp: ScriptedIdp
) -> None:
    social = [{"id": "acmeid", "name": "AcmeID", "issuer": idp.issuer, "client_id": idp.client_id,
               "client_secret": idp.client_secret}]  # fmt: skip
    client: httpx.AsyncClient = await client_factory(sso={"social": social})
    services = services_of(client)
    org = await services.orgs.create(name="Acme", slug="acme", context=OPERATOR)
    await services.orgs.add_domain(org, "acme.test", context=OPERATOR)
    await services.orgs.verify_domain(org, "acme.test", trust=True, context=OPERATOR)
    back = await through_idp(
        client,
        "/sso/start?connection=social-acmeid",
        _idp=idp,
        sub="x",
        email="ex@acme.test",
        email_verified=True,
    )
    rejected(back, "domain_managed")
    assert await services.users.get_by_email("ex@acme.test") is None


async def test_another_site_cannot_start_a_sign_in_without_the_person(
    client: httpx.AsyncClient, idp: ScriptedIdp
) -> None:
    """Login CSRF through an IdP of an attacker's choosing: a cross-site start asks first."""
    services = services_of(client)
    _, connection = await acme(services, idp)
    path = f"/sso/start?connection={connection.id}"
    asked = await client.get(path, headers={"Sec-Fetch-Site": "cross-site"})
    assert asked.status_code == 200
    assert f'href="{path}"' in asked.text
    assert "__Host-threshold_sso" not in asked.headers.get("set-cookie", "")
    assert idp.codes == {}
    confirmed = await client.get(path, headers={"Sec-Fetch-Site": "same-origin"})
    assert confirmed.status_code == 303
