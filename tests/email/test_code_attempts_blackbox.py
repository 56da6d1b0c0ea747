"""The emailed sign-in code under concurrent guessing, against the real server (`threshold serve`, its
mail worker delivering to the test SMTP server) on SQLite and on PostgreSQL + Redis.

An attempt is counted before the code is compared (issue 11, hole 7: reserve before check), so sixty
wrong codes fired at once at one pending sign-in get exactly the allowed attempts and no more; the right
code is refused after them. The same volley at a browser that asked for an address with no account
gets the very same answers, so concurrency reveals no more than one guess at a time does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import unique_email
from tests.email.helpers import SmtpSink
from tests.limits.conftest import Agent
from tests.support import Backend, Deployment, Server, make_deployment

pytestmark = pytest.mark.slow

SIGN_IN = "Your sign-in link"
CONFIRM = "Confirm your email address"
BUDGET = 5
VOLLEY = 60
PROBE = Path(__file__).parent / "server_probe"


@contextlib.contextmanager
def _deployment(kind: Backend, tmp_path: Path, smtp: SmtpSink) -> Iterator[Deployment]:
    with make_deployment(
        tmp_path,
        kind,
        tag="codes",
        THRESHOLD_SMTP_URL=smtp.url,
        THRESHOLD_TRUSTED_PROXIES='["127.0.0.1/32"]',
        THRESHOLD_EMAIL__CODE_ATTEMPTS=str(BUDGET),
        THRESHOLD_EMAIL__NOTIFY_NEW_DEVICE="false",
    ) as deployment:
        yield deployment


async def _asker(http: httpx.AsyncClient, server: Server, email: str, ip: str) -> Agent:
    """A browser that asked for a sign-in message for `email` (it holds the binding cookie)."""
    agent = Agent(http, server, ip=ip)
    await agent.csrf()
    asked = await agent.request("POST", "/api/v1/login/email", {"email": email})
    assert asked.status_code == 202, asked.text
    return agent


async def _volley(agent: Agent, codes: list[str]) -> Counter[tuple[int, str]]:
    responses = await asyncio.gather(
        *(agent.request("POST", "/api/v1/login/email/verify", {"code": code}, keep=False) for code in codes)
    )
    return Counter((r.status_code, r.json().get("code", "")) for r in responses)


@pytest.mark.parametrize("kind", ["sqlite", "postgres+redis"])
def test_concurrent_wrong_codes_get_exactly_the_allowed_attempts(
    kind: Backend, tmp_path: Path, smtp: SmtpSink
) -> None:
    compares = tmp_path / "compares.log"
    with _deployment(kind, tmp_path, smtp) as deployment:
        deployment.env["PYTHONPATH"] = str(PROBE)  # counts, inside the server, each code compared
        deployment.env["TEST_PROBE_COMPARES"] = str(compares)
        asyncio.run(_guess_concurrently(deployment.start(), smtp, compares))


async def _guess_concurrently(server: Server, smtp: SmtpSink, compares: Path) -> None:
    email = unique_email("volley")
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=VOLLEY)) as http:
        owner = Agent(http, server, ip="192.0.2.10")
        assert (await owner.signup(email)).status_code == 201
        await asyncio.to_thread(smtp.wait_for, email, CONFIRM, timeout=15)

        known = await _asker(http, server, email, "198.18.0.1")
        nobody = await _asker(http, server, unique_email("volley-nobody"), "198.18.0.2")
        message = await asyncio.to_thread(smtp.wait_for, email, SIGN_IN, timeout=15)
        right = message.code()
        wrong = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, VOLLEY + 1)]

        answers = await _volley(known, wrong)
        assert compares.read_text().count("compared") == BUDGET, "more guesses compared than allowed"
        assert answers == {
            (400, "invalid_code"): BUDGET - 1,  # compared, with tries left
            (400, "token_invalid"): VOLLEY - BUDGET + 1,  # the last compared one, then refused unseen
        }, answers
        # At most BUDGET were compared: the right code, sent after them, is refused too.
        late = await known.request("POST", "/api/v1/login/email/verify", {"code": right})
        assert late.status_code == 400 and late.json()["code"] == "token_invalid", late.text
        assert (await known.request("GET", "/api/v1/session")).status_code == 401

        assert await _volley(nobody, wrong) == answers  # an unknown address: the same answers
        assert compares.read_text().count("compared") == 2 * BUDGET
