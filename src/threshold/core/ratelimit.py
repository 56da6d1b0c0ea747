"""Throttling of online guessing and credential stuffing: attempts are reserved before they are checked.

Every budget here is a fixed-window counter in the shared store. An attempt is counted (an atomic
increment) *before* its slow check runs, and refused when the count it reached is over the limit, so
N concurrent guesses against a budget of B get at most B checks. A success gives its reservation
back (the window counters are decremented, the consecutive-failure count is cleared), so signing in
often never throttles anyone.

Password sign-in has four budgets: per client address (IPv4 /32 and IPv6 /64 by default, configurable,
so one IPv6 host cannot rotate through its /64), per account and address, per account per window (not
applied from networks where the account signed in successfully before, so an attacker who trips it
cannot lock the owner out of their usual network), and consecutive failures for the address across
windows (SP 800-63B-4 section 3.2.2: at most 100 in a row; counted for unknown addresses too, so the
cap reveals nothing), which only a completed sign-in or a password reset clears. At that cap the owner
still signs in with a passkey, or with an emailed link (and their second factor), or resets the
password.

Second-factor codes, recovery codes and step-up proofs share one per-account code budget and a
consecutive-failure count of their own (a cap tripped with passwords does not block them).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from threshold.core.clock import Clock
from threshold.core.errors import ConsecutiveFailuresCapped, RateLimited
from threshold.core.ports import RateLimitStore, UserRepo
from threshold.core.secrets import digest
from threshold.settings import MfaSettings, RateLimitSettings

SIGNUP_WINDOW = 3600
EXPORT_WINDOW = 86400
CONSECUTIVE_PASSWORDS = "consecutive"
"""Wrong passwords in a row for one address (known or not)."""
CONSECUTIVE_CODES = "consecutive_codes"
"""Wrong codes and step-up proofs in a row for one account."""
CONSECUTIVE_WINDOW = 365 * 86400
"""The consecutive-failure count spans the short windows; it ends with a success, or when its (fixed,
365-day) window turns over."""


def account_key(email_normalized: str) -> str:
    """What the sign-in counters of an address are keyed by: a digest, the same for a known address and
    an unknown one."""
    return digest("acct:" + email_normalized)[:40]


def personal_counter_fragments(user_id: str, email_normalized: str) -> tuple[str, ...]:
    """The parts of a counter's key that tie it to one person: their account id, their address's
    `account_key` (sign-in counters), and its plain digest (the mail counters of core.email.flows). An
    erasure drops every counter whose key holds one (adapters.sql.deletion_repo in its transaction,
    core.deletion on Redis)."""
    return user_id, account_key(email_normalized), digest(email_normalized)[:40]


def network_of(ip: str) -> str:
    """The network an address belongs to for "usual network" purposes: IPv4 /24, IPv6 /64."""
    return _network(ip, v4=24, v6=64)


@functools.lru_cache(maxsize=4096)
def _network(ip: str, *, v4: int, v6: int) -> str:
    """A pure function of its arguments, asked four times per sign-in for the same client: remembered
    for the most recent addresses (parsing one and building its network is ~25 us)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = v4 if address.version == 4 else v6
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@dataclass(frozen=True, slots=True)
class Limit:
    """One budget: at most `limit` counted attempts under `key` per `window` seconds."""

    name: str
    key: str
    window: int
    limit: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """Attempts counted before their check ran, with the count each one reached."""

    counted: tuple[tuple[Limit, int], ...]
    at: float

    def reached(self) -> list[str]:
        """The budgets this attempt was the last one allowed by (once per window, not per refusal)."""
        return [limit.name for limit, count in self.counted if count == limit.limit]


@dataclass(slots=True)
class Settlement:
    """A success's give-back, worked out but not yet written (`Budgets.settlement`). A right password
    is followed, most of the time, by the completed sign-in's own clearing of the consecutive counts:
    that writes both in one round trip (`LoginThrottle.signed_in`); anything else that follows (a second
    factor owed, an address to verify, a refusal) writes it on its own (`LoginThrottle.settle`)."""

    refund: tuple[tuple[str, int], ...]
    reset: tuple[tuple[str, int], ...]
    at: float
    written: bool = False


