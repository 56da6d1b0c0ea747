"""One end of access reaches everything at once, on real processes, with applications that listen.

A person signs in with a browser, and two applications (each a confidential client registered with
`--backchannel-logout-uri`, each with a real back-channel logout endpoint that checks tokens with
`threshold.client.BackchannelLogout`) get tokens for that session, on different processes. When the
person's access ends, whatever the cause, every process refuses the session at once, introspection and
userinfo refuse the access tokens, the refresh token is dead, and both applications receive a verified
logout token naming the session (`sid`, the one in their ID tokens) and the person (`sub`), within a
second. An application that is down hears of it when it comes back. On SQLite (one process) and on
PostgreSQL + Redis (two processes behind one issuer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.blackbox.oidc_support import LOGOUT_URI, REDIRECT_URI, HttpRP, IssuerBrowser, error_of
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.oidc.helpers import hidden_inputs, pkce, query_of, unverified
from tests.support import Deployment, Server, make_deployment, wait_for
from tests.support.event_app import EventApp
from tests.support.logout_app import LogoutApp

WITHIN = 1.0
"""The target: from the answer that ends access to its refusal everywhere and the logout tokens."""


@dataclass
class Op:
    deployment: Deployment
    a: Server
    b: Server
    backend: str

    @property
    def issuer(self) -> str:
        return self.a.base_url


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def op(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Op]:
    backend = request.param
    with make_deployment(
        tmp_path_factory.mktemp("fanout"),
        backend,
        THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP="1000",
        THRESHOLD_RATE_LIMIT__LOGIN_PER_IP="1000",
        THRESHOLD_BACKCHANNEL__RETRY_BASE="0.2",
        THRESHOLD_BACKCHANNEL__MAX_BACKOFF="0.5",
        THRESHOLD_BACKCHANNEL__POLL_INTERVAL="0.2",
    ) as deployment:
        a = deployment.start()
        b = deployment.start(issuer=a.url) if backend != "sqlite" else a
        yield Op(deployment=deployment, a=a, b=b, backend=backend)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def register(op: Op, http: httpx.Client, app: LogoutApp, *, first_party: bool = True) -> HttpRP:
    rp = HttpRP.create(
        op.deployment,
        http,
        "--redirect-uri",
        REDIRECT_URI,
        "--post-logout-redirect-uri",
        LOGOUT_URI,
        *(("--first-party",) if first_party else ()),
        "--backchannel-logout-uri",
        app.uri,
    )
    app.configure(client_id=rp.client_id, jwks=http.get(op.a.base_url + "/oauth2/jwks").json())
    return rp


@pytest.fixture
def apps(op: Op, http: httpx.Client) -> Iterator[list[tuple[LogoutApp, HttpRP]]]:
    started = [LogoutApp(issuer=op.issuer).start() for _ in range(2)]
    try:
        yield [(app, register(op, http, app)) for app in started]
    finally:
        for app in started:
            app.stop()


def signed_in(op: Op, http: httpx.Client, email: str, *, new: bool = True) -> tuple[IssuerBrowser, str]:
    browser = IssuerBrowser(http, origin=op.issuer)
    response = browser.signup(op.a, email) if new else browser.login(op.b, email)
    assert response.status_code in (200, 201), response.text
    return browser, response.json()["user"]["id"]


def sid_of(tokens: dict[str, Any]) -> str:
    _, claims = unverified(tokens["id_token"])
    sid: str = claims["sid"]
    return sid


def refused_everywhere(op: Op, browser: IssuerBrowser, rps: list[tuple[HttpRP, dict[str, Any]]]) -> bool:
    for server in (op.a, op.b):
        if browser.get(server, "/api/v1/session").status_code != 401:
            return False
        for rp, tokens in rps:
            if rp.post(server, "/oauth2/introspect", {"token": tokens["access_token"]}).json() != {
                "active": False
            }:
                return False
            if rp.userinfo(server, tokens["access_token"]).status_code != 401:
                return False
    return True


def standing(op: Op, browser: IssuerBrowser, rp: HttpRP, tokens: dict[str, Any]) -> None:
    for server in (op.a, op.b):
        assert browser.get(server, "/api/v1/session").status_code == 200
        assert rp.post(server, "/oauth2/introspect", {"token": tokens["access_token"]}).json()["active"]


def test_discovery_advertises_back_channel_logout(op: Op, http: httpx.Client) -> None:
    body = http.get(op.a.base_url + "/.well-known/openid-configuration").json()
    assert body["backchannel_logout_supported"] is True
    assert body["backchannel_logout_session_supported"] is True


def test_a_disabled_person_loses_everything_at_once_and_both_applications_hear_of_it(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]]
) -> None:
    (app1, rp1), (app2, rp2) = apps
    email = unique_email("offboarded")
    browser, user_id = signed_in(op, http, email)
    tokens1 = rp1.tokens(browser, op.a)
    tokens2 = rp2.tokens(browser, op.b, token_server=op.b)
    sid = sid_of(tokens1)
    assert sid_of(tokens2) == sid
    bystander, _ = signed_in(op, http, unique_email("bystander"))
    bystander_tokens = rp1.tokens(bystander, op.b)

    result = op.deployment.cli("users", "disable", email)
    assert result.returncode == 0, result.stderr
    answered = time.perf_counter()

    # (a) and (b): refused on every process, introspection inactive, userinfo refused
    while not refused_everywhere(op, browser, [(rp1, tokens1), (rp2, tokens2)]):
        assert time.perf_counter() - answered < WITHIN, "still accepted a second after the answer"
    assert error_of(rp1.refresh(op.b, tokens1["refresh_token"]), 400) == "invalid_grant"
    # (c): both applications have verified logout tokens for the session and the person
    for app in (app1, app2):
        app.wait_for_sids({sid}, timeout=WITHIN)
        assert time.perf_counter() - answered < WITHIN + 0.2
        [received] = [r for r in app.received if r.event.sid == sid]
        assert received.event.sub == user_id
        assert received.event.issuer == op.issuer
        assert not app.refused
    # someone else's session and tokens are untouched, and nobody told the applications of them
    standing(op, bystander, rp1, bystander_tokens)
    assert app1.sids() == {sid}

    assert op.deployment.cli("users", "enable", email).returncode == 0
    assert signed_in(op, http, email, new=False)[1] == user_id  # re-enabled: signs in again


@dataclass
class TwoDevices:
    """One person signed in on a laptop (the first application's tokens) and a phone (the second's)."""

    user_id: str
    laptop: IssuerBrowser
    phone: IssuerBrowser
    on_laptop: dict[str, Any]
    on_phone: dict[str, Any]


def two_devices(op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]], tag: str) -> TwoDevices:
    (_, rp1), (_, rp2) = apps
    email = unique_email(tag)
    laptop, user_id = signed_in(op, http, email)
    phone, _ = signed_in(op, http, email, new=False)
    return TwoDevices(user_id, laptop, phone, rp1.tokens(laptop, op.a), rp2.tokens(phone, op.b))


def test_logout_tells_only_the_applications_of_that_session(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]]
) -> None:
    (app1, rp1), (app2, rp2) = apps
    person = two_devices(op, http, apps, "two-devices")

    assert person.laptop.post(op.a, "/api/v1/logout").status_code == 204
    app1.wait_for_sids({sid_of(person.on_laptop)}, timeout=WITHIN)
    assert rp1.post(op.b, "/oauth2/introspect", {"token": person.on_laptop["access_token"]}).json() == {
        "active": False
    }
    time.sleep(0.5)
    assert app2.received == []  # the phone's session, and its application, stay signed in
    standing(op, person.phone, rp2, person.on_phone)
    assert app1.received[0].event.sub == person.user_id


def test_sign_out_everywhere_else_tells_the_other_sessions_applications(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]]
) -> None:
    (app1, rp1), (app2, _) = apps
    person = two_devices(op, http, apps, "everywhere")

    assert person.laptop.post(op.a, "/api/v1/sessions/revoke-others").status_code == 200
    app2.wait_for_sids({sid_of(person.on_phone)}, timeout=WITHIN)
    time.sleep(0.3)
    assert app1.received == []
    standing(op, person.laptop, rp1, person.on_laptop)


def test_refresh_token_reuse_ends_the_session_and_tells_its_applications(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]]
) -> None:
    (app1, rp1), (app2, rp2) = apps
    browser, _ = signed_in(op, http, unique_email("stolen"))
    tokens1 = rp1.tokens(browser, op.a)
    tokens2 = rp2.tokens(browser, op.a)
    assert rp1.refresh(op.a, tokens1["refresh_token"]).status_code == 200
    assert error_of(rp1.refresh(op.b, tokens1["refresh_token"]), 400) == "invalid_grant"  # reused
    sid = sid_of(tokens1)
    for app in (app1, app2):
        app.wait_for_sids({sid}, timeout=WITHIN)
    assert refused_everywhere(op, browser, [(rp1, tokens1), (rp2, tokens2)])


def test_an_application_that_is_down_hears_of_it_when_it_comes_back(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]]
) -> None:
    (down, rp1), (failing, rp2) = apps
    browser, _ = signed_in(op, http, unique_email("while-down"))
    sid = sid_of(rp1.tokens(browser, op.a))
    rp2.tokens(browser, op.b)
    down.stop()
    failing.failing = True  # up, but answering 503

    assert op.deployment.cli("users", "revoke-sessions", browser_email(op, browser)).returncode == 0
    time.sleep(1.0)
    assert failing.attempts >= 2  # retried with backoff
    assert failing.received == [] and down.received == []

    down.start()
    failing.failing = False
    for app in (down, failing):
        app.wait_for_sids({sid}, timeout=10)
    assert len([r for r in down.received if r.event.sid == sid]) == 1
    assert down.refused == [] and failing.refused == []  # delivered once: no second delivery, replayed


def test_the_sender_never_follows_a_redirect(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]]
) -> None:
    """A back-channel logout URI that answers 307 elsewhere does not get the token delivered elsewhere
    (section 2.5: the OP must not follow redirects; here the target would even accept it): the
    delivery is a failure, retried at the registered URI."""
    (bouncing, rp1), (elsewhere, _) = apps
    elsewhere.configure(client_id=rp1.client_id, jwks=http.get(op.a.base_url + "/oauth2/jwks").json())
    bouncing.redirect_to = elsewhere.uri
    browser, _ = signed_in(op, http, unique_email("bounced"))
    rp1.tokens(browser, op.a)

    assert browser.post(op.a, "/api/v1/logout").status_code == 204
    wait_for(lambda: bouncing.attempts >= 2, timeout=5, what="a retry at the registered URI")
    assert elsewhere.attempts == 0 and elsewhere.received == []


def consented_tokens(op: Op, rp: HttpRP, browser: IssuerBrowser) -> dict[str, Any]:
    """A third-party application's tokens: the person allows it on the consent page first."""
    verifier, challenge = pkce()
    params = {
        "client_id": rp.client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email offline_access",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = browser.get(op.a, "/oauth2/authorize?" + urlencode(params))
    assert page.status_code == 200 and 'action="/consent"' in page.text, page.text[:300]
    allowed = browser.post_form(op.a, "/consent", {**hidden_inputs(page.text), "decision": "allow"})
    assert allowed.status_code == 303, allowed.text[:300]
    exchanged = rp.exchange(op.a, query_of(allowed.headers["location"])["code"], verifier)
    assert exchanged.status_code == 200, exchanged.text
    tokens: dict[str, Any] = exchanged.json()
    return tokens


def test_withdrawing_consent_signs_the_person_out_of_that_application_only(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]]
) -> None:
    (first_party_app, first_party), _ = apps
    third = LogoutApp(issuer=op.issuer).start()
    try:
        third_party = register(op, http, third, first_party=False)
        browser, _ = signed_in(op, http, unique_email("withdrawn"))
        theirs = consented_tokens(op, third_party, browser)
        ours = first_party.tokens(browser, op.a)

        withdrawn = browser.post_form(
            op.a, f"/account/apps/{third_party.client_id}/revoke", {"csrf_token": browser.fetch_csrf(op.a)}
        )
        assert withdrawn.status_code == 303, withdrawn.text[:300]
        third.wait_for_sids({sid_of(theirs)}, timeout=WITHIN)
        assert third_party.post(op.b, "/oauth2/introspect", {"token": theirs["access_token"]}).json() == {
            "active": False
        }
        assert error_of(third_party.refresh(op.b, theirs["refresh_token"]), 400) == "invalid_grant"
        time.sleep(0.3)
        assert first_party_app.received == []  # the person's session, and the other application, stand
        standing(op, browser, first_party, ours)
    finally:
        third.stop()


