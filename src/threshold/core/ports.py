"""Storage and service ports. Adapters in threshold.adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from threshold.core.models import (
    Aal,
    Amr,
    AuditEvent,
    OneTimeToken,
    OutgoingMail,
    Passkey,
    PasswordCredential,
    RecoveryRequest,
    ScheduledDeletion,
    SecondFactors,
    SessionRecord,
    Sightings,
    TokenPurpose,
    TotpCredential,
    User,
)


class UserRepo(Protocol):
    async def add(self, user: User, credential: PasswordCredential | None) -> None:
        """Insert a user (and its password). Raises EmailUnavailable when the address is taken."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def get_by_email(self, email_normalized: str) -> User | None: ...

    async def list(self, *, limit: int = 100, offset: int = 0) -> Sequence[User]: ...

    async def set_disabled(self, user_id: str, disabled: bool) -> bool: ...

    async def get_password(self, user_id: str) -> PasswordCredential | None: ...

    async def get_with_password(self, email_normalized: str) -> tuple[User, PasswordCredential | None] | None:
        """The account of an address and its password (None: it has none), in one read (sign-in)."""
        ...

    async def set_password(self, credential: PasswordCredential, *, same_secret: bool = False) -> None:
        """Store the password; unless it is the same secret rehashed, the credential epoch moves on."""
        ...

    async def delete_password(self, user_id: str) -> bool:
        """Remove the password (the credential epoch moves on)."""
        ...

    async def bump_credential_epoch(self, user_id: str) -> None:
        """Another sign-in secret changed (factors reset): sign-ins begun before it yield no session."""
        ...

    async def credential_epoch(self, user_id: str) -> int | None:
        """The account's current credential epoch, read fresh (None: no such account)."""
        ...

    async def record_network(self, user_id: str, network: str, at: float) -> None:
        """Remember that `network` saw a successful sign-in of this user."""
        ...

    async def network_seen_since(self, user_id: str, network: str, since: float) -> bool: ...

    async def set_mfa_required(self, user_id: str, required: bool) -> bool: ...

    async def snooze_passkey_prompt(self, user_id: str, until: float) -> None: ...

    async def set_email_verified(self, user_id: str, email_normalized: str) -> bool:
        """Mark the address verified, only if it is still the account's address."""
        ...

    async def change_email(self, user_id: str, *, email: str, email_normalized: str) -> None:
        """Raises EmailUnavailable when another account has the address."""
        ...

    async def remember_device(self, user_id: str, device: str, at: float) -> bool:
        """Record a browser/device cookie digest; True when this account had not seen it before."""
        ...

    async def sightings(self, user_id: str) -> Sightings:
        """The recognised browsers and sign-in networks of the account (for its data export)."""
        ...


class Invalidations(Protocol):
    """Delivers a cache-invalidation message to every process of the service (this one included)."""

    async def publish(self, message: str) -> int | frozenset[str]:
        """Whom the message was delivered to, this process's listener included: how many listeners
        (Redis), or which (PostgreSQL: the listening connections' ids). The acknowledgements a revocation
        waits for; 0 where nobody listens (the SQLite change file, which every process probes on every
        check instead)."""
        ...


class SessionStore(Protocol):
    async def create(self, record: SessionRecord) -> None: ...

    async def get(self, digest: str) -> SessionRecord | None:
        """The session with this digest, or None. Expired records may be returned; callers check."""
        ...

    async def touch(self, digest: str, *, last_seen_at: float, idle_expires_at: float) -> None: ...

    async def delete(self, digest: str) -> bool: ...

    async def update_auth(self, digest: str, *, auth_time: float, aal: Aal, amr: Sequence[Amr]) -> bool:
        """Record a re-authentication on a live session (step-up); False when it is gone."""
        ...

    async def delete_for_user(self, user_id: str, *, except_digest: str | None = None) -> int: ...

    async def list_for_user(self, user_id: str) -> Sequence[SessionRecord]: ...


