"""Redis killed (SIGKILL) and restarted under load, PostgreSQL + Redis, sessions in Redis.

Our Redis keeps an append-only file fsynced on every write, so what it acknowledged survives the
kill: sessions issued before (and during) the outage still work afterwards, and a revocation is never
undone. Without persistence the sessions would legitimately be gone after a restart; with it, losing
one would be a false "logged out".
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import PgCluster, Running
from tests.faults.scenario import run_outage
from tests.support import RedisServer


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_killed_and_restarted_under_load(
    pg: PgCluster, redis: RedisServer, redis_sessions: Running
) -> None:
    run_outage(redis_sessions, stop=redis.kill, start=redis.start)
