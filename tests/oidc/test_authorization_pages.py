"""The hosted pages of an authorization: they name the application, their forms may redirect to its
registered redirect URI (CSP form-action), and every way in (sign-up, reset, emailed sign-in) keeps it.

Chromium applies `form-action` to each hop of the redirect chain that follows a form post, so a page
whose form ends at the application must name the redirect URI's origin, and no other page may.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx

from tests.conftest import ISSUER, STRONG_PASSWORD, unique_email
from tests.oidc.helpers import LOGOUT_URI, OP, REDIRECT_URI, RP, hidden_inputs, pkce, redirected

__all__ = ["form_action", "login_page_of"]

BROWSER_POST = {"origin": ISSUER, "sec-fetch-site": "same-origin"}
RP_ORIGIN = "https://rp.example"


def form_action(response: httpx.Response) -> list[str]:
    policy = response.headers["content-security-policy"]
    match = re.search(r"form-action ([^;]+)", policy)
    assert match, policy
    return match.group(1).split()


async def login_page_of(op: OP, rp: RP, browser: httpx.AsyncClient | None = None) -> httpx.Response:
    _, challenge = pkce()
    started = await op.authorize(op.authorize_params(rp, challenge), browser)
    assert started.status_code == 303 and started.headers["location"].startswith("/login?")
    return await (browser or op.browser).get(started.headers["location"])


async def test_the_sign_in_page_of_an_authorization_names_the_app_and_lets_its_form_reach_it(op: OP) -> None:
    rp = await op.register(first_party=False)

    page = await login_page_of(op, rp)

    assert page.status_code == 200
    assert "Continue to <strong>Relying Party</strong>" in page.text
    assert form_action(page) == ["'self'", RP_ORIGIN]


async def test_a_page_without_an_authorization_or_with_a_forged_one_allows_only_self(op: OP) -> None:
    rp = await op.register()
    forged = "/oauth2/authorize?" + urlencode(
        {"client_id": rp.client_id, "redirect_uri": "https://evil.example/cb", "response_type": "code"}
    )
    unknown = "/oauth2/authorize?" + urlencode(
        {"client_id": "nobody", "redirect_uri": REDIRECT_URI, "response_type": "code"}
    )

    for path in ("/login", "/signup", "/login?" + urlencode({"next": forged}), "/login?next=" + unknown):
        page = await op.browser.get(path)
        assert page.status_code == 200, path
        assert form_action(page) == ["'self'"], path
        assert "Continue to" not in page.text, path


async def test_the_consent_page_lets_allow_and_deny_reach_the_app(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    _, challenge = pkce()

    page = await op.authorize(op.authorize_params(rp, challenge))

    assert page.status_code == 200 and 'action="/consent"' in page.text
    assert form_action(page) == ["'self'", RP_ORIGIN]
    denied = await op.browser.post(
        "/consent", data={**hidden_inputs(page.text), "decision": "deny"}, headers=BROWSER_POST
    )
    assert redirected(denied)["error"] == "access_denied"


async def test_rp_initiated_logout_confirmation_lets_its_form_return_to_the_app(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()

    page = await op.browser.get(
        "/oauth2/logout", params={"client_id": rp.client_id, "post_logout_redirect_uri": LOGOUT_URI}
    )

    assert page.status_code == 200
    assert form_action(page) == ["'self'", RP_ORIGIN]
    assert "Relying Party" in page.text
    done = await op.browser.post("/oauth2/logout", data=hidden_inputs(page.text), headers=BROWSER_POST)
    assert done.status_code == 303 and done.headers["location"].startswith(LOGOUT_URI)


async def test_signing_up_from_an_authorization_returns_to_it(op: OP) -> None:
    rp = await op.register(first_party=False)
    login = await login_page_of(op, rp)
    signup_link = re.search(r'href="(/signup\?next=[^"]+)"', login.text)
    assert signup_link, "the sign-in page's 'Create an account' link drops the authorization"

    page = await op.browser.get(signup_link.group(1).replace("&amp;", "&"))
    assert form_action(page) == ["'self'", RP_ORIGIN]
    form = hidden_inputs(page.text)
    assert form["next"].startswith("/oauth2/authorize?")
    created = await op.browser.post(
        "/signup",
        data={**form, "email": unique_email("rt"), "password": STRONG_PASSWORD},
        headers=BROWSER_POST,
    )

    assert created.status_code == 303
    assert created.headers["location"] == form["next"]
    consent = await op.browser.get(created.headers["location"])
    assert consent.status_code == 200 and 'action="/consent"' in consent.text


async def test_the_failed_sign_in_page_keeps_the_authorization_and_the_email_link(op: OP) -> None:
    rp = await op.register()
    page = await login_page_of(op, rp)
    form = hidden_inputs(page.text)

    failed = await op.browser.post(
        "/login",
        data={**form, "email": unique_email("nobody"), "password": "wrong password 123"},
        headers=BROWSER_POST,
    )

    assert failed.status_code == 401
    assert hidden_inputs(failed.text)["next"] == form["next"]
    assert "Email me a sign-in link" in failed.text
    assert "Continue to <strong>Relying Party</strong>" in failed.text
    assert form_action(failed) == ["'self'", RP_ORIGIN]


async def test_a_logo_set_by_an_update_shows_on_the_pages_and_the_update_is_audited(op: OP) -> None:
    from sqlalchemy import select

    from threshold.adapters.sql.schema import audit_events

    rp = await op.register(first_party=False)
    updated = await op.provider.update_client(
        rp.client_id, logo_uri="https://rp.example/logo.png", id_token_alg="ES256", rotate_secret=True
    )
    assert updated is not None and updated.secret

    page = await login_page_of(op, rp)

    assert '<img src="https://rp.example/logo.png" alt="" class="app-logo"' in page.text
    assert updated.client.id_token_alg == "ES256"
    async with op.services.engine.connect() as conn:
        details = [
            row.detail
            for row in await conn.execute(
                select(audit_events.c.detail).where(audit_events.c.kind == "client_updated")
            )
        ]
    assert any(rp.client_id in d and "secret" in d and "logo_uri" in d for d in details), details
    assert all(updated.secret not in d for d in details)
