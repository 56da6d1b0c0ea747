"""The key ring reloads in the background: requests sign with the ring in memory while one read
replaces it, instead of all of them waiting on the read every 30 seconds."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

from tests.unit.fakes import FakeClock
from threshold.core.crypto import SecretBox
from threshold.core.errors import DependencyUnavailable
from threshold.oidc import keys as key_module
from threshold.oidc.keys import KeyRing
from threshold.oidc.models import SigningKey


class SlowRepo:
    """Signing keys in memory; `list` waits for `release` while `hold` is set, or fails with `fail`. The
    ring reads and adds keys here; it rotates none (no `transition`)."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.reads = 0
        self.hold = False
        self.release = asyncio.Event()
        self.fail = False

    async def add(self, key: SigningKey) -> None:
        self.keys.append(key)

    async def list(self) -> Sequence[SigningKey]:
        self.reads += 1
        if self.hold:
            await self.release.wait()
        if self.fail:
            raise DependencyUnavailable()
        return list(self.keys)


def _ring(repo: SlowRepo) -> KeyRing:
    return KeyRing(
        repo,  # type: ignore[arg-type]
        SecretBox(secrets.token_bytes(32)),
        FakeClock(),
        rotation_interval=86400,
        max_token_lifetime=900,
    )


async def test_a_stale_ring_answers_at_once_while_one_read_replaces_it() -> None:
    repo = SlowRepo()
    ring = _ring(repo)
    kid, _ = await ring.signing_key("ES256")  # the first load is waited for
    reads = repo.reads
    ring._loaded_at -= key_module.RELOAD_INTERVAL + 1  # stale
    repo.hold = True
    answers = await asyncio.wait_for(asyncio.gather(*(ring.signing_key("ES256") for _ in range(20))), 1)
    assert {answer[0] for answer in answers} == {kid}  # nobody waited for the read
    await asyncio.sleep(0)
    assert repo.reads == reads + 1  # one read behind them
    repo.release.set()
    await asyncio.sleep(0.01)
    assert ring._loaded_at > 0 and repo.reads == reads + 1


async def test_a_failed_background_read_keeps_the_ring_and_tries_again_later() -> None:
    repo = SlowRepo()
    ring = _ring(repo)
    kid, _ = await ring.signing_key("Ed25519")
    ring._loaded_at -= key_module.RELOAD_INTERVAL + 1
    repo.fail = True
    assert (await ring.signing_key("Ed25519"))[0] == kid
    await asyncio.sleep(0.01)
    reads = repo.reads
    assert (await ring.signing_key("Ed25519"))[0] == kid  # within a second: no new attempt
    await asyncio.sleep(0.01)
    assert repo.reads == reads
