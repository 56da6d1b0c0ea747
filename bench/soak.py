"""Soak: `threshold serve` (one worker) under steady mixed traffic for minutes, watching errors and memory.

Not a test and not in CI (`make soak`). Starts the server like bench/run.py (PostgreSQL + Redis by default,
`--backend sqlite` too), then virtual users, each an asyncio task with its own httpx client and its own
account, loop over weighted actions with a think time between them (endurance, not peak):

    session          GET /api/v1/session                                   200
    forward-auth     GET /api/v1/forward-auth                              200
    login            POST /api/v1/login, right password (new session)      200
    login-wrong      POST /api/v1/login, wrong password                    401
    logout           POST /api/v1/logout (CSRF), then the old cookie       204, then 401
    revoke           a second browser signs in; the first lists its
                     sessions and DELETEs the second's; second checks      200, 204, 401
    signup           a new account; checks its session; half log out,
                     half walk away (the session stays, as in real life)   201, 200 (204)
    client-creds     POST /oauth2/token grant_type=client_credentials     200
    code-flow        authorize (303) + code exchange + two refresh
                     rotations + userinfo                                  303, 200, 200, 200, 200

Every CSRF fetch (GET /api/v1/csrf, 200) is counted as its own kind. Browser cookies are `__Host-`
(Secure), so, as in tests/blackbox/conftest.py `Browser`, each browser keeps its cookies itself and
sends them in `Cookie:`, with `Origin` and `X-CSRF-Token` on unsafe methods.

Rate limits: lifted like bench/run.py (login per address 1e8, sign-ups per address 1e8 per hour); the
per account-and-address failure limit stays at its maximum of 99 and a correct sign-in resets it, and
each user's wrong passwords are interleaved with right ones, so a 429 never legitimately happens here:
any 429 counts as an error, like any 5xx, transport error or other unexpected status.

Memory: VmRSS of the server process every `--sample-every` seconds. Baseline is the median of the
samples in minute 1-2 (after warm-up), end is the median of the last minute (for runs shorter than
10 minutes: the 10-20 % and last 10 % of the run). PASS: no errors, RSS growth under 10 %, server alive.

    .venv/bin/python bench/soak.py [--minutes 10] [--backend postgres+redis|sqlite] [--users 24]
        [--think 0.25] [--only session,login,...]

Writes bench/results/soak-<stamp>.json and soak-latest.md; exits 1 on FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from run import PASSWORD, RESULTS, SERVER_CPUS, _pin, deployment

SESSION_COOKIE = "__Host-threshold_session"
CSRF_COOKIE = "__Host-threshold_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
REDIRECT_URI = "https://rp.example/callback"
WRONG_PASSWORD = "not the password at all 2026"
GROWTH_LIMIT_PCT = 10.0


# --- bookkeeping -----------------------------------------------------------------------------------


@dataclass
class Stats:
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    unexpected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    total: int = 0

    def record(self, kind: str, outcome: str, *, ok: bool, detail: str = "") -> None:
        self.by_kind.setdefault(kind, Counter())[outcome] += 1
        self.total += 1
        if not ok:
            self.unexpected[f"{kind} {outcome}"] += 1
            if len(self.examples) < 30:
                self.examples.append(f"{time.strftime('%H:%M:%S')} {kind} {outcome}: {detail[:300]}")

    @property
    def errors(self) -> int:
        return sum(self.unexpected.values())


@dataclass
class Context:
    base: str
    stats: Stats
    client_id: str
    client_secret: str
    rp_id: str
    rp_secret: str


class Failed(Exception):
    """A step answered something unexpected (already counted): the action stops there."""


# --- a browser over plain http (cookies carried by hand, as tests/blackbox/conftest.py Browser) ----


@dataclass
class Browser:
    http: httpx.AsyncClient
    ctx: Context
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def session(self) -> str | None:
        return self.cookies.get(SESSION_COOKIE)

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        expect: int,
        *,
        json: Any = None,
        cookies: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        method = method.upper()
        sent = dict(self.cookies if cookies is None else cookies)
        headers = {"User-Agent": USER_AGENT}
        if method not in SAFE_METHODS:
            headers["Origin"] = self.ctx.base
            if CSRF_COOKIE in sent:
                headers["X-CSRF-Token"] = sent[CSRF_COOKIE]
        if sent:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in sent.items())
        try:
            response = await self.http.request(method, self.ctx.base + path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            self.ctx.stats.record(kind, "transport", ok=False, detail=repr(exc))
            raise Failed from exc
        finally:
            self.http.cookies.clear()  # only this object's cookies are ever sent
        if cookies is None:
            self._absorb(response)
        return check(self.ctx, kind, response, expect)

    def _absorb(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            first, *attributes = [part.strip() for part in header.split(";")]
            name, _, value = first.partition("=")
            value = value.strip().strip('"')
            expired = any(a.lower().replace(" ", "") == "max-age=0" for a in attributes)
            if not value or expired:
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value

    async def csrf(self) -> None:
        await self.call("csrf", "GET", "/api/v1/csrf", 200)

    async def login(self, email: str, password: str = PASSWORD, *, expect: int = 200) -> httpx.Response:
        await self.csrf()
        kind = "login" if expect == 200 else "login-wrong"
        return await self.call(
            kind, "POST", "/api/v1/login", expect, json={"email": email, "password": password}
        )

    async def signup(self, email: str) -> httpx.Response:
        await self.csrf()
        return await self.call(
            "signup", "POST", "/api/v1/signup", 201, json={"email": email, "password": PASSWORD}
        )


def check(ctx: Context, kind: str, response: httpx.Response, expect: int) -> httpx.Response:
    ok = response.status_code == expect
    ctx.stats.record(kind, str(response.status_code), ok=ok, detail=response.text)
    if not ok:
        raise Failed
    return response


# --- actions ---------------------------------------------------------------------------------------


@dataclass
class User:
    email: str
    main: Browser
    rng: random.Random


async def act_session(user: User) -> None:
    await user.main.call("session", "GET", "/api/v1/session", 200)


async def act_forward_auth(user: User) -> None:
    await user.main.call("forward-auth", "GET", "/api/v1/forward-auth", 200)


async def act_login(user: User) -> None:
    await user.main.login(user.email)  # replaces (ends) the session this browser had


async def act_login_wrong(user: User) -> None:
    other = Browser(user.main.http, user.main.ctx)
    await other.login(user.email, WRONG_PASSWORD, expect=401)


async def act_logout(user: User) -> None:
    old = dict(user.main.cookies)
    await user.main.call("logout", "POST", "/api/v1/logout", 204)
    await user.main.call("session-after-logout", "GET", "/api/v1/session", 401, cookies=old)
    await user.main.login(user.email)


async def act_revoke(user: User) -> None:
    other = Browser(user.main.http, user.main.ctx)
    session_id = (await other.login(user.email)).json()["session"]["id"]
    await other.call("session", "GET", "/api/v1/session", 200)  # into the server's session cache
    listed = (await user.main.call("sessions-list", "GET", "/api/v1/sessions", 200)).json()["sessions"]
    if not any(s["id"] == session_id for s in listed):
        user.main.ctx.stats.record("sessions-list", "missing", ok=False, detail=session_id)
        raise Failed
    await user.main.call("revoke", "DELETE", f"/api/v1/sessions/{session_id}", 204)
    await other.call("session-after-revoke", "GET", "/api/v1/session", 401)


async def act_signup(user: User) -> None:
    newcomer = Browser(user.main.http, user.main.ctx)
    await newcomer.signup(f"soak.{secrets.token_hex(6)}@example.com")
    await newcomer.call("session", "GET", "/api/v1/session", 200)
    if user.rng.random() < 0.5:
        await newcomer.call("logout", "POST", "/api/v1/logout", 204)
    # else: the browser goes away, its session stays until it expires


async def token_call(
    user: User, kind: str, form: dict[str, str], client: tuple[str, str], expect: int = 200
) -> dict[str, Any]:
    ctx = user.main.ctx
    try:
        response = await user.main.http.post(ctx.base + "/oauth2/token", data=form, auth=client)
    except httpx.HTTPError as exc:
        ctx.stats.record(kind, "transport", ok=False, detail=repr(exc))
        raise Failed from exc
    body: dict[str, Any] = check(ctx, kind, response, expect).json()
    return body


async def act_client_credentials(user: User) -> None:
    ctx = user.main.ctx
    form = {"grant_type": "client_credentials", "scope": "api:read"}
    await token_call(user, "client-creds", form, (ctx.client_id, ctx.client_secret))


async def act_code_flow(user: User) -> None:
    ctx, main = user.main.ctx, user.main
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "client_id": ctx.rp_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email offline_access",
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = await main.call("authorize", "GET", "/oauth2/authorize?" + urlencode(params), 303)
    returned = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    if returned.get("state") != params["state"] or "code" not in returned:
        ctx.stats.record("authorize", "bad-redirect", ok=False, detail=response.headers["location"])
        raise Failed
    rp = (ctx.rp_id, ctx.rp_secret)
    form = {
        "grant_type": "authorization_code",
        "code": returned["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    tokens = await token_call(user, "code-exchange", form, rp)
    for _ in range(2):
        tokens = await token_call(
            user, "refresh", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, rp
        )
    try:
        info = await main.http.get(
            ctx.base + "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
    except httpx.HTTPError as exc:
        ctx.stats.record("userinfo", "transport", ok=False, detail=repr(exc))
        raise Failed from exc
    check(ctx, "userinfo", info, 200)


Action = Callable[[User], Awaitable[None]]
ACTIONS: dict[str, tuple[Action, int]] = {
    "session": (act_session, 30),
    "forward-auth": (act_forward_auth, 20),
    "client-creds": (act_client_credentials, 12),
    "login": (act_login, 6),
    "login-wrong": (act_login_wrong, 4),
    "logout": (act_logout, 4),
    "code-flow": (act_code_flow, 4),
    "revoke": (act_revoke, 3),
    "signup": (act_signup, 3),
}


async def virtual_user(number: int, ctx: Context, deadline: float, think: float, only: list[str]) -> None:
    rng = random.Random(number)
    names = [n for n in ACTIONS if n in only]
    weights = [ACTIONS[n][1] for n in names]
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as http:
        user = User(f"soak.vu{number}.{secrets.token_hex(4)}@example.com", Browser(http, ctx), rng)
        await asyncio.sleep(rng.uniform(0, think * 4))  # stagger the start
        try:
            await user.main.signup(user.email)
        except Failed:
            return
        while time.monotonic() < deadline:
            try:
                if user.main.session is None:
                    await user.main.login(user.email)
                await ACTIONS[rng.choices(names, weights)[0]][0](user)
            except Failed:
                pass
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think)


# --- memory sampling and the run -------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def sampler(
    pid: int, stats: Stats, start: float, deadline: float, every: float, samples: list[dict[str, Any]]
) -> None:
    last_print = -1e9
    while True:
        now = time.monotonic()
        try:
            rss = rss_kib(pid)
        except (OSError, RuntimeError):
            stats.record("server", "gone", ok=False, detail=f"pid {pid} has no /proc entry")
            return
        sample = {
            "t": round(now - start, 1),
            "rss_mib": round(rss / 1024, 1),
            "requests": stats.total,
            "errors": stats.errors,
        }
        samples.append(sample)
        if now - last_print >= 30:
            last_print = now
            rate = stats.total / max(now - start, 1e-9)
            print(
                f"[{sample['t']:7.1f}s] rss {sample['rss_mib']:7.1f} MiB  requests {stats.total}"
                f" ({rate:.0f}/s)  errors {stats.errors}",
                flush=True,
            )
        if now >= deadline:
            return
        await asyncio.sleep(min(every, max(deadline - now, 0.1)))


async def drive(pid: int, ctx: Context, args: argparse.Namespace) -> list[dict[str, Any]]:
    start = time.monotonic()
    deadline = start + args.minutes * 60
    samples: list[dict[str, Any]] = []
    only = args.only.split(",") if args.only else list(ACTIONS)
    users = [asyncio.create_task(virtual_user(n, ctx, deadline, args.think, only)) for n in range(args.users)]
    await sampler(pid, ctx.stats, start, deadline, args.sample_every, samples)
    await asyncio.gather(*users)
    samples.append({**samples[-1], "t": round(time.monotonic() - start, 1), "requests": ctx.stats.total})
    return samples


def create_client(env: dict[str, str], *args: str) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "threshold", "clients", "create", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    body = json.loads(result.stdout)
    return body["client_id"], body["client_secret"]


def code_under_test(env: dict[str, str]) -> dict[str, Any]:
    """The `threshold` the server imports (PYTHONPATH may point at another checkout): commit and edits."""
    probe = "import pathlib, threshold; print(pathlib.Path(threshold.__file__).resolve().parent)"
    package = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", package, *args], capture_output=True, text=True, timeout=60)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "package": package,
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", ".").splitlines(),
    }


def window_median(samples: list[dict[str, Any]], lo: float, hi: float) -> float:
    values = [s["rss_mib"] for s in samples if lo <= s["t"] < hi]
    return float(statistics.median(values)) if values else float("nan")


def summarize(samples: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    tail = min(60.0, seconds / 10)
    warm = (min(60.0, seconds / 10), min(120.0, seconds / 5))
    baseline = window_median(samples, *warm)
    end = window_median(samples, seconds - tail, seconds + 60)
    per_minute = [
        {
            "minute": m + 1,
            "rss_mib_median": window_median(samples, m * 60, (m + 1) * 60),
            "rss_mib_max": max((s["rss_mib"] for s in samples if m * 60 <= s["t"] < (m + 1) * 60), default=0),
        }
        for m in range(int(-(-seconds // 60)))
    ]
    return {
        "first_sample_mib": samples[0]["rss_mib"],
        "baseline_window_s": list(warm),
        "baseline_mib": baseline,
        "end_window_s": [seconds - tail, seconds],
        "end_mib": end,
        "min_mib": min(s["rss_mib"] for s in samples),
        "max_mib": max(s["rss_mib"] for s in samples),
        "growth_pct": round((end - baseline) / baseline * 100, 2),
        "per_minute": per_minute,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    # many users from one address: lift the throttles (as bench/run.py); see the module docstring
    with deployment(args.backend, THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP="100000000") as soak:
        code = code_under_test(soak.env)
        if code["uncommitted"]:
            uncommitted = code["uncommitted"]
            print(f"soak: testing {code['package']} WITH UNCOMMITTED CHANGES: {uncommitted}", flush=True)
        server = soak.start(prefix=_pin(SERVER_CPUS))
        base, env = server.base_url, soak.env
        client = create_client(
            env, "--name", "soak", "--grant-type", "client_credentials", "--scope", "api:read"
        )
        rp = create_client(
            env,
            *("--name", "soak-rp", "--redirect-uri", REDIRECT_URI, "--first-party"),
            *("--grant-type", "authorization_code", "--grant-type", "refresh_token"),
            *("--scope", "openid", "--scope", "email", "--scope", "offline_access"),
        )
        ctx = Context(base, Stats(), *client, *rp)
        print(
            f"soak: {args.backend}, pid {server.pid}, {args.users} users, think {args.think}s, "
            f"{args.minutes} min",
            flush=True,
        )
        samples = asyncio.run(drive(server.pid, ctx, args))
        alive = server.running()
        seconds = args.minutes * 60
        return {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "code": code,
            "backend": args.backend,
            "minutes": args.minutes,
            "users": args.users,
            "think_s": args.think,
            "actions": args.only or ",".join(ACTIONS),
            "server_alive_at_end": alive,
            "requests_total": ctx.stats.total,
            "requests_per_s": round(ctx.stats.total / seconds, 1),
            "requests": {k: dict(sorted(v.items())) for k, v in sorted(ctx.stats.by_kind.items())},
            "errors_total": ctx.stats.errors,
            "errors": dict(ctx.stats.unexpected),
            "error_examples": ctx.stats.examples,
            "rss": summarize(samples, seconds),
            "samples": samples,
        }


def verdict(report: dict[str, Any]) -> list[str]:
    reasons = []
    if report["errors_total"]:
        reasons.append(f"{report['errors_total']} errors: {report['errors']}")
    growth = report["rss"]["growth_pct"]
    if not growth < GROWTH_LIMIT_PCT:  # also catches NaN
        reasons.append(f"RSS grew {growth}% (limit {GROWTH_LIMIT_PCT}%)")
    if not report["server_alive_at_end"]:
        reasons.append("the server exited during the run")
    return reasons


def markdown(report: dict[str, Any]) -> str:
    rss = report["rss"]
    lines = [
        f"# Soak {report['when']}: {report['verdict']}",
        "",
        f"Machine: {report['machine']}; backend {report['backend']}; {report['minutes']} min; "
        f"{report['users']} virtual users, think {report['think_s']} s; actions {report['actions']}.",
        "",
        f"Code: {report['code']['package']} at {report['code']['commit']}"
        + (
            f", uncommitted: {', '.join(report['code']['uncommitted'])}"
            if report["code"]["uncommitted"]
            else ""
        )
        + ".",
        "",
        f"Requests: {report['requests_total']} ({report['requests_per_s']}/s); "
        f"errors: {report['errors_total']}.",
        "",
        f"RSS: first sample {rss['first_sample_mib']} MiB; baseline (median "
        f"{rss['baseline_window_s'][0]:.0f}-{rss['baseline_window_s'][1]:.0f} s) {rss['baseline_mib']} MiB; "
        f"end (median of the last {rss['end_window_s'][1] - rss['end_window_s'][0]:.0f} s) "
        f"{rss['end_mib']} MiB; growth {rss['growth_pct']} % (limit {GROWTH_LIMIT_PCT} %); "
        f"min {rss['min_mib']}, max {rss['max_mib']} MiB.",
        "",
    ]
    if report["reasons"]:
        lines += ["FAIL because:", "", *[f"- {r}" for r in report["reasons"]], ""]
    lines += ["| kind | responses by status |", "| --- | --- |"]
    for kind, counts in report["requests"].items():
        lines.append(f"| {kind} | {', '.join(f'{s}: {n}' for s, n in counts.items())} |")
    lines += ["", "| minute | RSS median MiB | RSS max MiB |", "| ---: | ---: | ---: |"]
    for row in rss["per_minute"]:
        lines.append(f"| {row['minute']} | {row['rss_mib_median']} | {row['rss_mib_max']} |")
    if report["error_examples"]:
        lines += ["", "First unexpected answers:", "", *[f"    {e}" for e in report["error_examples"]]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--backend", choices=["postgres+redis", "sqlite"], default="postgres+redis")
    parser.add_argument("--users", type=int, default=24, help="concurrent virtual users")
    parser.add_argument("--think", type=float, default=0.25, help="mean pause between a user's actions (s)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="RSS sampling period (s)")
    parser.add_argument(
        "--only", default="", help=f"comma list of actions (default all: {','.join(ACTIONS)})"
    )
    args = parser.parse_args()
    unknown = set(args.only.split(",")) - set(ACTIONS) if args.only else set()
    if unknown:
        parser.error(f"unknown actions: {sorted(unknown)}")
    report = run(args)
    report["reasons"] = verdict(report)
    report["verdict"] = "FAIL" if report["reasons"] else "PASS"
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"soak-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (RESULTS / "soak-latest.md").write_text(text)
    print(text)
    sys.exit(1 if report["reasons"] else 0)


if __name__ == "__main__":
    main()
