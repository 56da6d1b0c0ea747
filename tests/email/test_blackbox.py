"""Mail from the real server: `threshold serve` as a separate process whose background worker delivers
to the test SMTP server, driven only over HTTP. A crash during an SMTP outage loses nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.blackbox.conftest import Browser
from tests.conftest import unique_email
from tests.email.helpers import SmtpSink, token_of
from tests.support import Backend, Deployment, make_deployment

pytestmark = pytest.mark.slow

NEW_PASSWORD = "copper meadow violin 2031 drift"
RESET = "Reset your password"
CONFIRM = "Confirm your email address"


def _deployment(
    kind: Backend, tmp_path: Path, smtp: SmtpSink
) -> contextlib.AbstractContextManager[Deployment]:
    return make_deployment(tmp_path, kind, THRESHOLD_SMTP_URL=smtp.url, THRESHOLD_EMAIL__PER_ADDRESS="20")


def _wait_for_log(deployment: Deployment, needle: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(server.output().count(needle) for server in deployment.servers) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not logged {count} times:\n" + deployment.servers[-1].output())


@pytest.mark.parametrize("kind", ["sqlite", "postgres+redis"])
def test_the_server_delivers_reset_mail_in_the_background(
    kind: Backend, tmp_path: Path, smtp: SmtpSink
) -> None:
    with httpx.Client(timeout=30) as http, _deployment(kind, tmp_path, smtp) as deployment:
        server = deployment.start()
        email, unknown = unique_email("bb"), unique_email("nobody")
        owner = Browser(http)
        assert owner.signup(server, email).status_code == 201
        smtp.wait_for(email, CONFIRM, timeout=5)

        # Same answer, similar time, for an account and for nobody.
        asker = Browser(http)
        asker.fetch_csrf(server)
        timings: dict[str, list[float]] = {email: [], unknown: []}
        for round_ in range(8):
            for address in (email, unknown) if round_ % 2 else (unknown, email):
                started = time.perf_counter()
                response = asker.post(server, "/api/v1/password/reset/request", {"email": address})
                if round_:  # the first round warms up
                    timings[address].append(time.perf_counter() - started)
                assert response.status_code == 202 and response.json() == {"status": "reset_requested"}
                time.sleep(
                    0.2
                )  # let the background work (token, queue, SMTP) finish outside the timed window
        ratio = statistics.median(timings[email]) / statistics.median(timings[unknown])
        assert 0.5 <= ratio <= 2.0, (ratio, timings)

        started = time.monotonic()
        message = smtp.wait_for(email, RESET, count=8, timeout=5)
        assert time.monotonic() - started < 5
        assert smtp.to(unknown) == []
        link = message.link("/reset-password")
        assert link.startswith(f"{server.base_url}/reset-password?token=")

        stranger = Browser(http)
        stranger.fetch_csrf(server)
        reset = stranger.post(
            server, "/api/v1/password/reset", {"token": token_of(link), "new_password": NEW_PASSWORD}
        )
        assert reset.status_code == 200, reset.text
        assert owner.get(server, "/api/v1/session").status_code == 401  # every session ended
        assert Browser(http).login(server, email, NEW_PASSWORD).status_code == 200
        smtp.wait_for(email, "Your password was changed", timeout=5)


@pytest.mark.parametrize("kind", ["sqlite", "postgres+redis"])
def test_mail_queued_during_an_outage_survives_a_crash(kind: Backend, tmp_path: Path, smtp: SmtpSink) -> None:
    with httpx.Client(timeout=30) as http, _deployment(kind, tmp_path, smtp) as deployment:
        first = deployment.start()
        email = unique_email("crash")
        smtp.stop()
        browser = Browser(http)
        assert browser.signup(first, email).status_code == 201
        browser.fetch_csrf(first)
        asked = browser.post(first, "/api/v1/password/reset/request", {"email": email})
        assert asked.status_code == 202
        # Both messages were queued and tried once: the verification, then the reset.
        _wait_for_log(deployment, f"to {email} not delivered (attempt 1)", count=2)
        os.killpg(first.process.pid, signal.SIGKILL)  # a crash, not a clean shutdown
        first.process.wait(timeout=10)

        smtp.start()
        second = deployment.start()
        reset = smtp.wait_for(email, RESET, timeout=30)
        smtp.wait_for(email, CONFIRM, timeout=30)
        time.sleep(2.5)  # another poll of the worker: nothing is sent twice
        assert len(smtp.to(email, RESET)) == 1 and len(smtp.to(email, CONFIRM)) == 1

        stranger = Browser(http)
        stranger.fetch_csrf(second)
        token = token_of(reset.link("/reset-password"))
        done = stranger.post(second, "/api/v1/password/reset", {"token": token, "new_password": NEW_PASSWORD})
        assert done.status_code == 200, done.text
        assert Browser(http).login(second, email, NEW_PASSWORD).status_code == 200
