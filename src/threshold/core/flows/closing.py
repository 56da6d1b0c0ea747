"""A sign-in's closing writes through the ordinary ports, one statement each: the rule that
ports.SignInWrites implementations batch (adapters.sql.repos.SqlSignInWrites in one round trip on
PostgreSQL), and the path every implementation is checked against (tests/integration/contract)."""

from __future__ import annotations

from threshold.core.audit import Auditor
from threshold.core.models import AuditEvent
from threshold.core.ports import SignInClosed, UserRepo


class SequentialSignInWrites:
    def __init__(self, users: UserRepo, auditor: Auditor) -> None:
        self._users = users
        self._audit = auditor

    async def close(
        self, user_id: str, *, epoch: int, event: AuditEvent, network: str, device: str | None
    ) -> SignInClosed:
        if await self._users.credential_epoch(user_id) != epoch:
            return SignInClosed(current=False, new_device=False)
        await self._audit.append(event)
        await self._users.record_network(user_id, network, event.at)
        new = await self._users.remember_device(user_id, device, event.at) if device else False
        return SignInClosed(current=True, new_device=new)


__all__ = ["SequentialSignInWrites"]
