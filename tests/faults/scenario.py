"""One storage outage under load, start to finish, and everything it must not break.

`run_outage` works on two processes of one deployment, A and B. While healthy it signs up accounts
and makes (and revokes) sessions on A, and has B check them (so B's session cache holds them). Then
the load (on both) and a /readyz prober (on both) run while the fault is injected; two revocations
are tried on A while the dependency is down; the fault is lifted and the test waits until /readyz says
200 again on both (no process is ever restarted); the load goes on a little; then every recorded
answer and what the database holds are checked.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.faults.conftest import (
    REQUEST_TIMEOUT,
    Account,
    Load,
    Outcome,
    Prober,
    Running,
    assert_can_log_in,
    assert_no_violations,
    between,
    check_session,
    log_out,
    logs,
    ready,
    record,
    sign_up,
)
from tests.support import Server, wait_for

HEALTHY_SECONDS = 1.0
OUTAGE_SECONDS = 3.0
AFTER_SECONDS = 1.5
RECOVERY_TIMEOUT = 20.0
# After /readyz says 200 again, every request sent later than this must get its normal answer.
SETTLE_SECONDS = 0.5
LOGIN_SAMPLE = 3
LOAD_THREADS = 4


@dataclass
class Timeline:
    fault: float = 0.0  # the fault is being injected
    down: float = 0.0  # the dependency is down (stop returned)
    restart: float = 0.0  # restart begins
    back: float = 0.0  # the dependency answers again
    ready: float = 0.0  # /readyz answered 200 again on every process


@dataclass
class Victim:
    """A session to be revoked by another session of the same account (DELETE /api/v1/sessions/{id})."""

    holder: Account
    session: str
    public_id: str


def _second_session(http: httpx.Client, server: Server, account: Account) -> Victim:
    browser = Browser(http)
    response = browser.login(server, account.email)
    assert response.status_code == 200, response.text
    assert browser.session
    return Victim(account, browser.session, response.json()["session"]["id"])


def _revoke(http: httpx.Client, server: Server, victim: Victim) -> Outcome:
    browser = Browser(http, cookies={SESSION_COOKIE: victim.holder.session})
    outcome, _ = record("revoke", lambda: browser.delete(server, f"/api/v1/sessions/{victim.public_id}"))
    return outcome


def _check(http: httpx.Client, server: Server, op: str, session: str) -> Outcome:
    outcome, _ = record(op, lambda: check_session(http, server, session))
    return outcome


def _status(http: httpx.Client, server: Server, session: str) -> int:
    return check_session(http, server, session).status_code


def run_outage(running: Running, *, stop: Callable[[], None], start: Callable[[], None]) -> Timeline:
    a, b, servers = running.a, running.b, running.servers
    timeline = Timeline()
    with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
        # --- Healthy: accounts, sessions, revoked sessions ---------------------------------------
        valid = [sign_up(http, a) for _ in range(3)]
        revoked: list[str] = []
        for _ in range(2):
            gone = sign_up(http, a)
            assert _status(http, b, gone.session) == 200
            assert log_out(http, a, gone.session).status_code == 204
            revoked.append(gone.session)
        # Revoked while the dependency is down: one by logout, one from another session of its account.
        logout_victim = sign_up(http, a)
        delete_victim = _second_session(http, a, sign_up(http, a))
        # Revoked by another session right after the outage.
        late_victim = _second_session(http, a, valid[1])
        for session in (logout_victim.session, delete_victim.session, late_victim.session):
            assert _status(http, b, session) == 200  # B knows them (and may cache them)

        # --- Load, outage, recovery -------------------------------------------------------------
        extra: list[Outcome] = []
        load = Load(servers=servers, valid=valid, revoked=revoked, threads=LOAD_THREADS)
        with Prober(servers) as prober, load:
            time.sleep(HEALTHY_SECONDS)
            timeline.fault = time.monotonic()
            stop()
            timeline.down = time.monotonic()
            time.sleep(0.5)
            logout_during, _ = record("logout", lambda: log_out(http, a, logout_victim.session))
            revoke_during = _revoke(http, a, delete_victim)
            extra += [logout_during, revoke_during]
            for session, revocation in (
                (logout_victim.session, logout_during),
                (delete_victim.session, revoke_during),
            ):
                if revocation.status == 204:  # done: never accepted again, on any process
                    extra += [_check(http, server, "session_revoked", session) for server in servers]
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - timeline.down)))
            timeline.restart = time.monotonic()
            start()
            timeline.back = time.monotonic()
            for server in servers:
                wait_for(
                    functools.partial(ready, server), RECOVERY_TIMEOUT, f"{server.base_url}/readyz 200 again"
                )
            timeline.ready = time.monotonic()
            time.sleep(AFTER_SECONDS)
        outcomes = load.outcomes + extra

        # --- Every answer was right, or a well-formed 503 ---------------------------------------
        assert_no_violations([*outcomes, *prober.outcomes], servers)

        # The fault bit: requests failed with 503 while it lasted, and /readyz said so throughout.
        outage = between(outcomes, timeline.down + 0.2, timeline.restart)
        assert any(o.status == 503 for o in outage), "no 503 during the outage: the fault did not bite"
        probes = between(prober.outcomes, timeline.down + 0.2, timeline.restart)
        assert len(probes) >= 2, "no /readyz probe during the outage"
        assert all(o.status == 503 for o in probes), [o.describe() for o in probes if o.status != 503]

        # Recovered without a restart: once ready, requests get their normal answers again.
        settled = [o for o in load.outcomes if o.started >= timeline.ready + SETTLE_SECONDS]
        assert settled, "no request after the recovery"
        failing = [o.describe() for o in settled if o.status == 503]
        assert not failing, f"still failing after /readyz said 200: {failing[:10]}{logs(servers)}"
        assert all(server.process.poll() is None for server in servers), "a server process exited"

        # --- Revocation was never ignored ------------------------------------------------------
        # A revocation that answered 503 may or may not have happened; the processes agree on which.
        for session in (logout_victim.session, delete_victim.session):
            seen = {server.base_url: _status(http, server, session) for server in servers}
            assert len(set(seen.values())) == 1 and set(seen.values()) <= {200, 401}, seen
        if logout_during.status != 204:
            again = log_out(http, a, logout_victim.session)
            assert again.status_code == 204, again.text
        if revoke_during.status != 204:
            again_outcome = _revoke(http, a, delete_victim)
            assert again_outcome.status in (204, 404), again_outcome.describe()
        late = _revoke(http, a, late_victim)
        assert late.status == 204, late.describe()
        for session in [*revoked, logout_victim.session, delete_victim.session, late_victim.session]:
            for server in servers:
                response = check_session(http, server, session)
                assert response.status_code == 401, (server.base_url, response.text)

        # --- Nothing committed was lost ------------------------------------------------------------
        for account in [*valid, delete_victim.holder]:  # sessions made before the outage still work
            for server in servers:
                assert _status(http, server, account.session) == 200, (server.base_url, account.email)
        accounts = running.deployment.accounts()
        assert all(accounts.values()), [email for email, has in accounts.items() if not has]
        created = [o for o in outcomes if o.op == "signup" and o.status == 201]
        assert created, "no sign-up succeeded"
        missing = [o.email for o in created if o.email not in accounts]
        assert not missing, f"sign-ups answered 201 but lost: {missing}"
        for number, outcome in enumerate(created):  # and the session each one handed out still works
            assert outcome.session, outcome.describe()
            server = servers[number % 2]
            assert _status(http, server, outcome.session) == 200, (server.base_url, outcome.describe())
        last_before = [o for o in created if o.ended <= timeline.fault][-2:]
        sample = last_before + created[:LOGIN_SAMPLE]
        # A sign-up that answered 503 may or may not have been committed; if it was, it is whole.
        sample += [o for o in outcomes if o.op == "signup" and o.status == 503 and o.email in accounts]
        for number, outcome in enumerate({o.email: o for o in sample}.values()):
            assert_can_log_in(http, servers[number % 2], outcome.email)

        # And the service takes new work, on both processes, with no restart.
        fresh = sign_up(http, b)
        assert _status(http, a, fresh.session) == 200
        assert_can_log_in(http, a, fresh.email)
    return timeline
