"""Concurrent organization switches of one session, against a real server on each backend: the session is
taken by exactly one of them, which answers the one new session; every other answers 401 and sets no
cookie (so a browser that gets its answers in any order keeps the winner's); the old cookie is dead."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter

import httpx

from tests.blackbox.conftest import SESSION_COOKIE, parse_set_cookie
from tests.conftest import unique_email
from tests.limits.conftest import Agent, Limited

CONCURRENT = 12
ROUNDS = 3
_hosts = itertools.count(1)


def session_cookies(response: httpx.Response) -> list[str]:
    return [
        value
        for name, value, _ in (parse_set_cookie(h) for h in response.headers.get_list("set-cookie"))
        if name == SESSION_COOKIE
    ]


async def test_of_concurrent_switches_of_one_session_exactly_one_new_session_survives(
    limited: Limited,
) -> None:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=CONCURRENT * 2)) as http:
        agent = Agent(http, limited.server, ip=f"198.19.{next(_hosts)}.1")
        email = unique_email("switch-race")
        assert (await agent.signup(email)).status_code == 201
        orgs = []
        for name in ("Acme", "Globex"):
            created = limited.deployment.cli("orgs", "create", "--name", f"{name} {email[:18]}", "--json")
            assert created.returncode == 0, created.stderr
            orgs.append(json.loads(created.stdout))
            added = limited.deployment.cli(
                "orgs", "members", "add", orgs[-1]["slug"], email, "--role", "admin"
            )
            assert added.returncode == 0, added.stderr

        for _ in range(ROUNDS):
            old = agent.session
            assert old is not None
            answers = await asyncio.gather(
                *(
                    agent.request(
                        "POST", "/api/v1/organizations/select", {"org": orgs[i % 2]["slug"]}, keep=False
                    )
                    for i in range(CONCURRENT)
                )
            )

            assert Counter(a.status_code for a in answers) == {200: 1, 401: CONCURRENT - 1}, [
                a.text for a in answers if a.status_code != 401
            ]
            winner = next(a for a in answers if a.status_code == 200)
            assert all(session_cookies(a) == [] for a in answers if a is not winner)
            (new,) = session_cookies(winner)
            assert new and new != old
            chosen = winner.json()["organization"]["id"]

            agent.cookies[SESSION_COOKIE] = old
            assert (await agent.request("GET", "/api/v1/session", keep=False)).status_code == 401
            agent.cookies[SESSION_COOKIE] = new
            current = await agent.request("GET", "/api/v1/session")
            assert (
                current.status_code == 200
                and current.json()["session"]["id"] == winner.json()["session"]["id"]
            )
            sessions = (await agent.request("GET", "/api/v1/sessions")).json()["sessions"]
            assert [s["id"] for s in sessions] == [winner.json()["session"]["id"]]  # exactly one survives
            listed = (await agent.request("GET", "/api/v1/organizations")).json()["organizations"]
            assert [o["id"] for o in listed if o["selected"]] == [chosen]
