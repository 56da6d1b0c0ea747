"""Storage ports of the provider."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from threshold.oidc.models import (
    AuthorizationCode,
    Client,
    Consent,
    Grant,
    KeyState,
    LogoutDelivery,
    RefreshToken,
    SigningKey,
)


class ClientRepo(Protocol):
    async def add(self, client: Client) -> None: ...

    async def get(self, client_id: str) -> Client | None: ...

    async def list(self) -> Sequence[Client]: ...

    async def update(self, client: Client, *, expected: Client) -> bool:
        """Store `client` if the stored row is still `expected` (compare and set, so a concurrent change,
        e.g. a secret rotation, is never overwritten); False when it is gone or changed meanwhile."""
        ...

    async def delete(self, client_id: str) -> bool: ...


class SigningKeyRepo(Protocol):
    async def add(self, key: SigningKey) -> None: ...

    async def list(self) -> Sequence[SigningKey]: ...

    async def transition(
        self,
        kid: str,
        *,
        from_state: KeyState,
        to_state: KeyState,
        at: float,
        expires_at: float | None = None,
    ) -> bool:
        """Move a key between states only if it is still in `from_state` (one process wins a race)."""
        ...

    async def delete_expired(self, *, now: float) -> int: ...


class CodeRepo(Protocol):
    async def add(self, code: AuthorizationCode) -> None: ...

    async def consume(self, digest: str, *, now: float) -> tuple[AuthorizationCode | None, bool]:
        """Mark a code used. Returns (code, first_use): first_use is False for a replay."""
        ...

    async def get(self, digest: str) -> AuthorizationCode | None:
        """The code as stored now (what it issued is recorded after it is consumed)."""
        ...

    async def record_issued(
        self, digest: str, *, access_token_jti: str, refresh_family: str | None
    ) -> None: ...


class RefreshTokenRepo(Protocol):
    """Refresh tokens and the grants they belong to (a family's id is its grant's).

    Every revocation below revokes the matching grants too, in the same transaction, so that the access
    tokens issued under them end with the refresh tokens (see oidc.live_grant).
    """

    async def add_grant(self, grant: Grant, *, first_token: RefreshToken | None = None) -> None:
        """Store a new grant, with the first refresh token of its family when there is one (one write)."""
        ...

    async def get_grant(self, grant_id: str) -> Grant | None: ...

    async def add(self, token: RefreshToken) -> None: ...

    async def get(self, digest: str) -> RefreshToken | None: ...

    async def rotate(
        self, parent_digest: str, successor: RefreshToken, *, now: float, sealed: str | None
    ) -> bool:
        """In one transaction: mark the parent used (only if unused and unrevoked) and store its successor.

        False, with nothing stored, when another use came first.
        """
        ...

    async def revoke_family(self, family_id: str, *, now: float) -> int: ...

    async def revoke_for_session(self, session_digest: str, *, now: float) -> int: ...

    async def revoke_for_sessions(self, session_digests: Sequence[str], *, now: float) -> int:
        """Revoke the grants (and their families) issued under any of these sessions."""
        ...

    async def clients_for_sessions(
        self, user_id: str, session_digests: Sequence[str], *, now: float
    ) -> list[tuple[str, str]]:
        """(client id, session digest) of every unexpired grant of the user under one of these sessions,
        revoked or not: the applications that held the person's session."""
        ...

    async def revoke_for_user(self, user_id: str, *, now: float, client_id: str | None = None) -> int: ...

    async def revoke_for_org(self, user_id: str, org_id: str, *, now: float) -> int:
        """Revoke the user's grants issued for the organization, with their refresh tokens (a membership
        ended); the user's other grants stay. Returns how many refresh tokens were revoked."""
        ...


class ConsentRepo(Protocol):
    async def get(self, user_id: str, client_id: str) -> Consent | None: ...

    async def put(self, consent: Consent) -> None: ...

    async def delete(self, user_id: str, client_id: str) -> bool: ...

    async def list_for_user(self, user_id: str) -> Sequence[Consent]: ...


class MarkStore(Protocol):
    """Single-use marks with an expiry: JWT-assertion replay cache, revoked access-token ids."""

    async def add(self, key: str, *, expires_at: float) -> bool:
        """Set the mark; False when it was already set and unexpired."""
        ...

    async def exists(self, key: str, *, now: float) -> bool: ...


class LogoutQueue(Protocol):
    """The durable queue of logout tokens to deliver (adapters.backchannel)."""

    async def enqueue(self, deliveries: Sequence[LogoutDelivery]) -> None:
        """Store the deliveries (one write); they are delivered from any process."""
        ...