@dataclass(frozen=True, slots=True)
class WindowCount:
    count: int
    retry_after: int


class RateLimitStore(Protocol):
    """Fixed-window counters, shared by every process."""

    async def get(self, key: str, *, window: int, now: float) -> WindowCount: ...

    async def increment(self, key: str, *, window: int, now: float) -> WindowCount: ...

    async def increment_all(self, counters: Sequence[tuple[str, int]], *, now: float) -> list[WindowCount]:
        """`increment` of each (key, window), in one round trip."""
        ...

    async def settle(
        self, *, refund: Sequence[tuple[str, int]] = (), reset: Sequence[tuple[str, int]] = (), now: float
    ) -> None:
        """In one round trip: give back one counted attempt of each of `refund` (key, window) in the
        window `now` falls in, never below zero; and clear each of `reset`."""
        ...

    async def forget(self, fragment: str) -> None:
        """Drop every counter whose key contains `fragment` (an erased account's id), in every window."""
        ...


@dataclass(frozen=True, slots=True)
class SignInClosed:
    """What a sign-in's closing writes found (SignInWrites.close)."""

    current: bool
    """The account's credential epoch is still the one read at the first step; only then was anything
    written."""
    new_device: bool
    """The browser was not known to the account before this sign-in (it is now)."""


class SignInWrites(Protocol):
    """The writes that close a completed sign-in, after its session exists: the credential epoch read
    again (a reset or change that committed meanwhile means no sign-in), and only while it is current the
    success audited, the network noted as one the account signs in from (core.ratelimit: familiar
    networks) and the browser sighted. In one round trip where the database allows it (PostgreSQL: one
    statement); core.flows.closing.SequentialSignInWrites is the same through the ordinary ports, one
    statement each, and the one every implementation is checked against."""

    async def close(
        self, user_id: str, *, epoch: int, event: AuditEvent, network: str, device: str | None
    ) -> SignInClosed: ...


class AuditLog(Protocol):
    """Append-only: there is no update or delete."""

    async def append(self, event: AuditEvent) -> None: ...

    async def list_for_user(self, user_id: str, *, limit: int = 50) -> Sequence[AuditEvent]: ...


class BreachRangeSource(Protocol):
    """k-anonymity range query: suffixes of SHA-1 digests (upper hex) starting with a 5-hex prefix."""

    async def suffixes(self, prefix: str) -> dict[str, int]: ...


class TxtResolver(Protocol):
    """DNS TXT lookups, asked fresh each time (domain verification reads what the owner published)."""

    async def txt_records(self, name: str) -> list[str]:
        """The TXT records at `name`, each record's strings joined into one; [] when the name has none
        or does not exist. Raises DependencyUnavailable when DNS cannot be asked (no answer in time,
        no usable name server): an unknown answer is never taken for an empty one."""
        ...


class EphemeralStore(Protocol):
    """Short-lived values shared by every process: pending logins, WebAuthn challenges."""

    async def put(self, key: str, value: str, *, expires_at: float) -> None: ...

    async def get(self, key: str, *, now: float) -> str | None: ...

    async def take(self, key: str, *, now: float) -> str | None:
        """Read and delete in one step: of two concurrent takers, exactly one gets the value."""
        ...

    async def add(self, key: str, value: str, *, expires_at: float, now: float) -> bool:
        """Store the value only if the key holds no live value; of concurrent adders exactly one gets True
        (a replay cache: the first use of an assertion id wins)."""
        ...

    async def delete(self, key: str) -> None: ...


