"""Forward-auth for every address a person can sign up with, on a real server, both ways a request can
be answered: the fast lane of `threshold serve` and the router (the same app under uvicorn without it).

Issue 11, hole 8: an address outside ASCII (`иван@example.com`) could not be written into a header, so
forward-auth answered 500 for that person and every proxied application locked them out. The address
now always travels percent-encoded in `X-Threshold-User-Email-Encoded`, and as it is in
`X-Threshold-User-Email` only when it is printable ASCII (unchanged for those addresses); otherwise that
header is sent empty, never left out (a client-sent one must not survive a proxy that copies only the
headers of the auth answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest

from tests.blackbox.conftest import Browser
from tests.support import Server, make_deployment

pytestmark = pytest.mark.slow

ADDRESSES = {
    # address: the plain header, or "" where it must be empty (present, so that a proxy which copies
    # only the headers the auth answer has still overwrites one the client sent)
    "иван@example.com": "",
    "josé.müller@example.com": "",  # Latin-1 would fit a header byte for byte, but not as UTF-8
    "用户@例子.广告": "",
    "plain.person@example.com": "plain.person@example.com",
    "100%real+tag@example.com": "100%real+tag@example.com",  # ASCII that looks encoded stays as it is
}


@pytest.fixture(scope="module", params=["fast lane", "router"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with make_deployment(tmp_path_factory.mktemp("forward-auth"), "sqlite", tag="fwd") as deployment:
        # The router: the deployment's app under uvicorn with the fast lane off.
        factory = None if request.param == "fast lane" else "tests.blackbox.routed_app:from_environment"
        yield deployment.start(factory=factory)


@pytest.mark.parametrize("email", list(ADDRESSES))
def test_forward_auth_passes_every_address_on_losslessly(server: Server, email: str) -> None:
    with httpx.Client(timeout=30) as http:
        browser = Browser(http)
        signed_up = browser.signup(server, email)
        assert signed_up.status_code == 201, signed_up.text
        stored = signed_up.json()["user"]["email"]
        answer = browser.get(server, "/api/v1/forward-auth")
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-threshold-user-id"] == signed_up.json()["user"]["id"]
        encoded = answer.headers["x-threshold-user-email-encoded"]
        assert encoded.isascii() and unquote(encoded, errors="strict") == stored
        assert "x-threshold-user-email" in answer.headers
        assert answer.headers["x-threshold-user-email"] == ADDRESSES[email]

        browser.fetch_csrf(server)
        assert browser.post(server, "/api/v1/logout").status_code in (200, 204)
        assert browser.get(server, "/api/v1/forward-auth").status_code == 401
