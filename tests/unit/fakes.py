"""In-memory fakes of the ports in threshold.core.ports, and a clock the test moves by hand."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from threshold.core.errors import EmailUnavailable
from threshold.core.models import (
    Aal,
    Amr,
    AuditEvent,
    Passkey,
    PasswordCredential,
    RecoveryRequest,
    SecondFactors,
    SessionRecord,
    Sightings,
    TotpCredential,
    User,
)
from threshold.core.ports import WindowCount

START = 1_700_000_000.0


class FakeClock:
    """Time stands still until the test advances it."""

    def __init__(self, start: float = START) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class InMemoryUserRepo:
    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.passwords: dict[str, PasswordCredential] = {}
        self.networks: dict[tuple[str, str], float] = {}
        self.devices: dict[tuple[str, str], float] = {}

    async def add(self, user: User, credential: PasswordCredential | None) -> None:
        if any(u.email_normalized == user.email_normalized for u in self.users.values()):
            raise EmailUnavailable()
        self.users[user.id] = user
        if credential is not None:
            self.passwords[user.id] = credential

    async def get(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    async def get_by_email(self, email_normalized: str) -> User | None:
        return next((u for u in self.users.values() if u.email_normalized == email_normalized), None)

    async def list(self, *, limit: int = 100, offset: int = 0) -> Sequence[User]:
        ordered = sorted(self.users.values(), key=lambda u: (u.created_at, u.id))
        return ordered[offset : offset + limit]

    async def set_disabled(self, user_id: str, disabled: bool) -> bool:
        user = self.users.get(user_id)
        if user is None:
            return False
        self.users[user_id] = dataclasses.replace(user, disabled=disabled)
        return True

    async def get_password(self, user_id: str) -> PasswordCredential | None:
        return self.passwords.get(user_id)

    async def get_with_password(self, email_normalized: str) -> tuple[User, PasswordCredential | None] | None:
        user = await self.get_by_email(email_normalized)
        return None if user is None else (user, self.passwords.get(user.id))

    async def set_password(self, credential: PasswordCredential, *, same_secret: bool = False) -> None:
        self.passwords[credential.user_id] = credential
        if not same_secret:
            await self.bump_credential_epoch(credential.user_id)

    async def delete_password(self, user_id: str) -> bool:
        await self.bump_credential_epoch(user_id)
        return self.passwords.pop(user_id, None) is not None

    async def bump_credential_epoch(self, user_id: str) -> None:
        user = self.users.get(user_id)
        if user is not None:
            self.users[user_id] = dataclasses.replace(user, credential_epoch=user.credential_epoch + 1)

    async def credential_epoch(self, user_id: str) -> int | None:
        user = self.users.get(user_id)
        return None if user is None else user.credential_epoch

    async def record_network(self, user_id: str, network: str, at: float) -> None:
        self.networks[(user_id, network)] = at

    async def network_seen_since(self, user_id: str, network: str, since: float) -> bool:
        seen = self.networks.get((user_id, network))
        return seen is not None and seen >= since

    async def set_mfa_required(self, user_id: str, required: bool) -> bool:
        user = self.users.get(user_id)
        if user is None:
            return False
        self.users[user_id] = dataclasses.replace(user, mfa_required=required)
        return True

    async def snooze_passkey_prompt(self, user_id: str, until: float) -> None:
        user = self.users.get(user_id)
        if user is not None:
            self.users[user_id] = dataclasses.replace(user, passkey_prompt_snoozed_until=until)

    async def set_email_verified(self, user_id: str, email_normalized: str) -> bool:
        user = self.users.get(user_id)
        if user is None or user.email_normalized != email_normalized:
            return False
        self.users[user_id] = dataclasses.replace(user, email_verified=True)
        return True

    async def change_email(self, user_id: str, *, email: str, email_normalized: str) -> None:
        if any(u.email_normalized == email_normalized and u.id != user_id for u in self.users.values()):
            raise EmailUnavailable()
        user = self.users.get(user_id)
        if user is not None:
            self.users[user_id] = dataclasses.replace(
                user, email=email, email_normalized=email_normalized, email_verified=True
            )

    async def sightings(self, user_id: str) -> Sightings:
        return Sightings(
            devices=tuple((at, at) for (owner, _), at in self.devices.items() if owner == user_id),
            networks=tuple(sorted((n, at) for (owner, n), at in self.networks.items() if owner == user_id)),
        )

    async def remember_device(self, user_id: str, device: str, at: float) -> bool:
        new = (user_id, device) not in self.devices
        self.devices[(user_id, device)] = at
        return new


class InMemorySessionStore:
    """Keeps records by digest; counts writes so tests can see when last-seen is written."""

    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}
        self.touches = 0

    async def create(self, record: SessionRecord) -> None:
        self.records[record.digest] = record

    async def get(self, digest: str) -> SessionRecord | None:
        return self.records.get(digest)

    async def touch(self, digest: str, *, last_seen_at: float, idle_expires_at: float) -> None:
        self.touches += 1
        record = self.records.get(digest)
        if record is not None:
            self.records[digest] = dataclasses.replace(
                record, last_seen_at=last_seen_at, idle_expires_at=idle_expires_at
            )

    async def delete(self, digest: str) -> bool:
        return self.records.pop(digest, None) is not None

    async def update_auth(self, digest: str, *, auth_time: float, aal: Aal, amr: Sequence[Amr]) -> bool:
        record = self.records.get(digest)
        if record is None:
            return False
        self.records[digest] = dataclasses.replace(record, auth_time=auth_time, aal=aal, amr=tuple(amr))
        return True

    async def delete_for_user(self, user_id: str, *, except_digest: str | None = None) -> int:
        doomed = [d for d, r in self.records.items() if r.user_id == user_id and d != except_digest]
        for d in doomed:
            del self.records[d]
        return len(doomed)

    async def list_for_user(self, user_id: str) -> Sequence[SessionRecord]:
        return [r for r in self.records.values() if r.user_id == user_id]


class InMemoryRateLimitStore:
    """Fixed windows aligned to multiples of the window length, like the SQL and Redis stores."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    @staticmethod
    def _window(window: int, now: float) -> tuple[int, int]:
        start = int(now // window) * window
        return start, max(1, int(start + window - now + 0.999))

    async def get(self, key: str, *, window: int, now: float) -> WindowCount:
        start, retry_after = self._window(window, now)
        return WindowCount(count=self.counts.get((key, start), 0), retry_after=retry_after)

    async def increment(self, key: str, *, window: int, now: float) -> WindowCount:
        start, retry_after = self._window(window, now)
        self.counts[(key, start)] = self.counts.get((key, start), 0) + 1
        return WindowCount(count=self.counts[(key, start)], retry_after=retry_after)

    async def increment_all(self, counters: Sequence[tuple[str, int]], *, now: float) -> list[WindowCount]:
        return [await self.increment(key, window=window, now=now) for key, window in counters]

    async def settle(
        self, *, refund: Sequence[tuple[str, int]] = (), reset: Sequence[tuple[str, int]] = (), now: float
    ) -> None:
        for key, window in refund:
            start, _ = self._window(window, now)
            if self.counts.get((key, start), 0) > 0:
                self.counts[(key, start)] -= 1
        for key, _ in reset:
            for k in [k for k in self.counts if k[0] == key]:
                del self.counts[k]

    async def forget(self, fragment: str) -> None:
        for k in [k for k in self.counts if fragment in k[0]]:
            del self.counts[k]


class InMemoryEphemeralStore:
    """Values with their own expiry; `take` reads and deletes in one step."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, float]] = {}

    async def put(self, key: str, value: str, *, expires_at: float) -> None:
        self.values[key] = (value, expires_at)

    async def get(self, key: str, *, now: float) -> str | None:
        stored = self.values.get(key)
        return stored[0] if stored is not None and stored[1] > now else None

    async def take(self, key: str, *, now: float) -> str | None:
        value = await self.get(key, now=now)
        self.values.pop(key, None)
        return value

    async def add(self, key: str, value: str, *, expires_at: float, now: float) -> bool:
        if await self.get(key, now=now) is not None:
            return False
        self.values[key] = (value, expires_at)
        return True

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)


class InMemoryFactorRepo:
    """Passkeys, TOTP, recovery codes (digest -> used_at) and recovery requests, like SqlFactorRepo."""

    def __init__(self) -> None:
        self.passkeys: dict[str, Passkey] = {}
        self.totp: dict[str, TotpCredential] = {}
        self.recovery_codes: dict[str, dict[str, float | None]] = {}
        self.requests: dict[str, RecoveryRequest] = {}

    async def list_passkeys(self, user_id: str) -> Sequence[Passkey]:
        return sorted((p for p in self.passkeys.values() if p.user_id == user_id), key=lambda p: p.created_at)

    async def get_passkey_by_credential(self, credential_id: str) -> Passkey | None:
        return next((p for p in self.passkeys.values() if p.credential_id == credential_id), None)

    async def add_passkey(self, passkey: Passkey) -> None:
        self.passkeys[passkey.id] = passkey

    async def update_passkey_use(
        self, passkey_id: str, *, sign_count: int, backup_state: bool, at: float
    ) -> None:
        passkey = self.passkeys.get(passkey_id)
        if passkey is not None:
            self.passkeys[passkey_id] = dataclasses.replace(
                passkey, sign_count=sign_count, backup_state=backup_state, last_used_at=at
            )

    async def flag_passkey(self, passkey_id: str) -> None:
        passkey = self.passkeys.get(passkey_id)
        if passkey is not None:
            self.passkeys[passkey_id] = dataclasses.replace(passkey, flagged=True)

    async def rename_passkey(self, user_id: str, passkey_id: str, name: str) -> bool:
        passkey = self.passkeys.get(passkey_id)
        if passkey is None or passkey.user_id != user_id:
            return False
        self.passkeys[passkey_id] = dataclasses.replace(passkey, name=name)
        return True

    async def delete_passkey(self, user_id: str, passkey_id: str) -> bool:
        passkey = self.passkeys.get(passkey_id)
        if passkey is None or passkey.user_id != user_id:
            return False
        del self.passkeys[passkey_id]
        return True

    async def get_totp(self, user_id: str) -> TotpCredential | None:
        return self.totp.get(user_id)

    async def put_totp(self, credential: TotpCredential) -> None:
        self.totp[credential.user_id] = credential

    async def confirm_totp(self, user_id: str) -> None:
        totp = self.totp.get(user_id)
        if totp is not None:
            self.totp[user_id] = dataclasses.replace(totp, confirmed=True)

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        totp = self.totp.get(user_id)
        if totp is None or totp.last_used_step >= step:
            return False
        self.totp[user_id] = dataclasses.replace(totp, last_used_step=step)
        return True

    async def delete_totp(self, user_id: str) -> bool:
        return self.totp.pop(user_id, None) is not None

    async def replace_recovery_codes(self, user_id: str, digests: Sequence[str], *, at: float) -> None:
        self.recovery_codes[user_id] = dict.fromkeys(digests)

    async def use_recovery_code(self, user_id: str, digest: str, *, at: float) -> bool:
        codes = self.recovery_codes.get(user_id, {})
        if digest not in codes or codes[digest] is not None:
            return False
        codes[digest] = at
        return True

    async def count_recovery_codes(self, user_id: str) -> int:
        return sum(1 for used in self.recovery_codes.get(user_id, {}).values() if used is None)

    async def second_factors(self, user_id: str) -> SecondFactors:
        totp = self.totp.get(user_id)
        return SecondFactors(
            passkey=any(p.user_id == user_id for p in self.passkeys.values()),
            totp=totp is not None and totp.confirmed,
            recovery_codes=await self.count_recovery_codes(user_id),
        )

    async def delete_all_factors(self, user_id: str) -> None:
        for passkey_id in [p.id for p in self.passkeys.values() if p.user_id == user_id]:
            del self.passkeys[passkey_id]
        self.totp.pop(user_id, None)
        self.recovery_codes.pop(user_id, None)

    async def add_recovery_request(self, request: RecoveryRequest) -> None:
        self.requests[request.id] = request

    async def pending_recovery_requests(self, *, user_id: str | None = None) -> Sequence[RecoveryRequest]:
        pending = [
            r
            for r in self.requests.values()
            if r.executed_at is None and r.cancelled_at is None and user_id in (None, r.user_id)
        ]
        return sorted(pending, key=lambda r: r.execute_after)

    async def finish_recovery_request(self, request_id: str, *, at: float, cancelled: bool) -> bool:
        request = self.requests.get(request_id)
        if request is None or request.executed_at is not None or request.cancelled_at is not None:
            return False
        self.requests[request_id] = (
            dataclasses.replace(request, cancelled_at=at)
            if cancelled
            else dataclasses.replace(request, executed_at=at)
        )
        return True


class InMemoryAuditLog:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def append(self, event: AuditEvent) -> None:
        self.events.append(dataclasses.replace(event, id=len(self.events) + 1))

    async def list_for_user(self, user_id: str, *, limit: int = 50) -> Sequence[AuditEvent]:
        return [e for e in reversed(self.events) if e.user_id == user_id][:limit]

    def kinds(self) -> list[str]:
        return [e.kind.value for e in self.events]


class FakeRangeSource:
    """A breached-password range source answering from a fixed set of full SHA-1 digests."""

    def __init__(self, *sha1_hex: str) -> None:
        self.digests = {d.upper() for d in sha1_hex}
        self.prefixes: list[str] = []

    async def suffixes(self, prefix: str) -> dict[str, int]:
        self.prefixes.append(prefix)
        return {d[5:]: 42 for d in self.digests if d.startswith(prefix)}


class FailingRangeSource:
    """A range source whose remote end is down."""

    def __init__(self) -> None:
        self.calls = 0

    async def suffixes(self, prefix: str) -> dict[str, int]:
        self.calls += 1
        raise ConnectionError("range service unreachable")
