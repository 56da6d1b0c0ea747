"""Updating a client is compare-and-set: a concurrent change (a secret rotation above all) is never
overwritten by an update that read the client before it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.oidc.helpers import OP
from threshold.core.errors import Conflict
from threshold.core.secrets import digest
from threshold.oidc.provider import IssuedClient


async def test_a_write_based_on_a_stale_read_is_refused(op: OP) -> None:
    rp = await op.register(first_party=False)
    stale = await op.provider.get_client(rp.client_id)
    assert stale is not None
    rotated = await op.provider.update_client(rp.client_id, rotate_secret=True)
    assert rotated is not None and rotated.secret

    clients = op.services.provider._clients  # the port the provider writes through
    assert not await clients.update(replace(stale, name="Overwritten"), expected=stale)

    stored = await op.provider.get_client(rp.client_id)
    assert stored is not None and stored.secret_digest == digest(rotated.secret)
    assert stored.name == "Relying Party"


async def test_concurrent_updates_never_bring_back_a_rotated_secret(op: OP) -> None:
    for _ in range(5):
        rp = await op.register(first_party=False)
        updates = [
            op.provider.update_client(rp.client_id, rotate_secret=True),
            op.provider.update_client(rp.client_id, logo_uri="https://rp.example/logo.png"),
            op.provider.update_client(rp.client_id, name="Renamed"),
        ]

        results = await asyncio.gather(*updates, return_exceptions=True)

        assert all(isinstance(r, IssuedClient | Conflict) for r in results), results
        applied = [r for r in results if isinstance(r, IssuedClient)]
        assert applied, "every concurrent update was refused"
        stored = await op.provider.get_client(rp.client_id)
        assert stored is not None
        secrets_issued = [r.secret for r in applied if r.secret]
        if secrets_issued:
            # the secret handed out by the rotation is the one that works, never the leaked old one
            assert rp.secret is not None and stored.secret_digest != digest(rp.secret)
            assert stored.secret_digest in {digest(s) for s in secrets_issued}
        else:
            assert rp.secret is not None and stored.secret_digest == digest(rp.secret)