class Budgets:
    """Reserve, then check; refund on success. The one implementation of every attempt limit."""

    def __init__(self, store: RateLimitStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def reserve(
        self,
        limits: Sequence[Limit],
        *,
        excused: Callable[[Limit], Awaitable[bool]] | None = None,
        capped: Callable[[Limit, int], RateLimited] | None = None,
    ) -> Reservation:
        """Count one attempt against every limit, or raise RateLimited (counting nothing) when any of
        them is already spent. `excused(limit)` may let an over-limit attempt through (a familiar
        network); `capped` names the error of a limit (the consecutive-failure cap)."""
        now = self._clock.now()
        counts = await self._store.increment_all([(limit.key, limit.window) for limit in limits], now=now)
        counted = [(limit, count.count) for limit, count in zip(limits, counts, strict=True)]
        for limit, count in zip(limits, counts, strict=True):
            if count.count > limit.limit and not (excused is not None and await excused(limit)):
                await self._give_back(counted, now)  # a refused attempt counts against nothing
                raise capped(limit, count.retry_after) if capped else RateLimited(count.retry_after)
        return Reservation(counted=tuple(counted), at=now)

    async def succeeded(self, reservation: Reservation, *, clear: Sequence[str] = ()) -> None:
        """A success: its reservation is given back and the named counters are cleared."""
        await self.write(self.settlement(reservation, clear=clear))

    @staticmethod
    def settlement(reservation: Reservation, *, clear: Sequence[str] = ()) -> Settlement:
        """What `succeeded` writes, to be written later (`write`), alone or with more counters cleared."""
        return Settlement(
            refund=tuple((c.key, c.window) for c, _ in reservation.counted if c.name not in clear),
            reset=tuple((c.key, c.window) for c, _ in reservation.counted if c.name in clear),
            at=reservation.at,
        )

    async def write(self, settlement: Settlement | None, *, clear: Sequence[Limit] = ()) -> None:
        """One round trip: the settlement (unless already written) and `clear`, in the window of the
        settlement's attempt (else now)."""
        refund: list[tuple[str, int]] = []
        reset = [(limit.key, limit.window) for limit in clear]
        now = self._clock.now()
        if settlement is not None and not settlement.written:
            settlement.written = True  # before the write: never twice, even when it fails
            reset = [*settlement.reset, *reset]
            # a counter cleared is not also given its attempt back: clearing removes it either way, and
            # a store writes refunds and clearings that name no counter in common in one statement
            refund, now = [c for c in settlement.refund if c not in reset], settlement.at
        await self._store.settle(refund=refund, reset=reset, now=now)

    async def _give_back(self, counted: Sequence[tuple[Limit, int]], at: float) -> None:
        await self._store.settle(refund=[(limit.key, limit.window) for limit, _ in counted], now=at)


def _capped(limit: Limit, retry_after: int) -> RateLimited:
    if limit.name in (CONSECUTIVE_PASSWORDS, CONSECUTIVE_CODES):
        return ConsecutiveFailuresCapped()
    return RateLimited(retry_after)


class LoginThrottle:
    """The budgets of sign-in (password) and of the second step (codes, step-up)."""

    def __init__(
        self,
        store: RateLimitStore,
        users: UserRepo,
        clock: Clock,
        settings: RateLimitSettings,
        mfa: MfaSettings | None = None,
    ) -> None:
        self._budgets = Budgets(store, clock)
        self._store = store
        self._users = users
        self._clock = clock
        self._settings = settings
        self._mfa = mfa or MfaSettings()

    def client_key(self, ip: str) -> str:
        """Per-address budgets key on this: the address itself for IPv4, its /64 for IPv6 (by default)."""
        return _network(ip, v4=self._settings.ipv4_prefix, v6=self._settings.ipv6_prefix)

    def _consecutive_passwords(self, account: str) -> Limit:
        """Keyed on the address, not the user, so an unknown address reaches the cap exactly like a
        known one (the 429 reveals nothing)."""
        key = f"fail:a:{account}"
        return Limit(CONSECUTIVE_PASSWORDS, key, CONSECUTIVE_WINDOW, self._settings.consecutive_failures)

    def _consecutive_codes(self, user_id: str) -> Limit:
        """Apart from the passwords' count, so that a cap tripped with passwords never blocks the owner's
        emailed link plus authenticator app."""
        key = f"fail:u:{user_id}"
        return Limit(CONSECUTIVE_CODES, key, CONSECUTIVE_WINDOW, self._settings.consecutive_failures)

    @staticmethod
    def _account(email_normalized: str) -> str:
        return account_key(email_normalized)

    def _login_limits(self, email_normalized: str, ip: str) -> list[Limit]:
        s = self._settings
        account = self._account(email_normalized)
        client = self.client_key(ip)
        return [
            Limit("ip", f"login:ip:{client}", s.window, s.login_per_ip),
            Limit(
                "account_ip",
                f"login:ai:{digest(account + '|' + client)[:40]}",
                s.window,
                s.login_per_account_ip,
            ),
            Limit("account", f"login:a:{account}", s.window, s.login_per_account),
            self._consecutive_passwords(account),
        ]

    async def reserve_login(self, *, email_normalized: str, ip: str, user_id: str | None) -> Reservation:
        """Count a password attempt before checking it.

        Raises:
            RateLimited: a budget for this address or account is spent (nothing is counted).
            ConsecutiveFailuresCapped: the account's consecutive-failure cap is reached.
        """
        since = self._clock.now() - self._settings.known_network_days * 86400

        async def familiar(limit: Limit) -> bool:
            return (
                limit.name == "account"
                and user_id is not None
                and await self._users.network_seen_since(user_id, network_of(ip), since)
            )

        return await self._budgets.reserve(
            self._login_limits(email_normalized, ip), excused=familiar, capped=_capped
        )

    def password_right(self, reservation: Reservation) -> Settlement:
        """A right password: the reservation's give-back, for `signed_in` (or `settle`) to write. The
        consecutive count is only given this attempt back: a second factor may still be owed, and only a
        completed sign-in (`signed_in`) clears it, so knowing the password never resets it. Nor does it
        make the network familiar: a completed sign-in does (its closing notes it: ports.SignInWrites),
        and a sign-up or a right current password from a signed-in session (`note_network`)."""
        return self._budgets.settlement(reservation, clear=("account_ip",))

    async def login_succeeded(self, reservation: Reservation, *, ip: str, user_id: str) -> None:
        """A right current password from a signed-in session (a password change): the network is noted
        and the give-back written at once."""
        await self.note_network(user_id=user_id, ip=ip)
        await self.settle(self.password_right(reservation))

    async def settle(self, settlement: Settlement) -> None:
        """Write a right password's give-back, unless the completed sign-in already did."""
        if not settlement.written:
            await self._budgets.write(settlement)

    async def note_network(self, *, user_id: str, ip: str) -> None:
        """A sign-up, or a right current password from a signed-in session (`login_succeeded`), makes the
        network familiar; so does a completed sign-in, in its closing (ports.SignInWrites)."""
        await self._users.record_network(user_id, network_of(ip), self._clock.now())

    async def reserve_code(self, user_id: str) -> Reservation:
        """Count a second-factor, recovery-code or step-up attempt of this account before checking it."""
        limits = [
            Limit("codes", f"mfa:{user_id}", self._mfa.code_window, self._mfa.code_attempts),
            self._consecutive_codes(user_id),
        ]
        return await self._budgets.reserve(limits, capped=_capped)

    async def code_succeeded(self, reservation: Reservation) -> None:
        await self._budgets.succeeded(reservation, clear=(CONSECUTIVE_CODES,))

    async def signed_in(
        self, *, user_id: str, email_normalized: str, settling: Settlement | None = None
    ) -> None:
        """A completed sign-in (any way) or a password reset clears both consecutive-failure counts; a
        password sign-in's give-back (`password_right`) goes in the same round trip."""
        await self._budgets.write(
            settling,
            clear=(
                self._consecutive_passwords(self._account(email_normalized)),
                self._consecutive_codes(user_id),
            ),
        )

    async def check_export(self, *, user_id: str) -> None:
        """Count a download of the account's data export; raise RateLimited past the daily limit (the
        export reads everything the account has: a stolen session should not turn it into a feed)."""
        limit = Limit("export", f"export:u:{user_id}", EXPORT_WINDOW, self._settings.export_per_day)
        await self._budgets.reserve([limit])

    async def check_signup(self, *, ip: str) -> None:
        """Count a sign-up attempt from this address; raise RateLimited past the hourly limit."""
        limit = Limit(
            "signup", f"signup:ip:{self.client_key(ip)}", SIGNUP_WINDOW, self._settings.signup_per_ip
        )
        await self._budgets.reserve([limit])
