"""Native apps (RFC 8252): a public client with PKCE and no secret, redirected to a loopback IP on
whatever port the app got from the operating system (section 7.3: the port is not part of the match), or
to a private-use URI scheme of its own (section 7.1), exactly as registered otherwise."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.oidc.helpers import OP, not_redirected, pkce, redirected

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_a_loopback_redirect_takes_any_port_and_the_code_exchange_names_it(op: OP) -> None:
    rp = await op.register(public=True, redirect_uris=("http://127.0.0.1/oauth2/callback",))
    assert rp.secret is None
    await op.sign_up()
    for port in (51234, 8080, 1):
        app = replace(rp, redirect_uri=f"http://127.0.0.1:{port}/oauth2/callback")
        code, verifier, _ = await op.code(app)  # redirected to that port, state and iss checked
        exchanged = await op.exchange(app, code, verifier)  # which the exchange names again
        assert exchanged.status_code == 200, exchanged.text
        assert exchanged.json()["refresh_token"]


async def test_the_ipv6_loopback_and_a_registered_port_work_too(op: OP) -> None:
    rp = await op.register(public=True, redirect_uris=("http://[::1]/cb", "http://127.0.0.1:9000/cb"))
    await op.sign_up()
    for uri in ("http://[::1]:61000/cb", "http://127.0.0.1:9000/cb", "http://127.0.0.1:9001/cb"):
        _, challenge = pkce()
        redirected(await op.authorize(op.authorize_params(rp, challenge, redirect_uri=uri)), uri)


async def test_only_the_port_may_differ(op: OP) -> None:
    rp = await op.register(public=True, redirect_uris=("http://127.0.0.1/oauth2/callback",))
    await op.sign_up()
    _, challenge = pkce()
    for uri in (
        "http://127.0.0.1:5000/oauth2/other",
        "http://127.0.0.1:5000/oauth2/callback?x=1",
        "http://127.0.0.1:5000/oauth2/callback#f",
        "http://localhost:5000/oauth2/callback",
        "http://127.0.0.2:5000/oauth2/callback",
        "https://127.0.0.1:5000/oauth2/callback",
        "http://user@127.0.0.1:5000/oauth2/callback",
        "http://127.0.0.1:notaport/oauth2/callback",
        "http://127.0.0.1:99999/oauth2/callback",
        "http://127.0.0.1.evil.example:5000/oauth2/callback",
    ):
        response = await op.authorize(op.authorize_params(rp, challenge, redirect_uri=uri))
        not_redirected(response)


async def test_a_registered_https_redirect_keeps_its_exact_port(op: OP) -> None:
    rp = await op.register(redirect_uris=("https://app.example:8443/cb",))
    await op.sign_up()
    _, challenge = pkce()
    other_port = await op.authorize(op.authorize_params(rp, challenge, redirect_uri="https://app.example/cb"))
    not_redirected(other_port)


async def test_a_private_use_scheme_redirect(op: OP) -> None:
    uri = "com.example.app:/oauth2redirect"
    rp = await op.register(public=True, redirect_uris=(uri,))
    await op.sign_up()
    code, verifier, _ = await op.code(rp)
    exchanged = await op.exchange(rp, code, verifier)
    assert exchanged.status_code == 200, exchanged.text
