"""Storage and service ports. Adapters in threshold.adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from threshold.core.models import AuditEvent, PasswordCredential, SessionRecord, User


class UserRepo(Protocol):
    async def add(self, user: User, credential: PasswordCredential | None) -> None:
        """Insert a user (and its password). Raises EmailUnavailable when the address is taken."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def get_by_email(self, email_normalized: str) -> User | None: ...

    async def list(self, *, limit: int = 100, offset: int = 0) -> Sequence[User]: ...

    async def set_disabled(self, user_id: str, disabled: bool) -> bool: ...

    async def get_password(self, user_id: str) -> PasswordCredential | None: ...

    async def set_password(self, credential: PasswordCredential) -> None: ...

    async def record_network(self, user_id: str, network: str, at: float) -> None:
        """Remember that `network` saw a successful sign-in of this user."""
        ...

    async def network_seen_since(self, user_id: str, network: str, since: float) -> bool: ...


class SessionStore(Protocol):
    async def create(self, record: SessionRecord) -> None: ...

    async def get(self, digest: str) -> SessionRecord | None:
        """The session with this digest, or None. Expired records may be returned; callers check."""
        ...

    async def touch(self, digest: str, *, last_seen_at: float, idle_expires_at: float) -> None: ...

    async def delete(self, digest: str) -> bool: ...

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

    async def reset(self, key: str, *, window: int, now: float) -> None: ...


class AuditLog(Protocol):
    """Append-only: there is no update or delete."""

    async def append(self, event: AuditEvent) -> None: ...

    async def list_for_user(self, user_id: str, *, limit: int = 50) -> Sequence[AuditEvent]: ...


class BreachRangeSource(Protocol):
    """k-anonymity range query: suffixes of SHA-1 digests (upper hex) starting with a 5-hex prefix."""

    async def suffixes(self, prefix: str) -> dict[str, int]: ...
