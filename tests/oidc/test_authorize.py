"""The authorization endpoint (RFC 6749 4.1.1, OIDC Core 3.1.2, RFC 9207): errors, login, consent."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import ISSUER, STRONG_PASSWORD, login
from tests.oidc.helpers import (
    OP,
    REDIRECT_URI,
    hidden_inputs,
    not_redirected,
    oauth_error,
    pkce,
    query_of,
    redirected,
    unverified,
)
from threshold.oidc.authorize_decision import STARTED_PARAM


def after_login(response: httpx.Response) -> str:
    """Where the hosted login sends the browser next (through the passkey offer, which keeps `next`)."""
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    if location.startswith("/account/passkey-upgrade?"):
        return query_of(location)["next"]
    return location


async def test_unknown_client_gets_an_error_page_never_a_redirect(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    _, challenge = pkce()
    params = op.authorize_params(rp, challenge, client_id="no-such-client")

    not_redirected(await op.authorize(params))
    not_redirected(await op.authorize(op.authorize_params(rp, challenge, client_id=None)))


BAD_REDIRECT_URIS = [
    "https://evil.example/callback",
    REDIRECT_URI + "/",
    REDIRECT_URI + "?x=1",
    REDIRECT_URI + "#frag",
    REDIRECT_URI.upper(),
    "https://rp.example.evil.example/callback",
    "",
    None,
]

BAD_REQUESTS: list[tuple[dict[str, str | None], str]] = [
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"response_type": None}, "unsupported_response_type"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"scope": "email"}, "invalid_scope"),
    ({"scope": None}, "invalid_scope"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "bogus"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"nonce": "n" * 5000}, "invalid_request"),
    ({"request": "eyJ.eyJ.sig"}, "request_not_supported"),
    ({"request_uri": "https://evil.example/req"}, "request_uri_not_supported"),
]


async def test_unregistered_or_absent_redirect_uri_is_never_redirected_to(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    _, challenge = pkce()

    for redirect_uri in BAD_REDIRECT_URIS:
        response = await op.authorize(op.authorize_params(rp, challenge, redirect_uri=redirect_uri))
        assert response.status_code == 400, redirect_uri
        not_redirected(response)


async def test_bad_requests_go_back_to_the_client_with_error_state_and_iss(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    _, challenge = pkce()

    for overrides, error in BAD_REQUESTS:
        params = op.authorize_params(rp, challenge, **overrides)
        returned = redirected(await op.authorize(params))
        assert returned["error"] == error, (overrides, returned)
        assert returned["state"] == params["state"]
        assert returned["iss"] == ISSUER
        assert "code" not in returned


async def test_repeated_parameter_is_an_error_without_a_code(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    _, challenge = pkce()
    params = op.authorize_params(rp, challenge)
    query = urlencode([*params.items(), ("scope", "openid")])

    response = await op.browser.get(f"/oauth2/authorize?{query}")

    assert response.status_code == 400
    assert "code=" not in response.headers.get("location", "")


async def test_a_client_without_the_code_grant_cannot_use_the_endpoint(op: OP) -> None:
    rp = await op.register(grant_types=("client_credentials",), redirect_uris=(REDIRECT_URI,))
    await op.sign_up()
    _, challenge = pkce()

    returned = redirected(await op.authorize(op.authorize_params(rp, challenge)))

    assert returned["error"] == "unauthorized_client"


async def test_prompt_none_without_a_session_is_login_required(op: OP) -> None:
    rp = await op.register()
    _, challenge = pkce()
    params = op.authorize_params(rp, challenge, prompt="none")

    returned = redirected(await op.authorize(params))

    assert returned["error"] == "login_required"
    assert returned["state"] == params["state"] and returned["iss"] == ISSUER


async def test_prompt_none_for_a_third_party_client_without_consent_is_consent_required(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    _, challenge = pkce()

    returned = redirected(await op.authorize(op.authorize_params(rp, challenge, prompt="none")))

    assert returned["error"] == "consent_required"


async def test_prompt_none_with_a_session_and_first_party_client_returns_a_code(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()

    code, verifier, _ = await op.code(rp, prompt="none")

    assert (await op.exchange(rp, code, verifier)).status_code == 200


async def test_without_a_session_the_browser_goes_through_login_and_comes_back(op: OP) -> None:
    rp = await op.register()
    other = op.another_browser()
    account = await op.sign_up(other)
    email = account["user"]["email"]
    verifier, challenge = pkce()
    params = op.authorize_params(rp, challenge, login_hint=email)

    response = await op.authorize(params)

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?")
    back = query_of(location)["next"]
    assert back.startswith("/oauth2/authorize?")
    assert query_of(location).get("email") == email
    assert query_of(back)["state"] == params["state"]
    assert query_of(back)["code_challenge"] == challenge
    # the hosted login page carries `next` through its form
    page = await op.browser.get(location)
    assert page.status_code == 200
    assert hidden_inputs(page.text)["next"] == back
    form = {**hidden_inputs(page.text), "email": email, "password": STRONG_PASSWORD}
    signed_in = await op.browser.post("/login", data=form, headers={"Origin": ISSUER})
    assert after_login(signed_in) == back

    returned = redirected(await op.browser.get(back))

    assert returned["state"] == params["state"] and returned["iss"] == ISSUER
    tokens = await op.exchange(rp, returned["code"], verifier)
    assert tokens.status_code == 200, tokens.text


async def test_api_login_then_following_next_completes_the_flow(op: OP) -> None:
    rp = await op.register()
    other = op.another_browser()
    email = (await op.sign_up(other))["user"]["email"]
    verifier, challenge = pkce()
    params = op.authorize_params(rp, challenge)
    back = query_of((await op.authorize(params)).headers["location"])["next"]

    assert (await login(op.browser, email)).status_code == 200
    returned = redirected(await op.browser.get(back))

    assert (await op.exchange(rp, returned["code"], verifier)).status_code == 200


@pytest.mark.parametrize("overrides", [{"prompt": "login"}, {"max_age": "0"}])
async def test_prompt_login_and_max_age_zero_force_the_login_page(op: OP, overrides: dict[str, str]) -> None:
    rp = await op.register()
    account = await op.sign_up()
    op.clock.advance(2)  # the user signed in a moment ago
    verifier, challenge = pkce()
    params = op.authorize_params(rp, challenge, **overrides)

    response = await op.authorize(params)

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?")
    assert query_of(location)["reauth"] == "1"
    back = query_of(location)["next"]
    # the request is kept whole, with when it started: the fresh sign-in (after that) satisfies it
    assert query_of(back).items() >= overrides.items() and query_of(back)[STARTED_PARAM]
    page = await op.browser.get(location)
    assert page.status_code == 200 and 'name="password"' in page.text  # not skipped for a session
    # signing in again completes the flow, with a later auth_time
    form = {**hidden_inputs(page.text), "email": account["user"]["email"], "password": STRONG_PASSWORD}
    op.clock.advance(3)
    assert after_login(await op.browser.post("/login", data=form, headers={"Origin": ISSUER})) == back
    returned = redirected(await op.browser.get(back))
    body = (await op.exchange(rp, returned["code"], verifier)).json()
    claims = unverified(body["id_token"])[1]
    assert claims["auth_time"] >= int(op.clock.now()) - 1


async def test_max_age_still_satisfied_does_not_force_login(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    op.clock.advance(30)

    code, verifier, _ = await op.code(rp, max_age="600")

    assert (await op.exchange(rp, code, verifier)).status_code == 200


async def test_third_party_client_asks_for_consent_and_allow_returns_a_code(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    verifier, challenge = pkce()
    params = op.authorize_params(rp, challenge)

    page = await op.authorize(params)

    assert page.status_code == 200
    assert "Relying Party" in page.text and "offline_access" in page.text
    returned = redirected(await op.consent(page, "allow"))
    assert returned["state"] == params["state"] and returned["iss"] == ISSUER
    assert (await op.exchange(rp, returned["code"], verifier)).status_code == 200

    # remembered: the next authorization needs no page
    code, verifier, _ = await op.code(rp)
    assert (await op.exchange(rp, code, verifier)).status_code == 200


async def test_consent_deny_returns_access_denied(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    _, challenge = pkce()
    params = op.authorize_params(rp, challenge)

    returned = redirected(await op.consent(await op.authorize(params), "deny"))

    assert returned["error"] == "access_denied"
    assert returned["state"] == params["state"] and returned["iss"] == ISSUER
    assert "code" not in returned
    # nothing was remembered
    assert (await op.authorize(op.authorize_params(rp, challenge))).status_code == 200


async def test_consent_needs_the_csrf_token_and_same_origin(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    _, challenge = pkce()
    page = await op.authorize(op.authorize_params(rp, challenge))
    form = {**hidden_inputs(page.text), "decision": "allow"}

    cross_site = await op.browser.post("/consent", data=form, headers={"Origin": "https://evil.example"})
    forged = await op.browser.post(
        "/consent", data={**form, "csrf_token": "x" * 43}, headers={"Origin": ISSUER}
    )

    for response in (cross_site, forged):
        assert response.status_code == 403, response.status_code
        assert "code=" not in response.headers.get("location", "")


async def test_consent_for_more_scopes_asks_again(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    _, challenge = pkce()
    page = await op.authorize(op.authorize_params(rp, challenge, scope="openid"))
    redirected(await op.consent(page, "allow"))

    again = await op.authorize(op.authorize_params(rp, challenge, scope="openid email"))

    assert again.status_code == 200 and 'action="/consent"' in again.text


async def test_prompt_consent_shows_the_page_even_when_remembered(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    _, challenge = pkce()
    redirected(await op.consent(await op.authorize(op.authorize_params(rp, challenge)), "allow"))

    again = await op.authorize(op.authorize_params(rp, challenge, prompt="consent"))

    assert again.status_code == 200 and 'action="/consent"' in again.text


async def test_revoking_consent_on_the_account_page_asks_again_and_ends_refresh_tokens(op: OP) -> None:
    rp = await op.register(first_party=False)
    other_rp = await op.register(first_party=False)
    await op.sign_up()
    verifier, challenge = pkce()
    returned = redirected(await op.consent(await op.authorize(op.authorize_params(rp, challenge)), "allow"))
    tokens = (await op.exchange(rp, returned["code"], verifier)).json()
    v2, c2 = pkce()
    returned = redirected(await op.consent(await op.authorize(op.authorize_params(other_rp, c2)), "allow"))
    other_tokens = (await op.exchange(other_rp, returned["code"], v2)).json()
    account = await op.browser.get("/account")
    assert "Relying Party" in account.text
    token = await op.browser_csrf()

    revoked = await op.browser.post(
        f"/account/apps/{rp.client_id}/revoke", data={"csrf_token": token}, headers={"Origin": ISSUER}
    )

    assert revoked.status_code == 303
    page = await op.authorize(op.authorize_params(rp, challenge))
    assert page.status_code == 200 and 'action="/consent"' in page.text
    oauth_error(await op.refresh(rp, tokens["refresh_token"]), 400, "invalid_grant")
    # the other application keeps its consent and its tokens
    assert (await op.refresh(other_rp, other_tokens["refresh_token"])).status_code == 200
    assert (await op.authorize(op.authorize_params(other_rp, c2))).status_code == 303


async def test_revoking_consent_needs_the_csrf_token(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    _, challenge = pkce()
    redirected(await op.consent(await op.authorize(op.authorize_params(rp, challenge)), "allow"))

    await op.browser.post(f"/account/apps/{rp.client_id}/revoke", data={}, headers={"Origin": ISSUER})

    assert (await op.authorize(op.authorize_params(rp, challenge))).status_code == 303  # still allowed


async def test_post_to_the_authorization_endpoint_works_too(op: OP) -> None:
    rp = await op.register()
    await op.sign_up()
    verifier, challenge = pkce()
    params = op.authorize_params(rp, challenge)

    returned = redirected(await op.browser.post("/oauth2/authorize", data=params))

    assert returned["state"] == params["state"]
    assert (await op.exchange(rp, returned["code"], verifier)).status_code == 200


async def test_the_code_is_not_sent_to_a_redirect_uri_of_another_client(op: OP) -> None:
    rp = await op.register()
    other = await op.register(redirect_uris=("https://other.example/cb",))
    await op.sign_up()
    _, challenge = pkce()

    response = await op.authorize(op.authorize_params(rp, challenge, redirect_uri=other.redirect_uri))

    not_redirected(response)
