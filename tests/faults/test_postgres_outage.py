"""PostgreSQL stopped (immediate shutdown: a crash, in-flight transactions cut) and restarted under load.

Once with sessions in SQL (PostgreSQL alone), once with sessions in Redis (PostgreSQL + Redis). The
server process is never restarted: it must notice the outage (503 + Retry-After, /readyz 503), never
answer 500 or a false session verdict, and come back on its own with nothing committed lost.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import PgCluster, Running
from tests.faults.scenario import run_outage


@pytest.mark.postgres
@pytest.mark.parametrize("sessions", ["sql_sessions", "redis_sessions"])
def test_postgres_stopped_and_restarted_under_load(
    sessions: str, pg: PgCluster, request: pytest.FixtureRequest
) -> None:
    if sessions == "redis_sessions":
        request.getfixturevalue("redis")  # running at the start and at the end
    running: Running = request.getfixturevalue(sessions)
    run_outage(running, stop=lambda: pg.stop("immediate"), start=pg.start)
