"""A worker process killed with SIGKILL in the middle of requests (sign-ups and logins in flight).

`threshold serve --workers 2` runs uvicorn's supervisor, which (uvicorn 0.54: `keep_subprocess_alive`,
checked every half second) replaces a worker that died. Each original worker is killed in turn while
the load runs, the second only once the first one's replacement is up, so that the service then runs
on a restarted worker alone until the second replacement has started. What was in flight on a killed
worker may get no answer; every other request gets its normal answer (no 5xx at all: the storage is
healthy), every sign-up that answered 201 is in the database, and no account is half-written (a user
row without its password credential).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import (
    REQUEST_TIMEOUT,
    Load,
    Outcome,
    PgCluster,
    assert_can_log_in,
    assert_no_violations,
    check_session,
    fault_deployment,
    log_out,
    sign_up,
)
from tests.support import START_TIMEOUT, Server, wait_for

WORKER_MARK = b"spawn_main"  # multiprocessing's spawn entry point, in a worker's command line
STARTUP_DONE = "Application startup complete."
GRACE = 1.0  # a request sent this soon after a kill may still have gone to the dying worker


def worker_pids(supervisor: int) -> set[int]:
    """The live worker processes of a uvicorn supervisor (its spawned children), read from /proc."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()  # empty for a zombie not yet reaped
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == supervisor and WORKER_MARK in cmdline:
            pids.add(int(entry.name))
    return pids


def replaced(supervisor: int, victim: int) -> bool:
    live = worker_pids(supervisor)
    return victim not in live and len(live) == 2


def started(server: Server) -> int:
    """How many worker processes have finished starting (uvicorn logs it at level info)."""
    return server.output().count(STARTUP_DONE)


def served_since(load: Load, since: float) -> int:
    """Requests sent after `since` that got their normal answer."""
    return sum(1 for o in list(load.outcomes) if o.started >= since and o.status in (200, 201, 401))


@pytest.mark.postgres
def test_worker_killed_mid_request(pg: PgCluster, tmp_path: Path) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the worker processes")
    with (
        fault_deployment(tmp_path, pg, THRESHOLD_LOG_LEVEL="info") as deployment,
        httpx.Client(timeout=REQUEST_TIMEOUT) as http,
    ):
        server = deployment.start(workers=2)
        supervisor = server.process.pid
        wait_for(lambda: started(server) == 2, START_TIMEOUT, "two workers serving")
        originals = sorted(worker_pids(supervisor))
        assert len(originals) == 2, originals

        valid = [sign_up(http, server) for _ in range(3)]
        gone = sign_up(http, server)
        assert log_out(http, server, gone.session).status_code == 204

        kills: list[float] = []  # when each original worker was killed
        back: list[float] = []  # when its replacement was serving
        with Load(servers=[server], valid=valid, revoked=[gone.session], threads=6) as load:
            load.wait_for_answers("signup", 201, 2)
            first, second = originals
            load.wait_for_in_flight({"signup", "login"})
            kills.append(time.monotonic())
            os.kill(first, signal.SIGKILL)
            # The supervisor notices and starts a replacement, which serves once started.
            wait_for(lambda: replaced(supervisor, first), START_TIMEOUT, f"a replacement for worker {first}")
            wait_for(lambda: started(server) == 3, START_TIMEOUT, "the replacement serving")
            back.append(time.monotonic())
            load.wait_for_in_flight({"signup", "login"})
            kills.append(time.monotonic())
            os.kill(second, signal.SIGKILL)
            wait_for(
                lambda: replaced(supervisor, second), START_TIMEOUT, f"a replacement for worker {second}"
            )
            # Both original workers are dead: until the second replacement has started (seconds), the
            # answers come from the first one.
            wait_for(
                lambda: served_since(load, kills[1] + GRACE) >= 3,
                START_TIMEOUT,
                "answers after the second kill",
            )
        outcomes = load.outcomes

        def cut_by_a_kill(outcome: Outcome) -> bool:
            return any(outcome.started <= kill + GRACE and outcome.ended >= kill for kill in kills)

        assert server.process.poll() is None, "the supervisor exited"
        live = worker_pids(supervisor)
        assert len(live) == 2 and not live & set(originals), (originals, live)
        # Every request answered, and answered right, but those in flight on the killed worker.
        assert_no_violations(outcomes, [server], transport_ok=cut_by_a_kill)
        unavailable = [o.describe() for o in outcomes if o.status == 503]
        assert not unavailable, unavailable[:10]
        # While one worker was dead and its replacement starting, the other one answered: after the
        # second kill, that was the first replacement.
        answered = [o for o in outcomes if o.started >= kills[0] + GRACE and o.ended <= back[0] and o.status]
        assert answered, "no answer while the first replacement was starting"
        assert any(o.op == "signup" and o.status == 201 for o in outcomes if o.started >= kills[0])
        assert any(o.op == "login" and o.status == 200 for o in outcomes if o.started >= kills[0])

        # Nothing half-written, nothing answered 201 lost.
        accounts = deployment.accounts()
        assert all(accounts.values()), [email for email, has in accounts.items() if not has]
        created = [o for o in outcomes if o.op == "signup" and o.status == 201]
        before_a_kill = [o for o in created if o.ended < kills[0]]
        assert before_a_kill, "no sign-up answered before the first kill"
        missing = [o.email for o in created if o.email not in accounts]
        assert not missing, f"sign-ups answered 201 but lost: {missing}"
        for outcome in created:
            assert outcome.session
            response = check_session(http, server, outcome.session)
            assert response.status_code == 200, (outcome.describe(), response.text)
        # A sign-up cut by a kill may or may not have committed; if it did, the account works.
        cut = [o for o in outcomes if o.op == "signup" and o.status is None and o.email in accounts]
        for outcome in {o.email: o for o in [*before_a_kill[-1:], *created[-1:], *cut]}.values():
            assert_can_log_in(http, server, outcome.email)
        for account in valid:
            assert check_session(http, server, account.session).status_code == 200
        assert check_session(http, server, gone.session).status_code == 401
