"""One authorize decision (OIDC Core 3.1.2.3 to 3.1.2.6) for GET and POST /oauth2/authorize and the consent
submit alike: sign-in, a second factor owed, max_age, prompt=login, first-party and consent rules.

Issue 11, holes 3 and 4: the consent form used to issue a code without re-checking any of them, and
`prompt=none` for a user who must enrol a second factor went to /account instead of answering the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.conftest import ISSUER, STRONG_PASSWORD
from tests.oidc.helpers import OP, RP, hidden_inputs, pkce, query_of, redirected, unverified
from threshold.core.crypto import SecretBox
from threshold.core.models import Aal, Amr, SessionRecord, User
from threshold.oidc.authorize import AuthorizationRequest
from threshold.oidc.authorize_decision import (
    STARTED_LIFETIME,
    STARTED_PARAM,
    AskConsent,
    AuthorizeDecision,
    EnrollFirst,
    ErrorToClient,
    IssueCode,
    SignInFirst,
    decide_authorization,
    open_started,
    seal_started,
)
from threshold.oidc.models import AuthMethod, Client, Consent, GrantType

Made = Callable[..., Awaitable[OP]]


async def must_enrol(op_factory: Made, how: str) -> tuple[OP, RP, RP, dict[str, Any]]:
    """A signed-in user owing a second factor (by Settings or an operator): (op, third, first, account)."""
    op = await op_factory(mfa={"required": True}) if how == "settings" else await op_factory()
    third = await op.register(first_party=False)
    first = await op.register()
    account = await op.sign_up()
    if how == "operator":
        assert await op.services.users.set_mfa_required(account["user"]["id"], True)
    return op, third, first, account


async def post_consent(op: OP, params: dict[str, str], decision: str = "allow") -> httpx.Response:
    """The consent form posted directly: an authorization's parameters, the CSRF token and a decision."""
    form = {**params, "csrf_token": await op.browser_csrf(), "decision": decision}
    return await op.browser.post("/consent", data=form, headers={"Origin": ISSUER})


def no_code(response: httpx.Response, to: str) -> None:
    assert response.status_code == 303, (response.status_code, response.text[:300])
    location = response.headers["location"]
    assert location == to or location.startswith(to), location
    assert "code=" not in location


async def sign_in_again(op: OP, login_location: str, email: str) -> str:
    """Complete the hosted sign-in the provider sent the browser to; returns where it goes next."""
    page = await op.browser.get(login_location)
    assert page.status_code == 200 and 'name="password"' in page.text
    form = {**hidden_inputs(page.text), "email": email, "password": STRONG_PASSWORD}
    signed_in = await op.browser.post("/login", data=form, headers={"Origin": ISSUER})
    assert signed_in.status_code == 303, signed_in.text[:300]
    location = signed_in.headers["location"]
    if location.startswith("/account/passkey-upgrade?"):
        return query_of(location)["next"]
    return location


# --- hole 3: the consent submit runs the whole decision -------------------------------------------


@pytest.mark.parametrize("how", ["settings", "operator"])
async def test_consent_submit_gives_no_code_to_a_user_who_must_enrol(op_factory: Made, how: str) -> None:
    op, third, first, _ = await must_enrol(op_factory, how)
    for rp in (third, first):
        _, challenge = pkce()

        response = await post_consent(op, op.authorize_params(rp, challenge))

        no_code(response, "/account")


async def test_consent_page_shown_then_the_operator_requires_a_factor_gives_no_code(op: OP) -> None:
    rp = await op.register(first_party=False)
    account = await op.sign_up()
    _, challenge = pkce()
    page = await op.authorize(op.authorize_params(rp, challenge))
    assert page.status_code == 200 and 'action="/consent"' in page.text

    assert await op.services.users.set_mfa_required(account["user"]["id"], True)

    no_code(await op.consent(page, "allow"), "/account")
    assert await op.provider.list_consents(await _user(op, account)) == []


