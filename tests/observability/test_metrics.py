"""The metrics follow what happened: each security event, session check, token, refusal and request is
counted once, under labels from closed sets, and the durable queues are measured when scraped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.observability.helpers import (
    BEARER,
    TOKEN,
    Samples,
    assert_labels_bounded,
    delta,
    parse,
    run_traffic,
    scrape,
    value,
)
from tests.oidc.helpers import OP
from threshold.adapters.metrics import feed_state, observe_audit_event
from threshold.core.models import AuditEvent, AuditKind
from threshold.core.session_cache import SessionCache
from threshold.web.metrics import route_group


async def test_the_metrics_follow_the_traffic(
    op_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    op: OP = await op_factory(metrics_token=TOKEN, rate_limit={"signup_per_ip": 1})
    before = await scrape(op.rp)
    traffic = await run_traffic(op, monkeypatch)
    after = await scrape(op.rp)

    def change(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    assert change("threshold_security_events_total", kind="signup") == 2
    assert change("threshold_sign_ins_total", method="password", result="succeeded") == 1
    assert change("threshold_sign_ins_total", method="password", result="failed") == 2  # wrong, unknown
    assert change("threshold_sign_ins_total", method="totp", result="succeeded") == 1
    assert change("threshold_second_factors_total", method="totp", result="failed") == 1
    assert change("threshold_second_factors_total", method="totp", result="succeeded") == 1
    assert change("threshold_tokens_issued_total", grant="authorization_code") == 1
    assert change("threshold_tokens_issued_total", grant="refresh_token") == 1
    assert change("threshold_tokens_issued_total") == 2
    assert change("threshold_refresh_token_reuse_total") == 1
    assert change("threshold_revocations_total", cause="refresh_token_reuse") == 1
    assert change("threshold_revocations_total", cause="logout") == 1
    assert change("threshold_session_checks_total", result="invalid") == 1
    assert change("threshold_session_checks_total", result="valid") >= 3  # and the pages' own checks
    assert change("threshold_rate_limited_requests_total", group="api") == 1
    assert change("threshold_rate_limited_requests_total") == 1

    duration = "threshold_http_request_duration_seconds_count"
    assert change(duration, group="session_check", status="2xx") == 1
    assert change(duration, group="session_check", status="4xx") == 1
    assert change(duration, group="oauth_token", status="2xx") == 2
    assert change(duration, group="oauth_token", status="4xx") == 1
    assert change(duration, group="oauth", status="5xx") == 1
    assert change(duration, group="api", status="4xx") >= 4  # refused sign-ins, codes and sign-up
    assert change(duration, group="metrics", status="2xx") == 1  # the first scrape
    assert change(duration) == change("threshold_http_request_duration_seconds_bucket", le="+Inf")

    # the mail queued meanwhile (sign-in notices) waits: the worker runs only with the lifespan here
    assert value(after, "threshold_queue_depth", queue="mail") >= 1
    assert value(after, "threshold_queue_oldest_age_seconds", queue="mail") >= 600
    assert value(after, "threshold_queue_depth", queue="logout") == 0
    assert value(after, "threshold_queue_oldest_age_seconds", queue="logout") == 0

    assert_labels_bounded(after)
    text = (await op.rp.get("/metrics", headers=BEARER)).text
    for identifying in traffic.identifying:
        assert identifying not in text


def test_the_route_groups_are_a_closed_set() -> None:
    assert route_group("/oauth2/token") == "oauth_token"
    assert route_group("/oauth2/authorize") == "oauth"
    assert route_group("/.well-known/openid-configuration") == "oauth"
    assert route_group("/api/v1/session") == "session_check"
    assert route_group("/api/v1/forward-auth") == "session_check"
    assert route_group("/api/v1/sessions/01J9Z3") == "api"
    assert route_group("/admin/v1/users") == "admin"
    assert route_group("/admin/") == "admin"
    assert route_group("/scim/v2/Users/42") == "scim"
    assert route_group("/static/app.css") == "static"
    assert route_group("/healthz") == "health"
    assert route_group("/login") == "pages"
    assert route_group("/") == "pages"
    assert route_group("/no/such/page?token=x") == "pages"


def test_every_audit_event_is_counted_and_its_labels_stay_bounded() -> None:
    """A detail that comes from input (a method name a client made up, a cause from elsewhere) never
    becomes a label value, and what is not a sign-in is not counted as one."""
    from prometheus_client import REGISTRY, generate_latest

    def now() -> Samples:
        return parse(generate_latest(REGISTRY).decode())

    before = now()
    for kind, detail in (
        (AuditKind.MFA_SUCCEEDED, {"method": "made-up-method"}),
        (AuditKind.MFA_FAILED, {"method": "made-up-method"}),
        (AuditKind.ACCESS_REVOKED, {"cause": "made-up-cause"}),
        (AuditKind.LOGIN_FAILED, {"reason": "password_change_wrong_password"}),
        (AuditKind.MFA_FAILED, {"method": "totp_setup"}),
        (AuditKind.REAUTHENTICATED, {"method": "recovery_code"}),
        (AuditKind.SSO_REJECTED, {"connection": "c1"}),
        (AuditKind.AUTHORIZATION_CODE_REPLAY, {"client": "c1"}),
    ):
        observe_audit_event(AuditEvent(kind=kind, at=0, detail=detail))
    after = now()
    assert delta(before, after, "threshold_security_events_total") == 8
    assert delta(before, after, "threshold_sign_ins_total", method="other", result="succeeded") == 1
    assert delta(before, after, "threshold_sign_ins_total", method="sso", result="failed") == 1
    assert delta(before, after, "threshold_sign_ins_total") == 2
    assert (
        delta(before, after, "threshold_second_factors_total", method="recovery_code", result="succeeded")
        == 1
    )
    assert delta(before, after, "threshold_second_factors_total") == 1
    assert delta(before, after, "threshold_revocations_total") == 0
    assert delta(before, after, "threshold_authorization_code_replays_total") == 1
    assert "made-up" not in generate_latest(REGISTRY).decode()
    assert_labels_bounded(after)


def test_the_feed_state_follows_the_session_cache() -> None:
    seen: list[bool] = []
    cache = SessionCache(max_entries=10, max_age=60, on_live=seen.append)
    cache.set_live(True)
    cache.set_live(False)
    assert seen == [False, True, False]

    from prometheus_client import REGISTRY

    note = feed_state("redis")
    note(True)
    assert REGISTRY.get_sample_value("threshold_invalidation_feed_up", {"feed": "redis"}) == 1
    note(False)
    assert REGISTRY.get_sample_value("threshold_invalidation_feed_up", {"feed": "redis"}) == 0
