"""The OpenID Connect provider driven over HTTP, as a relying party would, against real processes.

Two `threshold serve` processes answer as one issuer on PostgreSQL + Redis (the first one at its own
URL, so discovery is followed literally); clients and keys are managed with the CLI as an operator
would. The CLI is also exercised on the embedded SQLite deployment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.blackbox.oidc_support import (
    LOGOUT_URI,
    REDIRECT_URI,
    HttpRP,
    IssuerBrowser,
    error_of,
)
from tests.conftest import unique_email
from tests.oidc.helpers import expected_at_hash, query_of, unverified
from tests.support import Deployment, Server, clean_env, make_deployment, run_cli


@dataclass
class Op:
    deployment: Deployment
    a: Server
    b: Server

    @property
    def issuer(self) -> str:
        return self.a.base_url


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Op]:
    with make_deployment(
        tmp_path_factory.mktemp("oidc"), "postgres+redis", THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP="1000"
    ) as deployment:
        a = deployment.start()
        b = deployment.start(issuer=a.url)  # behind one public name, as behind a load balancer
        yield Op(deployment=deployment, a=a, b=b)


@pytest.fixture(scope="module")
def rp_args() -> list[str]:
    return [
        "--redirect-uri",
        REDIRECT_URI,
        "--post-logout-redirect-uri",
        LOGOUT_URI,
        "--first-party",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--scope",
        "offline_access",
        "--scope",
        "api:read",
    ]


@pytest.fixture(scope="module")
def rp(op: Op, rp_args: list[str]) -> Iterator[HttpRP]:
    """One confidential, first-party client registered with the CLI, shared by the module."""
    with httpx.Client(timeout=30) as back_channel:
        yield HttpRP.create(op.deployment, back_channel, *rp_args)


def signed_in_browser(op: Op, http: httpx.Client) -> tuple[IssuerBrowser, dict[str, dict[str, str]]]:
    browser = IssuerBrowser(http, origin=op.issuer)
    response = browser.signup(op.a, unique_email("bb-oidc"))
    assert response.status_code == 201, response.text
    return browser, response.json()


def jwks_of(http: httpx.Client, server: Server) -> KeySet:
    response = http.get(server.base_url + "/oauth2/jwks")
    assert response.status_code == 200
    return KeySet.import_key_set(response.json())


def session_status(browser: IssuerBrowser, server: Server) -> int:
    return browser.get(server, "/api/v1/session").status_code


def test_discovery_then_code_and_pkce_flow_end_to_end(op: Op, http: httpx.Client, rp: HttpRP) -> None:
    browser, account = signed_in_browser(op, http)
    doc = http.get(op.a.base_url + "/.well-known/openid-configuration").json()
    assert doc["issuer"] == op.issuer
    keys = KeySet.import_key_set(http.get(doc["jwks_uri"]).json())
    code, verifier, params = rp.authorize(browser, op.a)

    response = http.post(
        doc["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(rp.client_id, rp.secret or ""),
    )

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    id_token = jwt.decode(body["id_token"], keys, algorithms=["RS256"])  # the ID-token default
    claims = id_token.claims
    assert claims["iss"] == op.issuer and claims["aud"] == rp.client_id
    assert claims["sub"] == account["user"]["id"] and claims["nonce"] == params["nonce"]
    assert claims["sid"] == account["session"]["id"]
    assert claims["at_hash"] == expected_at_hash(body["access_token"], "RS256")
    access = jwt.decode(body["access_token"], keys, algorithms=["Ed25519"])
    assert access.header["typ"] == "at+jwt" and access.claims["client_id"] == rp.client_id
    assert "email" not in access.claims
    info = http.get(doc["userinfo_endpoint"], headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json() == {"sub": claims["sub"], "email": account["user"]["email"], "email_verified": False}


def test_the_authorize_endpoint_sends_a_browser_without_session_to_login(
    op: Op, http: httpx.Client, rp: HttpRP
) -> None:
    browser = IssuerBrowser(http, origin=op.issuer)

    response = browser.get(
        op.a,
        f"/oauth2/authorize?client_id={rp.client_id}&redirect_uri={REDIRECT_URI}&response_type=code"
        "&scope=openid&code_challenge=" + "a" * 43 + "&code_challenge_method=S256&state=s",
    )

    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Foauth2%2Fauthorize")
    evil = browser.get(op.a, f"/oauth2/authorize?client_id={rp.client_id}&redirect_uri=https://evil.example/")
    assert evil.status_code == 400 and "location" not in evil.headers


def test_refresh_rotation_and_reuse_detection(op: Op, http: httpx.Client, rp: HttpRP) -> None:
    browser, _ = signed_in_browser(op, http)
    tokens = rp.tokens(browser, op.a)
    rotated = rp.refresh(op.a, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    newest = rotated.json()["refresh_token"]
    assert newest != tokens["refresh_token"]

    assert error_of(rp.refresh(op.a, tokens["refresh_token"]), 400) == "invalid_grant"

    assert error_of(rp.refresh(op.a, newest), 400) == "invalid_grant"
    assert session_status(browser, op.a) == 401


def test_code_replay_fails_and_revokes_what_the_code_issued(op: Op, http: httpx.Client, rp: HttpRP) -> None:
    browser, _ = signed_in_browser(op, http)
    tokens = rp.tokens(browser, op.a)

    replay = rp.exchange(op.a, tokens["_code"], tokens["_verifier"])

    assert error_of(replay, 400) == "invalid_grant"
    assert error_of(rp.refresh(op.a, tokens["refresh_token"]), 400) == "invalid_grant"
    refused = rp.userinfo(op.a, tokens["access_token"])
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_client_credentials_and_introspection(op: Op, http: httpx.Client, rp: HttpRP) -> None:
    response = rp.post(op.a, "/oauth2/token", {"grant_type": "client_credentials", "scope": "api:read"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body and "id_token" not in body
    claims = unverified(body["access_token"])[1]
    assert claims["sub"] == rp.client_id and claims["scope"] == "api:read"
    introspected = rp.post(op.b, "/oauth2/introspect", {"token": body["access_token"]}).json()
    assert introspected["active"] is True and introspected["client_id"] == rp.client_id
    assert rp.userinfo(op.a, body["access_token"]).status_code == 401  # no user behind it


def test_revocation_and_introspection_across_processes(op: Op, http: httpx.Client, rp: HttpRP) -> None:
    browser, account = signed_in_browser(op, http)
    tokens = rp.tokens(browser, op.a)
    introspected = rp.post(op.b, "/oauth2/introspect", {"token": tokens["refresh_token"]}).json()
    assert introspected["active"] is True and introspected["sub"] == account["user"]["id"]

    assert rp.post(op.a, "/oauth2/revoke", {"token": tokens["access_token"]}).status_code == 200
    assert rp.post(op.a, "/oauth2/revoke", {"token": tokens["refresh_token"]}).status_code == 200
    assert rp.post(op.a, "/oauth2/revoke", {"token": "never-issued"}).status_code == 200

    for server in (op.a, op.b):
        assert rp.userinfo(server, tokens["access_token"]).status_code == 401
        assert rp.post(server, "/oauth2/introspect", {"token": tokens["access_token"]}).json() == {
            "active": False
        }
        assert rp.post(server, "/oauth2/introspect", {"token": tokens["refresh_token"]}).json() == {
            "active": False
        }
    assert error_of(rp.refresh(op.b, tokens["refresh_token"]), 400) == "invalid_grant"


def test_rp_initiated_logout(op: Op, http: httpx.Client, rp: HttpRP) -> None:
    browser, _ = signed_in_browser(op, http)
    tokens = rp.tokens(browser, op.a)

    unregistered = browser.get(
        op.a,
        "/oauth2/logout?"
        + f"id_token_hint={tokens['id_token']}&post_logout_redirect_uri=https://evil.example/&state=x",
    )
    assert unregistered.status_code == 400 and "location" not in unregistered.headers
    response = browser.get(
        op.a,
        f"/oauth2/logout?id_token_hint={tokens['id_token']}&post_logout_redirect_uri={LOGOUT_URI}&state=bye",
    )

    assert response.status_code == 303, response.text
    assert response.headers["location"].split("?")[0] == LOGOUT_URI
    assert query_of(response.headers["location"]) == {"state": "bye"}
    assert session_status(browser, op.a) == 401 and session_status(browser, op.b) == 401
    assert error_of(rp.refresh(op.b, tokens["refresh_token"]), 400) == "invalid_grant"


def test_logout_confirmation_page_without_a_hint(op: Op, http: httpx.Client, rp: HttpRP) -> None:
    browser, _ = signed_in_browser(op, http)

    page = browser.get(op.a, "/oauth2/logout")

    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf and session_status(browser, op.a) == 200
    response = browser.post_form(op.a, "/oauth2/logout", {"csrf_token": csrf.group(1)})
    assert response.status_code == 303
    assert session_status(browser, op.a) == 401


def test_a_refresh_token_rotated_on_one_process_cannot_be_replayed_on_the_other(
    op: Op, http: httpx.Client, rp: HttpRP
) -> None:
    browser, _ = signed_in_browser(op, http)
    tokens = rp.tokens(browser, op.a, token_server=op.b)  # authorized on A, exchanged on B
    rotated = rp.refresh(op.b, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text

    assert error_of(rp.refresh(op.a, tokens["refresh_token"]), 400) == "invalid_grant"

    assert error_of(rp.refresh(op.b, rotated.json()["refresh_token"]), 400) == "invalid_grant"
    assert session_status(browser, op.a) == 401 and session_status(browser, op.b) == 401
    # a code exchanged on B cannot be replayed on A either
    fresh, _ = signed_in_browser(op, http)
    code, verifier, _ = rp.authorize(fresh, op.b)
    assert rp.exchange(op.b, code, verifier).status_code == 200
    assert error_of(rp.exchange(op.a, code, verifier), 400) == "invalid_grant"


def test_key_rotation_with_the_cli_is_honoured_by_every_process(
    op: Op, http: httpx.Client, rp: HttpRP
) -> None:
    browser, _ = signed_in_browser(op, http)
    before = rp.tokens(browser, op.a)
    old_kid = unverified(before["access_token"])[0]["kid"]
    b_jwks = {k["kid"] for k in http.get(op.b.base_url + "/oauth2/jwks").json()["keys"]}
    # the second rotation promotes a key neither running process has loaded yet
    for args in (["keys", "rotate"], ["keys", "rotate", "--alg", "Ed25519"]):
        result = op.deployment.cli(*args)
        assert result.returncode == 0, result.stderr
    listed = json.loads(op.deployment.cli("keys", "list", "--json").stdout)
    active = next(k["kid"] for k in listed if k["alg"] == "Ed25519" and k["state"] == "active")
    upcoming = next(k["kid"] for k in listed if k["alg"] == "Ed25519" and k["state"] == "next")
    assert active not in b_jwks and old_kid in {k["kid"] for k in listed if k["state"] == "retired"}

    fresh = op.deployment.start(issuer=op.issuer)  # a process started after the rotation
    try:
        fresh_jwks = {k["kid"] for k in http.get(fresh.base_url + "/oauth2/jwks").json()["keys"]}
        assert {active, upcoming, old_kid} <= fresh_jwks
        after = rp.tokens(browser, op.a, token_server=fresh)
        assert unverified(after["access_token"])[0]["kid"] == active

        # B has never seen this kid: it reloads the keys instead of refusing the token
        assert rp.userinfo(op.b, after["access_token"]).status_code == 200
        assert rp.userinfo(op.a, after["access_token"]).status_code == 200
        # tokens signed before the rotation still verify everywhere
        for server in (op.a, op.b, fresh):
            assert rp.userinfo(server, before["access_token"]).status_code == 200, server.base_url
        assert {active, upcoming} <= {
            k["kid"] for k in http.get(op.b.base_url + "/oauth2/jwks").json()["keys"]
        }
        keys = jwks_of(http, op.b)
        jwt.decode(after["id_token"], keys, algorithms=["RS256"])
        jwt.decode(before["id_token"], keys, algorithms=["RS256"])
    finally:
        fresh.stop()


# --- the CLI on the embedded SQLite deployment ------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("oidc-cli")
    env = clean_env(THRESHOLD_DATA_DIR=directory / "data", THRESHOLD_LOG_LEVEL="warning")
    result = run_cli("migrate", env=env, cwd=directory)
    assert result.returncode == 0, result.stderr
    return env


def cli_json(env: dict[str, str], *args: str) -> object:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_clients_create_list_delete(sqlite_env: dict[str, str]) -> None:
    confidential = cli_json(
        sqlite_env,
        "clients",
        "create",
        "--name",
        "Web app",
        "--redirect-uri",
        REDIRECT_URI,
        "--post-logout-redirect-uri",
        LOGOUT_URI,
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "client_credentials",
        "--scope",
        "openid",
        "--scope",
        "api:read",
        "--json",
    )
    public = cli_json(
        sqlite_env,
        "clients",
        "create",
        "--name",
        "Mobile app",
        "--redirect-uri",
        "com.example.app:/callback",
        "--public",
        "--first-party",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--json",
    )
    assert isinstance(confidential, dict) and isinstance(public, dict)

    assert len(confidential["client_id"]) >= 16 and len(confidential["client_secret"]) >= 32
    assert confidential["token_endpoint_auth_method"] == "client_secret_basic"
    assert confidential["public"] is False and confidential["first_party"] is False
    assert confidential["grant_types"] == ["authorization_code", "client_credentials"]
    assert confidential["scopes"] == ["openid", "api:read"]
    assert confidential["redirect_uris"] == [REDIRECT_URI]
    assert confidential["post_logout_redirect_uris"] == [LOGOUT_URI]
    assert "client_secret" not in public and public["token_endpoint_auth_method"] == "none"
    assert public["public"] is True and public["first_party"] is True

    listed = cli_json(sqlite_env, "clients", "list", "--json")
    assert isinstance(listed, list)
    by_id = {c["client_id"]: c for c in listed}
    assert {confidential["client_id"], public["client_id"]} <= set(by_id)
    assert all("client_secret" not in c and "secret_digest" not in c for c in listed)
    assert confidential["client_secret"] not in json.dumps(listed)

    deleted = run_cli("clients", "delete", public["client_id"], env=sqlite_env)
    assert deleted.returncode == 0, deleted.stderr
    remaining = cli_json(sqlite_env, "clients", "list", "--json")
    assert isinstance(remaining, list)
    assert public["client_id"] not in {c["client_id"] for c in remaining}
    again = run_cli("clients", "delete", public["client_id"], env=sqlite_env)
    assert again.returncode != 0 and public["client_id"] in again.stderr


def test_cli_refuses_inconsistent_clients(sqlite_env: dict[str, str]) -> None:
    for args in (
        ["--public", "--grant-type", "client_credentials"],
        ["--redirect-uri", "http://example.com/cb"],  # plain http off loopback
    ):
        result = run_cli("clients", "create", "--name", "Bad", *args, "--json", env=sqlite_env)
        assert result.returncode != 0, args
        assert result.stdout.strip() == "", args
        assert "Traceback" not in result.stderr


def test_cli_keys_list_and_rotate(sqlite_env: dict[str, str]) -> None:
    keys = cli_json(sqlite_env, "keys", "list", "--json")
    assert isinstance(keys, list)
    for alg in ("Ed25519", "ES256", "RS256"):
        states = sorted(k["state"] for k in keys if k["alg"] == alg)
        assert states == ["active", "next"], (alg, keys)
    assert all("private" not in json.dumps(k).lower() and "d" not in k for k in keys)
    before = {(k["alg"], k["state"]): k["kid"] for k in keys}

    result = run_cli("keys", "rotate", "--alg", "ES256", env=sqlite_env)
    assert result.returncode == 0, result.stderr
    assert before[("ES256", "next")] in result.stdout

    after = cli_json(sqlite_env, "keys", "list", "--json")
    assert isinstance(after, list)
    state = {k["kid"]: k["state"] for k in after}
    assert state[before[("ES256", "active")]] == "retired"
    assert state[before[("ES256", "next")]] == "active"
    assert sum(1 for k in after if k["alg"] == "ES256" and k["state"] == "next") == 1
    retired = next(k for k in after if k["kid"] == before[("ES256", "active")])
    assert retired["expires_at"]  # published until every token it signed has expired
    for alg in ("Ed25519", "RS256"):  # untouched
        assert state[before[(alg, "active")]] == "active" and state[before[(alg, "next")]] == "next"
