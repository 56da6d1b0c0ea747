"""The backend-for-frontend (threshold.client.bff) against a real `threshold serve`, a real upstream API
checking tokens with TokenVerifier, and the BFF itself on uvicorn, each on its own loopback origin: the
sign-in, the API calls, refresh with rotation (one at a time per session), logout, back-channel logout,
and every refusal. A browser over plain http: cookies are carried explicitly (they are Secure)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.bff.conftest import CALLS, SpaBrowser, Stack
from tests.blackbox.oidc_support import IssuerBrowser
from tests.support import clean_env, free_port, spawn
from threshold.client.bff import LOGIN_COOKIE, SESSION_COOKIE


def test_sign_in_keeps_every_token_server_side(browser: SpaBrowser) -> None:
    done = browser.sign_in("/app?tab=2")
    assert done.status_code == 303 and done.headers["location"] == "/app?tab=2", done.text
    assert SESSION_COOKIE in browser.cookies and LOGIN_COOKIE not in browser.cookies
    user = browser.bff("GET", "/bff/user", headers=CALLS)
    assert user.status_code == 200 and user.json()["email"].startswith("spa-")
    called = browser.bff(
        "POST", "/api/orders?x=1", headers={**CALLS, "Content-Type": "text/plain"}, content=b"hi"
    )
    assert called.status_code == 200, called.text
    body = called.json()
    assert body["sub"] == user.json()["sub"] and body["path"] == "/v1/orders" and body["query"] == "x=1"
    assert body["method"] == "POST" and body["body"] == "hi"
    assert body["cookie"] is None and body["csrf"] is None  # the browser's cookies stay at the BFF
    assert called.headers["x-upstream"] == "yes" and "set-cookie" not in called.headers
    assert called.headers.get_list("x-repeated") == ["one", "two"]  # repeated names kept, in order
    big = browser.bff("GET", f"/api/large?size={300 * 1024}", headers=CALLS)  # past the buffered size
    assert big.status_code == 200 and big.content == b"z" * 300 * 1024
    assert big.headers.get("transfer-encoding") == "chunked"
    for response in (done, user, called):
        assert "eyJ" not in response.text and "eyJ" not in str(response.headers)  # no JWT reaches it


def test_calls_without_the_header_or_from_another_site_are_refused(browser: SpaBrowser) -> None:
    browser.sign_in()
    assert browser.bff("GET", "/bff/user").status_code == 403
    assert browser.bff("GET", "/api/orders").status_code == 403
    assert browser.bff("POST", "/bff/logout").status_code == 403
    cross = {**CALLS, "Sec-Fetch-Site": "cross-site"}
    assert browser.bff("GET", "/api/orders", headers=cross).status_code == 403
    assert (
        browser.bff("GET", "/api/orders", headers={**CALLS, "Origin": "https://evil.example"}).status_code
        == 403
    )
    assert (
        browser.bff("GET", "/api/orders", headers={**CALLS, "Sec-Fetch-Site": "same-origin"}).status_code
        == 200
    )
    browser.cookies.pop(SESSION_COOKIE)
    assert browser.bff("GET", "/bff/user", headers=CALLS).status_code == 401
    assert browser.bff("GET", "/api/orders", headers=CALLS).status_code == 401


def test_return_to_is_a_same_origin_path_only(browser: SpaBrowser) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        assert browser.sign_in(target).headers["location"] == "/"


def test_a_callback_the_browser_did_not_start_is_a_clear_page(browser: SpaBrowser, stack: Stack) -> None:
    assert browser.bff("GET", "/bff/callback?code=x&state=y").status_code == 400
    started = browser.bff("GET", "/bff/login")
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    denied = browser.bff("GET", f"/bff/callback?error=access_denied&state={state}")
    assert denied.status_code == 400 and "cancelled" in denied.text
    browser.cookies[LOGIN_COOKIE] = state  # the cookie kept (an old copy): the state is known, and used
    replayed = browser.bff("GET", f"/bff/callback?code=x&state={state}")
    assert replayed.status_code == 400 and "already used" in replayed.text  # used once


def test_concurrent_calls_share_one_refresh_and_the_family_survives(
    browser: SpaBrowser, stack: Stack
) -> None:
    browser.sign_in()
    bff = stack.bff
    refreshes: list[str] = []
    original = bff._token_request

    async def counting(form: Any) -> dict[str, Any]:
        if form.get("grant_type") == "refresh_token":
            refreshes.append(form["refresh_token"])
        return await original(form)

    bff._token_request = counting  # type: ignore[method-assign]
    bff._clock = lambda: time.time() + 290  # the access token nearly spent
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as http:
                answers = await asyncio.gather(
                    *(http.get(f"{stack.url}/api/x", headers={**CALLS, "Cookie": cookie}) for _ in range(12))
                )
            return [a.status_code for a in answers]

        assert asyncio.run(burst()) == [200] * 12
        assert len(refreshes) == 1
        bff._clock = lambda: time.time() + 590  # and again later
        assert browser.bff("GET", "/api/x", headers=CALLS).status_code == 200
        assert len(refreshes) == 2 and refreshes[0] != refreshes[1]  # rotated, and not a reuse
    finally:
        bff._token_request = original  # type: ignore[method-assign]
        bff._clock = time.time


def test_logout_ends_the_session_here_and_at_threshold(browser: SpaBrowser, stack: Stack) -> None:
    browser.sign_in()
    out = browser.bff("POST", "/bff/logout", headers=CALLS)
    assert out.status_code == 200 and SESSION_COOKIE not in browser.cookies
    url = urlsplit(out.json()["logout_url"])
    assert url.path == "/oauth2/logout" or "logout" in url.path
    assert parse_qs(url.query)["post_logout_redirect_uri"] == [f"{stack.url}/"]
    assert browser.bff("GET", "/bff/user", headers=CALLS).status_code == 401


def test_a_back_channel_logout_from_threshold_ends_the_bff_session(browser: SpaBrowser, stack: Stack) -> None:
    browser.sign_in()
    session_cookie = browser.cookies[SESSION_COOKIE]
    assert browser.bff("GET", "/bff/user", headers=CALLS).status_code == 200
    ended = browser.issuer.post(stack.threshold, "/api/v1/logout")  # the person signs out at Threshold
    assert ended.status_code in (200, 204), ended.text
    deadline = time.monotonic() + 10
    while browser.bff("GET", "/bff/user", headers=CALLS).status_code != 401:
        assert time.monotonic() < deadline, "the BFF session outlived the Threshold session"
        time.sleep(0.1)
        browser.cookies[SESSION_COOKIE] = session_cookie


def test_threshold_bff_serves_the_spa_and_signs_in(stack: Stack, tmp_path: Path) -> None:
    """The console script: `threshold-bff ... --static DIR`, the secret from the environment, sessions in
    a database (THRESHOLD_BFF_DATABASE_URL, SQLite here)."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    made = stack.deployment.cli(
        "clients", "create", "--name", "SPA (CLI)", "--first-party",
        "--redirect-uri", f"{public}/bff/callback", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    client = json.loads(made.stdout)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>SPA</title><p>the SPA</p>")
    process = spawn(
        [
            str(Path(sys.executable).with_name("threshold-bff")),
            "--issuer", stack.threshold.url, "--client-id", client["client_id"],
            "--upstream", stack.threshold.url, "--static", str(site), "--port", str(port),
        ],
        log=tmp_path / "bff.log",
        env=clean_env(
            THRESHOLD_BFF_CLIENT_SECRET=client["client_secret"],
            THRESHOLD_BFF_DATABASE_URL=f"sqlite:///{tmp_path / 'bff.db'}",
        ),
    )  # fmt: skip
    try:
        process.wait_until_ready(f"{public}/", what="threshold-bff")
        with httpx.Client(timeout=30) as http:
            assert "the SPA" in http.get(f"{public}/").text
            assert http.get(f"{public}/bff/user").status_code == 403
            started = http.get(f"{public}/bff/login")
            assert started.status_code == 303
            assert started.headers["location"].startswith(f"{stack.threshold.url}/oauth2/authorize?")
            assert "client_secret" not in started.headers["location"]
        with sqlite3.connect(tmp_path / "bff.db") as db:  # the pending sign-in, by digest, in the database
            (pending,) = db.execute("SELECT count(*) FROM threshold_bff_logins").fetchone()
        assert pending == 1
    finally:
        process.stop()
    both = subprocess.run(
        [str(Path(sys.executable).with_name("threshold-bff")), "--issuer", stack.threshold.url,
         "--client-id", "x", "--client-secret", "y", "--upstream", stack.threshold.url,
         "--redis", "redis://127.0.0.1:6379", "--database", "sqlite:///x.db"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert both.returncode == 2 and "choose one session store" in both.stderr


def test_a_cookie_the_api_sets_for_one_person_never_reaches_the_api_for_another(
    browser: SpaBrowser, stack: Stack
) -> None:
    """The BFF's HTTP client to the API is shared by every session: it must keep no cookie jar. The API
    answers every call with `Set-Cookie: upstream=1`; no later call, this person's or another's, may
    carry it back."""
    browser.sign_in()
    first = browser.bff("GET", "/api/one", headers=CALLS)
    assert first.status_code == 200 and first.json()["cookie"] is None
    with httpx.Client(timeout=30) as http:
        issuer = IssuerBrowser(http)
        assert issuer.signup(stack.threshold, f"spa-other-{time.time_ns()}@example.com").status_code == 201
        other = SpaBrowser(stack, http, issuer)
        other.sign_in()
        theirs = other.bff("GET", "/api/two", headers=CALLS)
    assert theirs.status_code == 200 and theirs.json()["sub"] != first.json()["sub"]
    assert theirs.json()["cookie"] is None, theirs.json()
    again = browser.bff("GET", "/api/three", headers=CALLS)
    assert again.status_code == 200 and again.json()["cookie"] is None, again.json()