async def test_consent_submit_rechecks_max_age(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    _, challenge = pkce()
    page = await op.authorize(op.authorize_params(rp, challenge, max_age="60"))
    assert page.status_code == 200 and 'action="/consent"' in page.text

    op.clock.advance(120)  # the page was left open past max_age

    response = await op.consent(page, "allow")

    no_code(response, "/login?")
    assert query_of(response.headers["location"])["reauth"] == "1"


async def test_consent_submit_rechecks_prompt_login(op: OP) -> None:
    rp = await op.register(first_party=False)
    await op.sign_up()
    op.clock.advance(2)
    _, challenge = pkce()

    response = await post_consent(op, op.authorize_params(rp, challenge, prompt="login"))

    no_code(response, "/login?")
    assert query_of(response.headers["location"])["reauth"] == "1"


async def test_consent_submit_without_a_session_goes_to_login(op: OP) -> None:
    rp = await op.register(first_party=False)
    _, challenge = pkce()

    no_code(await post_consent(op, op.authorize_params(rp, challenge)), "/login?")


async def test_consent_submit_for_a_first_party_client_records_no_consent(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    verifier, challenge = pkce()
    params = op.authorize_params(rp, challenge)

    returned = redirected(await post_consent(op, params))

    assert returned["state"] == params["state"]
    assert (await op.exchange(rp, returned["code"], verifier)).status_code == 200
    assert await op.provider.list_consents(await _user(op, account)) == []


@pytest.mark.parametrize("overrides", [{"prompt": "login"}, {"max_age": "0"}])
async def test_a_fresh_sign_in_satisfies_the_consent_submit_too(op: OP, overrides: dict[str, str]) -> None:
    rp = await op.register(first_party=False)
    account = await op.sign_up()
    op.clock.advance(2)
    verifier, challenge = pkce()
    params = op.authorize_params(rp, challenge, **overrides)
    to_login = await op.authorize(params)
    no_code(to_login, "/login?")

    op.clock.advance(3)
    back = await sign_in_again(op, to_login.headers["location"], account["user"]["email"])
    page = await op.browser.get(back)
    assert page.status_code == 200 and 'action="/consent"' in page.text, page.text[:300]
    op.clock.advance(5)  # reading the consent page takes a while: max_age=0 is still met by the sign-in
    returned = redirected(await op.consent(page, "allow"))

    assert returned["state"] == params["state"]
    body = (await op.exchange(rp, returned["code"], verifier)).json()
    assert unverified(body["id_token"])[1]["auth_time"] == int(op.clock.now()) - 5


async def test_a_sign_in_made_for_another_request_does_not_satisfy_prompt_login(op: OP) -> None:
    rp = await op.register()
    account = await op.sign_up()
    op.clock.advance(2)
    _, challenge = pkce()
    to_login = await op.authorize(op.authorize_params(rp, challenge, prompt="login"))
    back = await sign_in_again(op, to_login.headers["location"], account["user"]["email"])
    started = query_of(back)[STARTED_PARAM]
    op.clock.advance(2)

    _, other_challenge = pkce()
    other = {**op.authorize_params(rp, other_challenge, prompt="login"), STARTED_PARAM: started}
    forged = {**op.authorize_params(rp, challenge, prompt="login"), STARTED_PARAM: "v1." + "A" * 60}

    for params in (other, forged):
        response = await op.authorize(params)
        no_code(response, "/login?")
        assert query_of(response.headers["location"])["reauth"] == "1"


# --- hole 4: prompt=none answers the client -------------------------------------------------------


@pytest.mark.parametrize("how", ["settings", "operator"])
async def test_prompt_none_for_a_user_who_must_enrol_is_interaction_required(
    op_factory: Made, how: str
) -> None:
    op, third, first, _ = await must_enrol(op_factory, how)
    for rp in (first, third):
        _, challenge = pkce()
        params = op.authorize_params(rp, challenge, prompt="none")

        returned = redirected(await op.authorize(params), rp.redirect_uri)

        assert returned["error"] == "interaction_required", returned
        assert returned["state"] == params["state"] and returned["iss"] == ISSUER
        assert "code" not in returned


@pytest.mark.parametrize("how", ["settings", "operator"])
async def test_a_user_who_must_enrol_goes_to_the_account_page_from_the_endpoint(
    op_factory: Made, how: str
) -> None:
    op, third, first, _ = await must_enrol(op_factory, how)
    for rp in (first, third):
        _, challenge = pkce()
        params = op.authorize_params(rp, challenge)

        no_code(await op.authorize(params), "/account")
        no_code(await op.browser.post("/oauth2/authorize", data=params), "/account")


async def _user(op: OP, account: dict[str, Any]) -> Any:
    user = await op.services.users.get(account["user"]["id"])
    assert user is not None
    return user


# --- the decision itself: one rule at a time ------------------------------------------------------

NOW = 1_000_000.0
SIGNED_IN_AT = NOW - 100
USER = User("u1", "a@example.com", "a@example.com", True, False, NOW - 1000)
SESSION = SessionRecord(
    "digest", "sid", "u1", SIGNED_IN_AT, NOW, NOW + 600, NOW + 3600, Aal.AAL1, (Amr.PASSWORD,), "", "", "",
    auth_time=SIGNED_IN_AT,
)  # fmt: skip


def authorization(*, first_party: bool = False, prompt: str = "", **changes: Any) -> AuthorizationRequest:
    client = Client(
        "c1", "RP", None, True, first_party, ("https://rp.example/cb",), (), (GrantType.AUTHORIZATION_CODE,),
        ("openid", "email"), AuthMethod.NONE, None, 300, "ES256", NOW - 5000,
    )  # fmt: skip
    request = AuthorizationRequest(
        client=client,
        redirect_uri="https://rp.example/cb",
        scopes=("openid", "email"),
        state="s",
        nonce="n",
        code_challenge="c" * 43,
        prompt=frozenset(prompt.split()),
        max_age=None,
    )
    return replace(request, **changes)


CONSENTED = Consent("u1", "c1", frozenset({"openid", "email"}), NOW - 50)


def decide(
    request: AuthorizationRequest,
    *,
    session: SessionRecord | None = SESSION,
    user: User | None = USER,
    enrollment_owed: bool = False,
    consent: Consent | None = CONSENTED,
    consenting: bool = False,
) -> AuthorizeDecision:
    return decide_authorization(
        request,
        session=session,
        user=user,
        enrollment_owed=enrollment_owed,
        consent=consent,
        consenting=consenting,
        now=NOW,
    )


def error_code(decision: AuthorizeDecision) -> str:
    assert isinstance(decision, ErrorToClient), decision
    return decision.error.code


def test_every_rule_met_issues_the_code() -> None:
    assert decide(authorization()) == IssueCode(record_consent=False)
    assert decide(authorization(first_party=True), consent=None) == IssueCode(record_consent=False)


def test_no_live_session_of_an_enabled_user_signs_in_first() -> None:
    assert decide(authorization(), session=None, user=None) == SignInFirst(force=False)
    expired = replace(SESSION, idle_expires_at=NOW)
    for session, user in (
        (expired, USER),
        (SESSION, replace(USER, disabled=True)),
        (SESSION, replace(USER, id="u2")),
    ):
        assert decide(authorization(), session=session, user=user, consenting=True) == SignInFirst(force=True)


def test_prompt_login_is_met_only_by_a_sign_in_since_the_request_started() -> None:
    assert decide(authorization(prompt="login"), consenting=True) == SignInFirst(force=True)
    before = authorization(prompt="login", started_at=SIGNED_IN_AT + 1)
    assert decide(before, consenting=True) == SignInFirst(force=True)
    since = authorization(prompt="login", started_at=SIGNED_IN_AT)
    assert decide(since) == IssueCode(record_consent=False)


def test_max_age_is_met_by_a_recent_enough_sign_in_or_one_since_the_request_started() -> None:
    assert decide(authorization(max_age=100)) == IssueCode(record_consent=False)
    assert decide(authorization(max_age=99), consenting=True) == SignInFirst(force=True)
    assert decide(authorization(max_age=0, started_at=SIGNED_IN_AT - 5)) == IssueCode(record_consent=False)


def test_a_second_factor_owed_comes_after_sign_in_and_before_consent() -> None:
    for request in (authorization(), authorization(first_party=True)):
        assert decide(request, enrollment_owed=True, consenting=True) == EnrollFirst()
    owed_stale = decide(authorization(prompt="login"), enrollment_owed=True)
    assert owed_stale == SignInFirst(force=True)


def test_consent_is_remembered_for_every_scope_given_now_or_not_asked_of_a_first_party_client() -> None:
    assert decide(authorization(), consent=None) == AskConsent()
    narrower = replace(CONSENTED, scopes=frozenset({"openid"}))
    assert decide(authorization(), consent=narrower) == AskConsent()
    assert decide(authorization(prompt="consent")) == AskConsent()
    assert decide(authorization(prompt="consent"), consenting=True) == IssueCode(record_consent=True)
    assert decide(authorization(first_party=True, prompt="consent"), consent=None) == IssueCode(
        record_consent=False
    )
    assert decide(authorization(first_party=True), consent=None, consenting=True) == IssueCode(
        record_consent=False
    )


def test_prompt_none_turns_each_interaction_into_its_error() -> None:
    none = authorization(prompt="none")
    assert error_code(decide(none, session=None, user=None)) == "login_required"
    assert error_code(decide(replace(none, max_age=1))) == "login_required"
    assert error_code(decide(none, enrollment_owed=True)) == "interaction_required"
    assert error_code(decide(none, consent=None)) == "consent_required"
    assert decide(none) == IssueCode(record_consent=False)


def test_a_sealed_start_opens_only_for_its_own_request_and_for_a_while() -> None:
    box = SecretBox(b"k" * 32)
    request = authorization()
    sealed = seal_started(box, request, started_at=NOW - 10)

    assert open_started(box, request, sealed, now=NOW) == NOW - 10
    assert open_started(box, replace(request, code_challenge="d" * 43), sealed, now=NOW) is None
    assert open_started(box, replace(request, state="other"), sealed, now=NOW) is None
    assert open_started(SecretBox(b"j" * 32), request, sealed, now=NOW) is None
    assert open_started(box, request, sealed, now=NOW - 11) is None  # from the future
    assert open_started(box, request, sealed, now=NOW - 10 + STARTED_LIFETIME + 1) is None
    for forged in (None, "", "v1.", "v1." + "A" * 60, "v2.x", sealed[:-2], "x" * 500):
        assert open_started(box, request, forged, now=NOW) is None
