"""Helpers of the observability suite: /metrics scrapes as numbers, the label values each metric may
carry, and a morning's traffic on an in-process provider that touches every metric."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import put_session_cookie
from tests.conftest import STRONG_PASSWORD, login, signup, unique_email
from tests.mfa.helpers import Account, enrol_totp, new_account, pending_login, send_code, totp_code
from tests.oidc.helpers import OP, Tokens
from threshold.adapters.metrics import CAUSES, CODE_METHODS, GRANTS, SIGN_IN_METHODS
from threshold.core.models import AuditKind
from threshold.web.metrics import ROUTE_GROUPS

TOKEN = "metrics-token-for-observability-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]

STATUS_CLASSES = frozenset({"1xx", "2xx", "3xx", "4xx", "5xx"})
CLOSED_LABELS: dict[str, dict[str, frozenset[str]]] = {
    "threshold_security_events_total": {"kind": frozenset(k.value for k in AuditKind)},
    "threshold_sign_ins_total": {
        "method": SIGN_IN_METHODS | {"other"},
        "result": frozenset({"succeeded", "failed"}),
    },
    "threshold_second_factors_total": {"method": CODE_METHODS, "result": frozenset({"succeeded", "failed"})},
    "threshold_refresh_token_reuse_total": {},
    "threshold_authorization_code_replays_total": {},
    "threshold_revocations_total": {"cause": CAUSES},
    "threshold_session_checks_total": {"result": frozenset({"valid", "invalid"})},
    "threshold_tokens_issued_total": {"grant": GRANTS | {"other"}},
    "threshold_rate_limited_requests_total": {"group": ROUTE_GROUPS},
    "threshold_http_request_duration_seconds_bucket": {
        "group": ROUTE_GROUPS,
        "status": STATUS_CLASSES,
        "le": frozenset(),  # bucket bounds: numbers, checked apart
    },
    "threshold_http_request_duration_seconds_count": {"group": ROUTE_GROUPS, "status": STATUS_CLASSES},
    "threshold_http_request_duration_seconds_sum": {"group": ROUTE_GROUPS, "status": STATUS_CLASSES},
    "threshold_queue_depth": {"queue": frozenset({"mail", "logout"})},
    "threshold_queue_oldest_age_seconds": {"queue": frozenset({"mail", "logout"})},
    "threshold_invalidation_feed_up": {"feed": frozenset({"redis", "postgres", "file"})},
}
"""Every series Threshold exports, and the values each of its labels may take: a closed set each."""


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the `name` series whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=BEARER)
    assert response.status_code == 200, response.text
    return parse(response.text)


def names_and_labels(samples: Samples) -> dict[str, set[str]]:
    """Series name -> the label names it carries, for Threshold's own series."""
    found: dict[str, set[str]] = {}
    for name, labels in samples:
        if name.startswith("threshold_"):
            found.setdefault(name, set()).update(key for key, _ in labels)
    return found


def assert_labels_bounded(samples: Samples) -> None:
    """Each threshold_ series is one Threshold defines, and its labels take values from closed sets."""
    for name, labels in samples:
        if not name.startswith("threshold_"):
            continue
        assert name in CLOSED_LABELS, f"unexpected series {name}"
        allowed = CLOSED_LABELS[name]
        assert {key for key, _ in labels} == set(allowed), (name, labels)
        for key, label_value in labels:
            if key == "le":
                assert label_value == "+Inf" or float(label_value) > 0, label_value
            else:
                assert label_value in allowed[key], (name, key, label_value)


@dataclass
class Traffic:
    """What `run_traffic` did, and the values that must never show in a scrape."""

    account: Account
    client_id: str
    tokens: Tokens

    @property
    def identifying(self) -> list[str]:
        return [self.account.email, self.account.user_id, self.client_id, self.tokens.access]


async def run_traffic(op: OP, monkeypatch: pytest.MonkeyPatch) -> Traffic:
    """Sign-up, session checks, password sign-ins (refused and not), an authenticator app at the second
    step (wrong, then right), the code flow with a refresh and a refresh token presented again, a
    logout, a sign-up refused by its rate limit, a request that fails with a 500, and ten minutes for
    the mail queued meanwhile to wait. The OP must be made with `rate_limit={"signup_per_ip": 1}`."""
    account = await new_account(op.browser, "metrics")
    assert (await op.browser.get("/api/v1/session")).status_code == 200

    stranger = op.another_browser("192.0.2.10")
    put_session_cookie(stranger, "not-a-session-of-this-service")
    assert (await stranger.get("/api/v1/session")).status_code == 401

    laptop = op.another_browser("192.0.2.11")
    assert (await login(laptop, account.email, "not the password at all 9")).status_code == 401
    assert (await login(laptop, unique_email("nobody"), STRONG_PASSWORD)).status_code == 401
    assert (await login(laptop, account.email)).status_code == 200

    await enrol_totp(account, op.clock)
    assert account.totp_secret
    op.clock.advance(120)  # the code that confirmed the app is spent: the next one comes later
    phone = op.another_browser("192.0.2.12")
    assert "totp" in await pending_login(phone, account.email)
    right = totp_code(account.totp_secret, op.clock)
    assert (await send_code(phone, "totp", f"{(int(right) + 7) % 1_000_000:06d}")).status_code == 400
    assert (await send_code(phone, "totp", right)).status_code == 200

    rp = await op.register()
    tokens = await op.tokens(rp)
    assert (await op.refresh(rp, tokens.refresh)).status_code == 200
    assert (await op.refresh(rp, tokens.refresh)).status_code == 400  # again: theft, the grant ends

    assert (await laptop.post("/api/v1/logout")).status_code == 204

    crowd = op.another_browser("192.0.2.13")
    assert (await signup(crowd, unique_email("first"))).status_code == 201
    assert (await signup(crowd, unique_email("second"))).status_code == 429

    async def broken(token: str) -> Mapping[str, object]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(op.services.provider, "userinfo", broken)
    with pytest.raises(RuntimeError):
        await op.rp.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens.access}"})

    op.clock.advance(600)
    return Traffic(account=account, client_id=rp.client_id, tokens=tokens)
