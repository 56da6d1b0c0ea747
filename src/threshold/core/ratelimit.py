"""Throttling of online guessing and credential stuffing.

Three fixed-window failure counters guard sign-in: per client address, per account and address, and
per account. The per-account counter (SP 800-63B rev 4 section 3.2.2: well under 100 consecutive
failures) does not apply to networks where the account signed in successfully before, so an attacker
who trips it cannot lock the owner out of their usual network; every window ends, so nothing is
permanent.
"""

from __future__ import annotations

import ipaddress

from threshold.core.clock import Clock
from threshold.core.errors import RateLimited
from threshold.core.ports import RateLimitStore, UserRepo
from threshold.core.secrets import digest
from threshold.settings import RateLimitSettings

SIGNUP_WINDOW = 3600


def network_of(ip: str) -> str:
    """The network an address belongs to for "usual network" purposes: IPv4 /24, IPv6 /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class LoginThrottle:
    def __init__(
        self, store: RateLimitStore, users: UserRepo, clock: Clock, settings: RateLimitSettings
    ) -> None:
        self._store = store
        self._users = users
        self._clock = clock
        self._settings = settings

    def _keys(self, email_normalized: str, ip: str) -> tuple[str, str, str]:
        account = digest("acct:" + email_normalized)[:40]
        return (
            f"login:ip:{ip}",
            f"login:ai:{digest(account + '|' + ip)[:40]}",
            f"login:a:{account}",
        )

    async def check_login(self, *, email_normalized: str, ip: str, user_id: str | None) -> None:
        """Raise RateLimited when any counter that applies to this attempt is exhausted."""
        s, now = self._settings, self._clock.now()
        ip_key, pair_key, account_key = self._keys(email_normalized, ip)
        for key, limit in ((ip_key, s.login_per_ip), (pair_key, s.login_per_account_ip)):
            count = await self._store.get(key, window=s.window, now=now)
            if count.count >= limit:
                raise RateLimited(count.retry_after)
        count = await self._store.get(account_key, window=s.window, now=now)
        if count.count >= s.login_per_account:
            familiar = user_id is not None and await self._users.network_seen_since(
                user_id, network_of(ip), now - s.known_network_days * 86400
            )
            if not familiar:
                raise RateLimited(count.retry_after)

    async def record_failure(self, *, email_normalized: str, ip: str) -> list[str]:
        """Count a failure; returns the limits ("ip", "account_ip", "account") this failure just reached."""
        s, now = self._settings, self._clock.now()
        reached: list[str] = []
        limits = (
            ("ip", s.login_per_ip),
            ("account_ip", s.login_per_account_ip),
            ("account", s.login_per_account),
        )
        for key, (name, limit) in zip(self._keys(email_normalized, ip), limits, strict=True):
            count = await self._store.increment(key, window=s.window, now=now)
            if count.count == limit:
                reached.append(name)
        return reached

    async def record_success(self, *, email_normalized: str, ip: str, user_id: str) -> None:
        now = self._clock.now()
        _, pair_key, _ = self._keys(email_normalized, ip)
        await self._store.reset(pair_key, window=self._settings.window, now=now)
        await self._users.record_network(user_id, network_of(ip), now)

    async def check_signup(self, *, ip: str) -> None:
        """Count a sign-up attempt from this address; raise RateLimited past the hourly limit."""
        count = await self._store.increment(f"signup:ip:{ip}", window=SIGNUP_WINDOW, now=self._clock.now())
        if count.count > self._settings.signup_per_ip:
            raise RateLimited(count.retry_after)