def browser_email(op: Op, browser: IssuerBrowser) -> str:
    response = browser.get(op.a, "/api/v1/session")
    assert response.status_code == 200, response.text
    email: str = response.json()["user"]["email"]
    return email


def test_back_channel_logout_uris_follow_the_redirect_uri_rules(op: Op) -> None:
    for uri in ("http://rp.example/logout", "https://rp.example/logout#frag", "not a url"):
        result = op.deployment.cli(
            "clients",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            REDIRECT_URI,
            "--backchannel-logout-uri",
            uri,
        )
        assert result.returncode != 0, uri
        assert "backchannel_logout_uri" in result.stderr
    result = op.deployment.cli(
        "clients",
        "create",
        "--name",
        "x",
        "--redirect-uri",
        REDIRECT_URI,
        "--backchannel-logout-uri",
        "https://rp.example/logout",
        "--backchannel-logout-session-required",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert '"backchannel_logout_session_required": true' in result.stdout


# --- SCIM: the organization's identity provider offboards the person -----------------------------------

DOMAIN = "offboarded.example"
ENTRA_DEACTIVATE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
}
ENTRA_REACTIVATE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "Replace", "path": "active", "value": "True"}],
}


@dataclass
class Scim:
    base: str
    headers: dict[str, str]
    org: str


