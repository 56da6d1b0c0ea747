"""Every Prometheus metric Threshold exports, defined here once, and how the security ones are counted.

The security metrics are derived from the audit events (`observe_audit_event` is the Auditor's observer,
which sees every event with its kind and details), not counted where each event happens: sign-ins by
method and result, second factors, refresh-token reuse, authorization-code replays and ends of access by
cause come from the events that already record them. The web layer counts what only it sees (session
checks, token responses, rate-limit refusals, request latency: threshold.web.metrics); the durable
queues are measured when /metrics is scraped; the invalidation feed reports its state as it changes.

Every label value comes from a closed set (an enum, a route group, a status class), never from input:
no user id, address, client id or path.

With `threshold serve --workers N` (N > 1) the supervisor gives the workers a private
PROMETHEUS_MULTIPROC_DIR: prometheus_client then keeps each worker's values in files there, and /metrics
adds them up (threshold.web.metrics). A gauge says how its workers' values combine (`multiprocess_mode`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from threshold.core.methods.proofs import EMAIL, SSO
from threshold.core.models import AuditEvent, AuditKind, Method
from threshold.core.revocation import Cause
from threshold.oidc.models import GrantType

# no `_created` series beside each counter and histogram (half the scrape, and no alert needs them)
disable_created_metrics()  # type: ignore[no-untyped-call]

SECURITY_EVENTS = Counter(
    "threshold_security_events", "Audited security events (signups, logins, revocations...)", ["kind"]
)
SIGN_INS = Counter(
    "threshold_sign_ins",
    "Completed sign-ins (result succeeded, by the last method proved) and refused sign-in attempts "
    "(result failed: a wrong password, an unknown or disabled account, an upstream sign-in rejected)",
    ["method", "result"],
)
SECOND_FACTORS = Counter(
    "threshold_second_factors",
    "Authenticator-app and recovery codes checked, at sign-in and at step-up, by result",
    ["method", "result"],
)
REFRESH_TOKEN_REUSE = Counter(
    "threshold_refresh_token_reuse",
    "Rotated refresh tokens presented again outside the grace period: a theft alarm (the family is revoked)",
)
AUTHORIZATION_CODE_REPLAYS = Counter(
    "threshold_authorization_code_replays",
    "Authorization codes presented a second time (what the first exchange issued is revoked)",
)
REVOCATIONS = Counter(
    "threshold_revocations", "Ends of access (sessions, grants and their tokens), by cause", ["cause"]
)
SESSION_CHECKS = Counter(
    "threshold_session_checks",
    "Session cookies checked (API, pages, forward-auth): valid, or invalid (ended, expired or unknown)",
    ["result"],
)
TOKENS_ISSUED = Counter(
    "threshold_tokens_issued", "Successful token-endpoint responses, by grant type", ["grant"]
)
RATE_LIMITED = Counter(
    "threshold_rate_limited_requests",
    "Requests refused by a rate limit or failure cap (answered 429), by route group",
    ["group"],
)


class BatchedHistogram(Histogram):
    """A histogram that also takes observations tallied elsewhere, in bulk (threshold.web.metrics)."""

    def add(self, counts: Sequence[int], total: float) -> None:
        """`counts[i]` more observations in bucket i (at most the i-th upper bound, above the one
        before), whose values sum to `total`."""
        self._raise_if_not_observable()  # type: ignore[no-untyped-call]
        self._sum.inc(total)
        for bucket, count in zip(self._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
REQUEST_DURATION = BatchedHistogram(
    "threshold_http_request_duration_seconds",
    "Time from a request's arrival to its response's end, by route group and status class",
    ["group", "status"],
    buckets=REQUEST_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "threshold_queue_depth",
    "Messages of a durable queue (mail, logout tokens) neither delivered nor given up, measured at scrape",
    ["queue"],
    multiprocess_mode="mostrecent",  # shared state, measured by whichever worker answers the scrape
)
QUEUE_OLDEST_AGE = Gauge(
    "threshold_queue_oldest_age_seconds",
    "Age of the oldest message of a durable queue neither delivered nor given up (0 when none)",
    ["queue"],
    multiprocess_mode="mostrecent",
)
INVALIDATION_FEED_UP = Gauge(
    "threshold_invalidation_feed_up",
    "1 while the invalidation feed delivers to this process (its session cache answers from memory), "
    "0 while it does not (every check goes to the store); with several workers, the lowest",
    ["feed"],
    multiprocess_mode="livemin",
)

SIGN_IN_METHODS = frozenset({*(m.value for m in Method), EMAIL, SSO})
CODE_METHODS = frozenset({Method.TOTP.value, Method.RECOVERY_CODE.value})
SIGN_IN_FAILURES = frozenset({"unknown_account", "wrong_password", "disabled"})
"""LOGIN_FAILED reasons of a sign-in (a wrong current password at a password change is not one)."""
CAUSES = frozenset(c.value for c in Cause)
GRANTS = frozenset(g.value for g in GrantType)
SUCCEEDED, FAILED = "succeeded", "failed"


def observe_audit_event(event: AuditEvent) -> None:
    """The Auditor's observer: every audited event counted by kind, and the security metrics derived
    from the events that record them."""
    kind, detail = event.kind, event.detail
    SECURITY_EVENTS.labels(kind=kind.value).inc()
    method = detail.get("method", "")
    if kind in (AuditKind.LOGIN_SUCCEEDED, AuditKind.MFA_SUCCEEDED):
        SIGN_INS.labels(method=_sign_in_method(method), result=SUCCEEDED).inc()
        if method in CODE_METHODS:
            SECOND_FACTORS.labels(method=method, result=SUCCEEDED).inc()
    elif kind is AuditKind.LOGIN_FAILED:
        if detail.get("reason") in SIGN_IN_FAILURES:
            SIGN_INS.labels(method=Method.PASSWORD.value, result=FAILED).inc()
    elif kind is AuditKind.SSO_REJECTED:
        SIGN_INS.labels(method=SSO, result=FAILED).inc()
    elif kind is AuditKind.REAUTHENTICATED:
        if method in CODE_METHODS:
            SECOND_FACTORS.labels(method=method, result=SUCCEEDED).inc()
    elif kind is AuditKind.MFA_FAILED:
        if method in CODE_METHODS:
            SECOND_FACTORS.labels(method=method, result=FAILED).inc()
    elif kind is AuditKind.REFRESH_TOKEN_REUSE:
        REFRESH_TOKEN_REUSE.inc()
    elif kind is AuditKind.AUTHORIZATION_CODE_REPLAY:
        AUTHORIZATION_CODE_REPLAYS.inc()
    cause = detail.get("cause")
    if cause in CAUSES:
        REVOCATIONS.labels(cause=cause).inc()


def _sign_in_method(method: str) -> str:
    return method if method in SIGN_IN_METHODS else "other"


def feed_state(feed: str) -> Callable[[bool], None]:
    """What the session cache calls when its invalidation feed starts or stops delivering."""
    gauge = INVALIDATION_FEED_UP.labels(feed=feed)

    def note(live: bool) -> None:
        gauge.set(1 if live else 0)

    return note


def record_backlog(queue: str, *, depth: int, oldest_age: float) -> None:
    QUEUE_DEPTH.labels(queue=queue).set(depth)
    QUEUE_OLDEST_AGE.labels(queue=queue).set(max(0.0, oldest_age))


def count_token_issued(grant_type: str) -> None:
    """A token response of the token endpoint (only a grant type it implements gets one)."""
    _tokens_issued(grant_type if grant_type in GRANTS else "other").inc()


@functools.cache
def _tokens_issued(grant: str) -> Counter:
    """The counter's child for one grant (`labels` takes a lock and builds a key on every call)."""
    return TOKENS_ISSUED.labels(grant=grant)
