"""Two instances of the service on one database (and one Redis): two Services, two engines and
connection pools, two Redis clients, two ASGI apps, sharing one fake clock.

Built with the email suite's `mail_factory` (a second MailApp on the first one's settings is another
process of the same deployment), so sign-in mail reaches the test SMTP server whichever instance sent it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.email.conftest import MailApp, mail_factory, smtp
from tests.mfa.conftest import authenticator
from tests.oidc.conftest import pooled_rsa_keys

__all__ = ["authenticator", "mail_factory", "pooled_rsa_keys", "smtp"]  # fixtures of other suites

ROUNDS = 10
"""Concurrent double uses per test: enough to meet different interleavings, few enough to stay fast."""

LIMITS: dict[str, Any] = {
    # Each round's loser is a failed second factor; the budget must not turn it into a 429.
    "mfa": {"code_attempts": 50},
    # One sign-in message per round, to one address, from one client address; no new-device notices
    # (every round signs in a new browser), so that only the sign-in messages are sent.
    "email": {"per_address": 100, "per_ip": 1000, "notify_new_device": False},
}


@dataclass
class Twins:
    """Instance A and instance B of one deployment."""

    a: MailApp
    b: MailApp

    def ordered(self, round_: int) -> tuple[MailApp, MailApp]:
        """(first, second) alternating by round, so that each instance is sometimes the one started first."""
        return (self.a, self.b) if round_ % 2 == 0 else (self.b, self.a)


@pytest.fixture
async def twins(mail_factory: Callable[..., Any], pooled_rsa_keys: None) -> Twins:
    a: MailApp = await mail_factory(**LIMITS)
    b: MailApp = await mail_factory(settings=a.settings, clock=a.clock)
    assert a.services.engine is not b.services.engine
    assert a.services.redis is None or a.services.redis is not b.services.redis
    return Twins(a=a, b=b)