@pytest.fixture(scope="module")
def scim(op: Op) -> Scim:
    def cli(*args: str) -> Any:
        result = op.deployment.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    org = cli("orgs", "create", "--name", "Offboarding Inc")
    cli("orgs", "domains", "add", org["slug"], DOMAIN)
    cli("orgs", "domains", "verify", org["slug"], DOMAIN, "--trust")
    token = cli("orgs", "scim-token", org["slug"], "--name", "Entra ID")
    assert token["base_url"].endswith("/scim/v2")
    return Scim(
        base=op.a.base_url + "/scim/v2",
        headers={"Authorization": f"Bearer {token['token']}", "Content-Type": "application/scim+json"},
        org=org["slug"],
    )


def provisioned(op: Op, http: httpx.Client, scim: Scim) -> tuple[str, str, str]:
    """(email, SCIM id, account id) of a person with a password, provisioned by the organization's IdP."""
    email = unique_email("scim").split("@")[0] + f"@{DOMAIN}"
    made = op.deployment.cli(
        "users", "create", "--email", email, "--password-stdin", "--verified", stdin=STRONG_PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    response = http.post(
        scim.base + "/Users",
        headers=scim.headers,
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "active": True,
            "emails": [{"primary": True, "type": "work", "value": email}],
            "externalId": email.split("@")[0],
        },
    )
    assert response.status_code == 201, response.text
    listed = json.loads(op.deployment.cli("users", "list", "--json").stdout)
    account = next(u["id"] for u in listed if u["email"] == email)
    return email, response.json()["id"], account