class FactorRepo(Protocol):
    """Passkeys, TOTP and recovery codes."""

    async def list_passkeys(self, user_id: str) -> Sequence[Passkey]: ...

    async def second_factors(self, user_id: str) -> SecondFactors:
        """Passkey, confirmed TOTP and unused recovery codes, in one round trip."""
        ...

    async def get_passkey_by_credential(self, credential_id: str) -> Passkey | None: ...

    async def add_passkey(self, passkey: Passkey) -> None: ...

    async def update_passkey_use(
        self, passkey_id: str, *, sign_count: int, backup_state: bool, at: float
    ) -> None: ...

    async def flag_passkey(self, passkey_id: str) -> None: ...

    async def rename_passkey(self, user_id: str, passkey_id: str, name: str) -> bool: ...

    async def delete_passkey(self, user_id: str, passkey_id: str) -> bool: ...

    async def get_totp(self, user_id: str) -> TotpCredential | None: ...

    async def put_totp(self, credential: TotpCredential) -> None: ...

    async def confirm_totp(self, user_id: str) -> None: ...

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Record `step` as used only if it is later than the last one (a code works once)."""
        ...

    async def delete_totp(self, user_id: str) -> bool: ...

    async def replace_recovery_codes(self, user_id: str, digests: Sequence[str], *, at: float) -> None: ...

    async def use_recovery_code(self, user_id: str, digest: str, *, at: float) -> bool:
        """Mark an unused code used; False when it does not exist or was used (one winner)."""
        ...

    async def count_recovery_codes(self, user_id: str) -> int: ...

    async def delete_all_factors(self, user_id: str) -> None: ...

    async def add_recovery_request(self, request: RecoveryRequest) -> None: ...

    async def pending_recovery_requests(self, *, user_id: str | None = None) -> Sequence[RecoveryRequest]: ...

    async def finish_recovery_request(self, request_id: str, *, at: float, cancelled: bool) -> bool: ...


class TokenRepo(Protocol):
    async def add(self, token: OneTimeToken) -> None: ...

    async def consume(self, digest: str, *, purpose: TokenPurpose, now: float) -> OneTimeToken | None:
        """Mark an unused, unexpired token used and return it; of concurrent callers one wins."""
        ...

    async def peek(self, digest: str, *, purpose: TokenPurpose, now: float) -> OneTimeToken | None: ...

    async def latest_for_binding(
        self, binding: str, *, purpose: TokenPurpose, now: float
    ) -> OneTimeToken | None: ...

    async def record_failed_code(self, digest: str) -> int:
        """Count a wrong code against the token; returns the attempts so far."""
        ...

    async def invalidate(self, user_id: str, purpose: TokenPurpose, *, now: float) -> int: ...


class MailQueue(Protocol):
    """Persistent outgoing mail: enqueue returns once the message is stored; delivery is retried."""

    async def enqueue(self, mail: OutgoingMail) -> None: ...


class DeletionRepo(Protocol):
    """Scheduled erasures of accounts (core.deletion)."""

    async def schedule(self, deletion: ScheduledDeletion) -> ScheduledDeletion:
        """Record it and lock (disable) the account in one write: a crash between the two would leave
        a deletion the person cannot see, or a lock nothing lifts. Raises LastOperator, in that write,
        for the only account that can open the console. For an account whose erasure is
        scheduled already, the one scheduled (brought forward to this `erase_at` when that is sooner:
        an operator's `--now`)."""
        ...

    async def pending(self, user_id: str) -> ScheduledDeletion | None:
        """The account's erasure not yet carried out, if any."""
        ...

    async def cancel(self, user_id: str, *, now: float) -> bool:
        """Forget the account's erasure if it is not due yet and signing in may keep it, and unlock the
        account (True), in one conditional write."""
        ...

    async def operator_locked(self, user_id: str, *, disabled: bool) -> bool:
        """An operator (or SCIM) disabled the account (the pending deletion can no longer be kept by
        signing in) or enabled it (the pending deletion is dropped: the account is kept). Whether there
        was one."""
        ...

    async def due(self, *, now: float, limit: int = 100) -> Sequence[ScheduledDeletion]: ...

    async def erase(self, deletion: ScheduledDeletion, *, email: str, at: float) -> bool:
        """In one transaction: every row of the person's data removed, their audit events kept under the
        pseudonym without address, user agent or address in the detail, an `account_erased` event, and
        the deletion marked done. False (nothing written) when another process erased it first."""
        ...
