"""An access token's grant ended on one process (or by the CLI) is refused by introspection and userinfo on
another process at once (issue 11, hole 5).

Server B answers as A's issuer (one public name, as behind a load balancer). Each round B first finds
the token active (so it has read, and would have cached, the session, user and client behind it), then
the grant ends elsewhere, and B's very next introspection must say inactive. Runs on PostgreSQL + Redis
and on PostgreSQL alone (its invalidation feed is LISTEN/NOTIFY).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.blackbox.oidc_support import LOGOUT_URI, REDIRECT_URI, HttpRP, IssuerBrowser
from tests.conftest import unique_email
from tests.scaleout.conftest import Pair
from tests.support import Server


@dataclass
class Issuer:
    pair: Pair
    a: Server
    b: Server

    def cli(self, *args: str) -> None:
        result = self.pair.deployment.cli(*args)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def issuer(pair: Pair) -> Iterator[Issuer]:
    b = pair.deployment.start(issuer=pair.a.base_url)
    yield Issuer(pair=pair, a=pair.a, b=b)
    b.stop()


def _rp(issuer: Issuer, http: httpx.Client) -> HttpRP:
    return HttpRP.create(
        issuer.pair.deployment,
        http,
        "--redirect-uri",
        REDIRECT_URI,
        "--post-logout-redirect-uri",
        LOGOUT_URI,
        "--first-party",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--scope",
        "offline_access",
    )


def _api(issuer: Issuer, http: httpx.Client) -> HttpRP:
    return HttpRP.create(
        issuer.pair.deployment, http, "--grant-type", "client_credentials", "--scope", "api:read"
    )


def _log_out(issuer: Issuer, browser: IssuerBrowser, email: str, rp: HttpRP) -> None:
    assert browser.post(issuer.a, "/api/v1/logout").status_code == 204


def _disable(issuer: Issuer, browser: IssuerBrowser, email: str, rp: HttpRP) -> None:
    issuer.cli("users", "disable", email)  # a third process


def _delete_client(issuer: Issuer, browser: IssuerBrowser, email: str, rp: HttpRP) -> None:
    issuer.cli("clients", "delete", rp.client_id)


ENDINGS: dict[str, Callable[[Issuer, IssuerBrowser, str, HttpRP], None]] = {
    "logout-on-a": _log_out,
    "user-disabled-by-cli": _disable,
    "client-deleted-by-cli": _delete_client,
}


@pytest.mark.parametrize("how", sorted(ENDINGS))
def test_b_refuses_an_access_token_whose_grant_ended_elsewhere(
    issuer: Issuer, http: httpx.Client, how: str
) -> None:
    rp, api = _rp(issuer, http), _api(issuer, http)
    email = unique_email("grant")
    browser = IssuerBrowser(http, origin=issuer.a.base_url)
    assert browser.signup(issuer.a, email).status_code == 201
    bystander = IssuerBrowser(http, origin=issuer.a.base_url)
    assert bystander.signup(issuer.a, unique_email("bystander")).status_code == 201
    other_rp = _rp(issuer, http)
    tokens = rp.tokens(browser, issuer.a)
    unaffected = other_rp.tokens(bystander, issuer.a)
    for token in (tokens["access_token"], unaffected["access_token"]):
        assert api.post(issuer.b, "/oauth2/introspect", {"token": token}).json()["active"] is True
        assert rp.userinfo(issuer.b, token).status_code == 200  # B has read everything behind it

    ENDINGS[how](issuer, browser, email, rp)

    assert api.post(issuer.b, "/oauth2/introspect", {"token": tokens["access_token"]}).json() == {
        "active": False
    }
    assert rp.userinfo(issuer.b, tokens["access_token"]).status_code == 401
    assert api.post(issuer.b, "/oauth2/introspect", {"token": unaffected["access_token"]}).json()["active"]


def test_b_refuses_the_access_tokens_of_a_refresh_token_revoked_on_a(
    issuer: Issuer, http: httpx.Client
) -> None:
    rp, api = _rp(issuer, http), _api(issuer, http)
    browser = IssuerBrowser(http, origin=issuer.a.base_url)
    assert browser.signup(issuer.a, unique_email("grant")).status_code == 201
    tokens = rp.tokens(browser, issuer.a)
    assert (
        api.post(issuer.b, "/oauth2/introspect", {"token": tokens["access_token"]}).json()["active"] is True
    )

    assert rp.post(issuer.a, "/oauth2/revoke", {"token": tokens["refresh_token"]}).status_code == 200

    assert api.post(issuer.b, "/oauth2/introspect", {"token": tokens["access_token"]}).json() == {
        "active": False
    }