def test_a_scim_deactivation_in_entras_shape_reaches_every_session_token_and_application(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]], scim: Scim
) -> None:
    (app1, rp1), (app2, rp2) = apps
    email, scim_id, user_id = provisioned(op, http, scim)
    browser, _ = signed_in(op, http, email, new=False)
    tokens1 = rp1.tokens(browser, op.a)
    tokens2 = rp2.tokens(browser, op.b, token_server=op.b)
    sid = sid_of(tokens1)

    response = http.patch(f"{scim.base}/Users/{scim_id}", headers=scim.headers, json=ENTRA_DEACTIVATE)
    answered = time.perf_counter()
    assert response.status_code in (200, 204), response.text

    while not refused_everywhere(op, browser, [(rp1, tokens1), (rp2, tokens2)]):
        assert time.perf_counter() - answered < WITHIN, "still accepted a second after the answer"
    assert error_of(rp1.refresh(op.b, tokens1["refresh_token"]), 400) == "invalid_grant"
    for app in (app1, app2):
        app.wait_for_sids({sid}, timeout=WITHIN)
        assert time.perf_counter() - answered < WITHIN + 0.2
        assert [r.event.sub for r in app.received if r.event.sid == sid] == [user_id]
    login = IssuerBrowser(http, origin=op.issuer).login(op.b, email)
    assert login.status_code in (401, 403), login.text  # deactivated: no new sign-in either

    response = http.patch(f"{scim.base}/Users/{scim_id}", headers=scim.headers, json=ENTRA_REACTIVATE)
    assert response.status_code in (200, 204), response.text
    assert signed_in(op, http, email, new=False)[1] == user_id  # reactivation restores sign-in


def test_a_scim_deletion_ends_everything_and_removes_the_person(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]], scim: Scim
) -> None:
    (app1, rp1), _ = apps
    email, scim_id, _ = provisioned(op, http, scim)
    browser, _ = signed_in(op, http, email, new=False)
    tokens = rp1.tokens(browser, op.a)

    assert http.delete(f"{scim.base}/Users/{scim_id}", headers=scim.headers).status_code == 204
    answered = time.perf_counter()
    while not refused_everywhere(op, browser, [(rp1, tokens)]):
        assert time.perf_counter() - answered < WITHIN
    app1.wait_for_sids({sid_of(tokens)}, timeout=WITHIN)
    assert http.get(f"{scim.base}/Users/{scim_id}", headers=scim.headers).status_code == 404
    members = op.deployment.cli("orgs", "members", "list", scim.org, "--json")
    assert email not in members.stdout


def test_a_deleted_person_is_signed_out_of_every_application_and_those_that_listen_hear_of_the_erasure(
    op: Op, http: httpx.Client, apps: list[tuple[LogoutApp, HttpRP]]
) -> None:
    """The operator's deletion ends everything at once (logout tokens to both applications); the
    erasure sends a verified RISC account-purged event to the application that registered a deletion
    event URI and held a grant of the person, and to no other."""
    (app1, rp1), (app2, _) = apps
    events = EventApp(issuer=op.issuer).start()
    bystanders = EventApp(issuer=op.issuer).start()
    try:
        jwks = http.get(op.a.base_url + "/oauth2/jwks").json()
        listening = register(op, http, app2)  # a second client on app2's logout endpoint...
        assert (
            op.deployment.cli(
                "clients", "update", listening.client_id, "--deletion-event-uri", events.uri
            ).returncode
            == 0
        )
        events.configure(client_id=listening.client_id, jwks=jwks)
        app2.configure(client_id=listening.client_id, jwks=jwks)
        unrelated = HttpRP.create(
            op.deployment, http, "--redirect-uri", REDIRECT_URI, "--deletion-event-uri", bystanders.uri
        )
        bystanders.configure(client_id=unrelated.client_id, jwks=jwks)

        email = unique_email("deleted")
        browser, user_id = signed_in(op, http, email)
        tokens1 = rp1.tokens(browser, op.a)
        tokens2 = listening.tokens(browser, op.b, token_server=op.b)
        sid = sid_of(tokens1)

        result = op.deployment.cli("users", "delete", email)
        assert result.returncode == 0, result.stderr
        answered = time.perf_counter()
        while not refused_everywhere(op, browser, [(rp1, tokens1), (listening, tokens2)]):
            assert time.perf_counter() - answered < WITHIN, "still accepted a second after the answer"
        for app in (app1, app2):
            app.wait_for_sids({sid}, timeout=WITHIN + 1)
        assert events.received == []  # locked, not erased yet

        result = op.deployment.cli("users", "delete", email, "--now")
        assert result.returncode == 0, result.stderr
        [(header, claims)] = events.wait_for(1)
        assert header["typ"] == "secevent+jwt"
        assert claims["aud"] == listening.client_id and claims["iss"] == op.issuer
        assert "sub" not in claims and "exp" not in claims
        assert claims["events"] == {
            "https://schemas.openid.net/secevent/risc/event-type/account-purged": {
                "subject": {"format": "iss_sub", "iss": op.issuer, "sub": user_id}
            }
        }
        time.sleep(0.5)
        assert len(events.received) == 1 and not events.refused
        assert bystanders.received == [] and not bystanders.refused
    finally:
        events.stop()
        bystanders.stop()
