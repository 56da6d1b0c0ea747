"""Hot-path figures: session check, forward-auth and password login, on SQLite and PostgreSQL + Redis.

Starts `threshold serve` (one worker) per backend, drives it with wrk from loopback, and reports
requests/s and latency next to a bare-hello ceiling (/healthz on the same server) and the single-core
Argon2id rate. Not a test: it reports figures into bench/results/.

    .venv/bin/python bench/run.py [--duration 10] [--connections 64] [--backends sqlite,postgres+redis]

Needs wrk (Debian package `wrk`); the PostgreSQL + Redis backend needs both servers on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # the servers and databases come from the test suites' support

from tests.support import Backend, Deployment, RedisServer, free_port, make_deployment, spawn  # noqa: E402

RESULTS = ROOT / "results"
PASSWORD = "bench marks are not tests 2026"
# The scenarios hammer one account from one address: lift the throttles for them.
THROTTLES_LIFTED = {
    "THRESHOLD_RATE_LIMIT__LOGIN_PER_IP": "100000000",
    "THRESHOLD_RATE_LIMIT__LOGIN_PER_ACCOUNT_IP": "99",
    "THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP": "1000",
}


def save_results(name: str, figures: dict[str, Any], lines: list[str]) -> None:
    """bench/results/{name}-{stamp}.json (the figures) and .md (the lines), and the lines printed."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}-{stamp}.json").write_text(json.dumps(figures, indent=2) + "\n")
    (RESULTS / f"{name}-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _pin(cpus: str) -> list[str]:
    """On two or more cores the server under test gets core 0 and the load generator the others, so
    neither steals the other's time slices (and "one worker" means exactly one core)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", cpus]
    return []


SERVER_CPUS = "0"
CLIENT_CPUS = f"1-{max(1, (os.cpu_count() or 2) - 1)}"


def parse_wrk(output: str) -> dict[str, float]:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%?\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    ):
        match = re.search(pattern, output)
        if match:
            errors += sum(int(g) for g in match.groups())
    return {"rps": rate, "p50_ms": latency("50"), "p99_ms": latency("99"), "errors": errors}


def wrk(
    url: str,
    *,
    duration: int,
    connections: int,
    headers: dict[str, str],
    script: str | None = None,
    timeout: int = 10,
) -> dict[str, float]:
    command = [
        *_pin(CLIENT_CPUS),
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={timeout}s",
        "--latency",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", script]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    return parse_wrk(output)


def scenario(
    url: str,
    *,
    runs: int,
    duration: int,
    connections: int,
    headers: dict[str, str],
    script: str | None = None,
    timeout: int = 10,
    between: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """wrk's figures over `runs` runs after a 2 s warm-up. `between`, when given, is measured before the
    first run and after each (a ceiling that drifts with the machine, such as the hash rate on the
    server's core): each run's rate is then also given over the mean of the readings around it."""
    wrk(url, duration=2, connections=connections, headers=headers, script=script, timeout=timeout)  # warm-up
    readings = [between()] if between else []
    samples = []
    for _ in range(runs):
        samples.append(
            wrk(
                url,
                duration=duration,
                connections=connections,
                headers=headers,
                script=script,
                timeout=timeout,
            )
        )
        if between:
            readings.append(between())
    figures = summarize(samples)
    if between:
        ratios = [s["rps"] / ((readings[i] + readings[i + 1]) / 2) for i, s in enumerate(samples)]
        figures["ceiling_readings"] = [round(r, 1) for r in readings]
        figures["ratio_to_adjacent_ceiling_median"] = round(statistics.median(ratios), 3)
        figures["ratio_to_adjacent_ceiling_spread"] = round(max(ratios) - min(ratios), 3)
    return figures


def summarize(samples: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Median rate and its spread (max - min), median p50 and p99, errors summed, of wrk runs."""
    rates = [s["rps"] for s in samples]
    return {
        "rps_median": statistics.median(rates),
        "rps_spread": max(rates) - min(rates),
        "p50_ms": statistics.median(s["p50_ms"] for s in samples),
        "p99_ms": statistics.median(s["p99_ms"] for s in samples),
        "errors": sum(s["errors"] for s in samples),
        "rps_runs": [round(r, 1) for r in rates],
    }


def interpreter() -> str:
    """The Python the server runs on (the benchmark's own: servers are started with sys.executable)."""
    return f"CPython {platform.python_version()} ({os.path.realpath(sys.executable)})"


def argon2_rate_on_server_core(seconds: float = 2.0) -> float:
    """One-core Argon2id verifications per second, measured in a process pinned to the server's core
    (SERVER_CPUS), as the server's own hashing runs: the ceiling a pinned server's sign-ins are held to,
    read next to each sign-in run because this machine's rate drifts by 10-40 % within the hour."""
    code = f"import run; print(run.argon2_rate({seconds}))"
    found = subprocess.run(
        [*_pin(SERVER_CPUS), sys.executable, "-c", code],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(found.stdout)


def argon2_rate(seconds: float = 3.0) -> float:
    import argon2

    from threshold.settings import Argon2Settings

    params = Argon2Settings()
    hasher = argon2.PasswordHasher(
        time_cost=params.time_cost, memory_cost=params.memory_kib, parallelism=params.parallelism
    )
    stored = hasher.hash(PASSWORD)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        hasher.verify(stored, PASSWORD)
        count += 1
    return count / (time.perf_counter() - start)


REFRESH_LUA = """
-- Each thread keeps a pool of live refresh tokens: a request takes one, its answer gives the successor
-- back, so no token is ever presented twice (which would revoke its family as a theft).
local pool = {}
function init(args)
  local n = 0
  for line in io.lines(args[1]) do
    n = n + 1
    if n % 2 == id then pool[#pool + 1] = line end
  end
end
function setup(thread)
  threads = threads or 0
  thread:set("id", threads)
  threads = threads + 1
end
function request()
  local token = table.remove(pool)
  if token == nil then return wrk.format("GET", "/healthz") end
  return wrk.format("POST", "PATH", {["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "AUTH"}, "grant_type=refresh_token&refresh_token=" .. token)
end
function response(status, headers, body)
  local token = string.match(body, '"refresh_token":"([^"]+)"')
  if token then pool[#pool + 1] = token end
end
"""


def lua_post(path: Path, body: str, content_type: str, extra: dict[str, str] | None = None) -> str:
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(body)}",
        f'wrk.headers["Content-Type"] = "{content_type}"',
    ]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (extra or {}).items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def login_script(data: Path, email: str, device: str) -> str:
    """A wrk script signing `email` in as a returning browser (its device cookie sent)."""
    body = json.dumps({"email": email, "password": PASSWORD})
    return lua_post(data / "login.lua", body, "application/json", {"Cookie": device})


def client_credentials_script(env: dict[str, str], data: Path) -> str:
    """A wrk script asking for a client_credentials token as a new confidential client (Basic auth)."""
    client = cli_json(
        env, "clients", "create", "--name", "bench-svc", "--grant-type", "client_credentials", "--scope", "api:read"
    )  # fmt: skip
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    return lua_post(
        data / "cc.lua",
        "grant_type=client_credentials&scope=api%3Aread",
        "application/x-www-form-urlencoded",
        {"Authorization": f"Basic {basic}"},
    )


def cli_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "threshold", *args, "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def refresh_tokens(
    base: str, env: dict[str, str], cookie: str, count: int, *, id_token_alg: str = "RS256"
) -> tuple[list[str], str]:
    """`count` refresh-token families through the real code + PKCE flow; and the client's Basic header.
    The client's ID tokens are RS256 (OpenID Connect's default) unless `id_token_alg` says otherwise."""
    redirect = "http://127.0.0.1:9/cb"
    client = cli_json(
        env,
        "clients", "create", "--name", "bench-rp", "--first-party", "--redirect-uri", redirect,
        "--grant-type", "authorization_code", "--grant-type", "refresh_token",
        "--scope", "openid", "--scope", "offline_access", "--id-token-alg", id_token_alg,
    )  # fmt: skip
    basic = "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    tokens: list[str] = []
    with httpx.Client(base_url=base, headers={"Cookie": cookie}, timeout=30) as http:
        for _ in range(count):
            verifier = secrets.token_urlsafe(48)
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            params = {
                "client_id": client["client_id"], "redirect_uri": redirect, "response_type": "code",
                "scope": "openid offline_access", "state": secrets.token_urlsafe(8),
                "code_challenge": challenge, "code_challenge_method": "S256",
            }  # fmt: skip
            location = http.get("/oauth2/authorize", params=params).headers["location"]
            code = parse_qs(urlsplit(location).query)["code"][0]
            answer = http.post(
                "/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect,
                    "code_verifier": verifier,
                },
                headers={"Authorization": basic},
            )
            answer.raise_for_status()
            tokens.append(answer.json()["refresh_token"])
    return tokens, basic


def concurrently(*jobs: Any) -> list[Any]:
    with ThreadPoolExecutor(len(jobs)) as pool:
        return [f.result() for f in [pool.submit(job) for job in jobs]]


def login_under_load(base: str, login_script: str, cookie: str, args: argparse.Namespace) -> dict[str, Any]:
    """Password sign-ins (8 connections) while 8 more connections check a session every 20 ms each
    (about 400/s: the traffic of the applications behind the service goes on during a login burst)."""
    paced = Path(login_script).with_name("paced-session.lua")
    paced.write_text("function delay()\n  return 20\nend\n")

    def logins() -> dict[str, float]:
        return wrk(
            f"{base}/api/v1/login", duration=args.duration, connections=8, headers={}, script=login_script
        )

    def checks() -> dict[str, float]:
        return wrk(
            f"{base}/api/v1/session",
            duration=args.duration,
            connections=8,
            headers={"Cookie": cookie},
            script=str(paced),
        )

    logins()  # warm-up
    samples = [concurrently(logins, checks) for _ in range(args.runs)]
    rates = [s[0]["rps"] for s in samples]
    return {
        "rps_median": statistics.median(rates),
        "rps_spread": max(rates) - min(rates),
        "p50_ms": statistics.median(s[0]["p50_ms"] for s in samples),
        "p99_ms": statistics.median(s[0]["p99_ms"] for s in samples),
        "errors": sum(s[0]["errors"] + s[1]["errors"] for s in samples),
        "concurrent_session_checks_rps": statistics.median(s[1]["rps"] for s in samples),
        "concurrent_session_checks_p99_ms": statistics.median(s[1]["p99_ms"] for s in samples),
    }


@contextlib.contextmanager
def deployment(backend: Backend, **settings: str) -> Iterator[Deployment]:
    """A migrated deployment on `backend` in a directory of its own, the throttles lifted; its servers are
    stopped and its directory, PostgreSQL database and Redis keys removed afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="threshold-bench-") as work,
        make_deployment(Path(work), backend, tag="bench", **{**THROTTLES_LIFTED, **settings}) as made,
    ):
        yield made


def signed_up(base: str) -> tuple[str, str, str]:
    """A new account: its address, its session's cookie, and the cookie that recognises its browser
    (a returning browser sends it at sign-in, so no "new device" notice is sent)."""
    email = f"bench.{secrets.token_hex(3)}@example.com"
    response = httpx.post(f"{base}/api/v1/signup", json={"email": email, "password": PASSWORD})
    response.raise_for_status()
    return (
        email,
        cookie_of(response, "__Host-threshold_session"),
        cookie_of(response, "__Host-threshold_device"),
    )


def cookie_of(response: httpx.Response, name: str) -> str:
    """`name=value` of a cookie the response sets."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header.split(";", 1)[0]
    raise AssertionError(f"{name} not set by {response.url}")


def run_backend(backend: Backend, args: argparse.Namespace, ceiling: float) -> dict[str, Any]:
    with deployment(backend) as bench:
        server = bench.start(prefix=_pin(SERVER_CPUS))
        base, env, data = server.base_url, bench.env, str(bench.dir)
        email, cookie, device = signed_up(base)
        run = {"runs": args.runs, "duration": args.duration, "connections": args.connections}
        results: dict[str, Any] = {"/healthz (FastAPI route)": scenario(f"{base}/healthz", headers={}, **run)}
        results["session check"] = scenario(f"{base}/api/v1/session", headers={"Cookie": cookie}, **run)
        results["forward-auth"] = scenario(f"{base}/api/v1/forward-auth", headers={"Cookie": cookie}, **run)
        login = login_script(Path(data), email, device)
        results["password login"] = scenario(
            f"{base}/api/v1/login",
            headers={},
            script=login,
            between=argon2_rate_on_server_core,
            **{**run, "connections": 8},
        )
        results["password login (+ session checks)"] = login_under_load(base, login, cookie, args)
        token_script = client_credentials_script(env, Path(data))
        results["client_credentials token"] = scenario(
            f"{base}/oauth2/token", headers={}, script=token_script, **run
        )
        if backend == "postgres+redis":
            results["refresh rotation"] = refresh_rotation(base, env, cookie, data, args)
            results["refresh rotation (ES256 ID tokens)"] = refresh_rotation(
                base, env, cookie, data, args, id_token_alg="ES256"
            )
        for figures in results.values():
            figures["ratio_to_hello"] = round(figures["rps_median"] / ceiling, 3)
        return results


def group_cpu(pgid: int) -> float:
    """CPU seconds of the live processes of a process group (a server's master and its workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # state, ppid, pgrp, ... utime (11), stime (12)
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """The CPU the server's processes (process group `pgid`) and wrk (this process's children) use over
    the spans measured with `span()`; `add_to` puts the cores each kept busy and the server's CPU per
    request (at the median rate) into a scenario's figures."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.wall = self.server = self.wrk = 0.0

    @contextlib.contextmanager
    def span(self) -> Iterator[None]:
        wall, server, load = time.monotonic(), group_cpu(self.pgid), children_cpu()
        yield
        self.wall += time.monotonic() - wall
        self.server += group_cpu(self.pgid) - server
        self.wrk += children_cpu() - load

    def add_to(self, figures: dict[str, Any]) -> dict[str, Any]:
        figures["server_cores"] = round(self.server / self.wall, 2)
        figures["wrk_cores"] = round(self.wrk / self.wall, 2)
        figures["server_cpu_us"] = round(figures["server_cores"] / figures["rps_median"] * 1e6, 1)
        return figures


def with_cpu(pgid: int, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`measure()`'s figures, with the CPU the server and wrk used meanwhile (`CpuMeter`)."""
    meter = CpuMeter(pgid)
    with meter.span():
        figures = measure()
    return meter.add_to(figures)


WORKER_RUNS = {"1 on one core": (1, True), "1": (1, False), "2": (2, False)}
"""The configurations of `workers_scaling`: workers, and whether the server is pinned to one core."""


def workers_scaling(args: argparse.Namespace) -> dict[str, Any]:
    """`threshold serve --workers 2` against one worker on PostgreSQL + Redis (what a scaled-out
    deployment runs): two workers not pinned, one worker pinned to one core (so that "one worker" is one
    core's worth) and one worker not pinned (whose Argon2id threads already use the second core: a
    sign-in's hash is not on the event loop). Session check, sign-in, client_credentials and refresh rotation
    (RS256 ID tokens, the default); the ratio
    of the medians is what a second worker on a second core buys. wrk is pinned to the second core
    throughout, so it shares that core with the second worker: the cores the server and wrk kept busy,
    and the server's CPU per request, say whether the workers or the machine bound the second figure."""
    figures: dict[str, Any] = {}
    for label, (workers, pinned) in WORKER_RUNS.items():
        with deployment("postgres+redis") as bench:
            server = bench.start(workers=workers, prefix=_pin(SERVER_CPUS) if pinned else [])
            base, pgid = server.base_url, server.pid
            email, cookie, device = signed_up(base)
            data = Path(bench.dir)
            run = {"runs": args.runs, "duration": args.duration, "connections": args.connections}
            login = login_script(data, email, device)
            token_script = client_credentials_script(bench.env, data)
            figures[label] = {
                "session check": with_cpu(
                    pgid, partial(scenario, f"{base}/api/v1/session", headers={"Cookie": cookie}, **run)
                ),
                "password login": with_cpu(
                    pgid,
                    partial(
                        scenario,
                        f"{base}/api/v1/login",
                        headers={},
                        script=login,
                        **{**run, "connections": 16},
                    ),
                ),
                "client_credentials token": with_cpu(
                    pgid, partial(scenario, f"{base}/oauth2/token", headers={}, script=token_script, **run)
                ),
                "refresh rotation": refresh_rotation(base, bench.env, cookie, str(data), args, pgid=pgid),
            }
    figures["ratio"] = {
        name: round(figures["2"][name]["rps_median"] / figures["1"][name]["rps_median"], 2)
        for name in figures["1"]
    }
    figures["ratio_to_one_core"] = {
        name: round(figures["2"][name]["rps_median"] / figures["1 on one core"][name]["rps_median"], 2)
        for name in figures["1"]
    }
    return figures


def refresh_rotation(
    base: str,
    env: dict[str, str],
    cookie: str,
    data: str,
    args: argparse.Namespace,
    *,
    id_token_alg: str = "RS256",
    pgid: int | None = None,
) -> dict[str, Any]:
    """Every request presents a live refresh token and gets its successor (reuse would revoke). With
    `pgid` (the server's process group), also the cores the server and wrk kept busy during the measured
    runs only (not while the families are minted) and the server's CPU per request, as `with_cpu`."""
    connections = args.connections
    # enough families for the warm-up and every run: each run needs 2 x connections live tokens
    samples = []
    meter = CpuMeter(pgid) if pgid else None
    for index in range(args.runs + 1):
        tokens, basic = refresh_tokens(base, env, cookie, 2 * connections, id_token_alg=id_token_alg)
        pool = Path(data) / f"refresh-{index}.txt"
        pool.write_text("\n".join(tokens) + "\n")
        script = Path(data) / f"refresh-{index}.lua"
        script.write_text(REFRESH_LUA.replace("PATH", "/oauth2/token").replace("AUTH", basic))
        command = [
            *_pin(CLIENT_CPUS), "wrk", "-t2", f"-c{connections}", f"-d{2 if index == 0 else args.duration}s", "--timeout=10s",
            "--latency", "-s", str(script), f"{base}/oauth2/token", "--", str(pool),
        ]  # fmt: skip
        # each of wrk's two threads takes every other token of the pool file (by the id `setup` gave it)
        with meter.span() if meter and index else contextlib.nullcontext():  # the warm-up is not counted
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        if index:
            samples.append(parse_wrk(output))
    rates = [s["rps"] for s in samples]
    figures: dict[str, Any] = {
        "rps_median": statistics.median(rates),
        "rps_spread": max(rates) - min(rates),
        "p50_ms": statistics.median(s["p50_ms"] for s in samples),
        "p99_ms": statistics.median(s["p99_ms"] for s in samples),
        "errors": sum(s["errors"] for s in samples),
    }
    return meter.add_to(figures) if meter else figures


def hello_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """A bare Starlette endpoint on the same uvicorn settings as `threshold serve` (uvloop, httptools)."""
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="threshold-bench-hello-"))
    process = spawn(
        [
            *_pin(SERVER_CPUS),
            sys.executable,
            "-m",
            "uvicorn",
            "hello_app:app",
            "--app-dir",
            str(ROOT),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-server-header",
        ],
        log=work / "hello.log",
    )
    try:
        process.wait_until_ready(f"http://127.0.0.1:{port}/hello", what="the hello app")
        return scenario(
            f"http://127.0.0.1:{port}/hello",
            headers={},
            runs=args.runs,
            duration=args.duration,
            connections=args.connections,
        )
    finally:
        process.stop()
        shutil.rmtree(work, ignore_errors=True)


def jose_rates(seconds: float = 1.5) -> dict[str, Any]:
    """Raw joserfc sign and decode+verify per second, and TokenVerifier.verify against the raw decode."""
    from joserfc import jwt
    from joserfc.jwk import ECKey, OKPKey

    from threshold.client import TokenVerifier

    def rate(call: Any, duration: float = seconds) -> float:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < duration:
            call()
            count += 1
        return count / (time.perf_counter() - start)

    figures: dict[str, Any] = {}
    for alg, key in (("Ed25519", OKPKey.generate_key("Ed25519")), ("ES256", ECKey.generate_key("P-256"))):
        key_dict = key.as_dict(private=False)
        key_dict.update(kid=f"{alg}-bench", alg=alg, use="sig")
        now = int(time.time())
        claims = {
            "iss": "https://auth.bench", "sub": "user-123", "aud": "https://api.bench", "iat": now, "nbf": now,
            "exp": now + 300, "jti": "j", "client_id": "c", "scope": "api:read",
        }  # fmt: skip
        header = {"alg": alg, "kid": f"{alg}-bench", "typ": "at+jwt"}
        token = jwt.encode(header, claims, key, algorithms=[alg])
        verifier = TokenVerifier(
            jwks={"keys": [key_dict]},
            issuer="https://auth.bench",
            audience="https://api.bench",
            algorithms=[alg],
        )
        verifier.verify(token)
        sign = rate(lambda: jwt.encode(header, claims, key, algorithms=[alg]))  # noqa: B023
        # raw and ours interleaved in short rounds, medians: a noisy neighbour hits both alike
        raws, ourses = [], []
        for _ in range(7):
            raws.append(rate(lambda: jwt.decode(token, key, algorithms=[alg]), 0.25))  # noqa: B023
            ourses.append(rate(lambda: verifier.verify(token), 0.25))  # noqa: B023
        raw, ours = statistics.median(raws), statistics.median(ourses)
        figures[alg] = {
            "joserfc_sign_per_s": round(sign),
            "joserfc_decode_verify_per_s": round(raw),
            "token_verifier_verify_per_s": round(ours),
            "verify_vs_raw": round(ours / raw, 3),
        }
    return figures


def million_sessions(args: argparse.Namespace) -> dict[str, Any]:
    """Session-check p99 with 10,000 and then 1,000,000 sessions in Redis (an instance of our own, so its
    memory is ours to measure), checks spread over 100,000 random sessions, the process cache off."""
    import asyncpg
    import redis

    from threshold.adapters.redis.stores import RedisSessionStore
    from threshold.core.models import Aal, Amr, SessionRecord
    from threshold.core.secrets import digest, new_id, new_token

    redis_dir = Path(tempfile.mkdtemp(prefix="threshold-bench-redis-"))
    own_redis = RedisServer(shutil.which("redis-server") or "redis-server", redis_dir, durable=False)
    agents = [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ]  # fmt: skip
    sample: list[str] = []
    redis_port = own_redis.port
    sync = redis.Redis(port=redis_port)
    stack = contextlib.ExitStack()
    try:
        own_redis.start()
        bench = stack.enter_context(
            deployment(
                "postgres",
                THRESHOLD_REDIS_URL=own_redis.url,
                THRESHOLD_REDIS_KEY_PREFIX="threshold:",
                THRESHOLD_SESSION__CACHE_ENTRIES="0",  # every check reads Redis: the worst case
            )
        )
        server = bench.start(prefix=_pin(SERVER_CPUS))
        base, env, data = server.base_url, bench.env, str(bench.dir)

        async def fill(total: int, start: int) -> None:
            """Users (two sessions each, as a laptop and a phone) in PostgreSQL, their sessions in Redis."""
            conn = await asyncpg.connect(env["THRESHOLD_DATABASE_URL"])
            client = redis.asyncio.Redis(port=redis_port, decode_responses=True)
            store = RedisSessionStore(client, "threshold:")
            now = time.time()
            batch = 20_000
            for offset in range(start, total, batch):
                users = [new_id() for _ in range(batch // 2)]
                await conn.copy_records_to_table(
                    "users",
                    records=[(u, f"{u}@example.com", f"{u}@example.com", True, False, now, False) for u in users],
                    columns=["id", "email", "email_normalized", "email_verified", "disabled", "created_at", "mfa_required"],
                )  # fmt: skip
                records = []
                for index in range(batch):
                    token = new_token()
                    agent = agents[index % len(agents)]
                    records.append(
                        SessionRecord(
                            digest=digest(token),
                            public_id=new_id(),
                            user_id=users[index // 2],
                            created_at=now,
                            last_seen_at=now,
                            idle_expires_at=now + 7 * 86400,
                            absolute_expires_at=now + 30 * 86400,
                            aal=Aal.AAL1,
                            amr=(Amr.PASSWORD,),
                            ip=f"203.0.113.{index % 250}",
                            user_agent=agent,
                            device_label="Chrome on macOS",
                            auth_time=now,
                        )
                    )
                    if len(sample) < 100_000 and (offset + index) % max(1, total // 100_000) == 0:
                        sample.append(token)
                await store.create_many(records)
            await conn.execute("ANALYZE users")
            await conn.close()
            await client.aclose()

        def used() -> int:
            return int(sync.info("memory")["used_memory"])

        def measure(label: str) -> dict[str, Any]:
            pool = Path(data) / "tokens.txt"
            pool.write_text("\n".join(sample) + "\n")
            script = Path(data) / "random-session.lua"
            script.write_text(
                "local tokens = {}\n"
                f'for line in io.lines("{pool}") do tokens[#tokens + 1] = line end\n'
                "function request()\n"
                "  local t = tokens[math.random(#tokens)]\n"
                '  return wrk.format("GET", "/api/v1/session", {["Cookie"] = "__Host-threshold_session=" .. t})\n'
                "end\n"
            )
            figures = scenario(
                f"{base}/api/v1/session",
                headers={},
                script=str(script),
                runs=args.runs,
                duration=args.duration,
                connections=args.connections,
            )
            figures["sessions"] = label
            return figures

        before = used()
        asyncio.run(fill(10_000, 0))
        small = measure("10,000")
        asyncio.run(fill(args.million, 10_000))
        large = measure(f"{args.million:,}")
        per_session = (used() - before) / args.million
        return {
            "10k": small,
            "1M": large,
            "p99_ratio_1M_to_10k": round(large["p99_ms"] / small["p99_ms"], 3),
            "redis_bytes_per_session": round(per_session, 1),
            "sessions_per_user": 2,
            "distinct_user_agents": len(agents),
        }
    finally:
        stack.close()
        own_redis.kill()
        sync.close()
        shutil.rmtree(redis_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,postgres,postgres+redis")
    parser.add_argument("--skip-million", action="store_true", help="skip the 1,000,000-session Redis run")
    parser.add_argument("--million", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--only-million", action="store_true", help="only the large-Redis run")
    parser.add_argument("--skip-workers", action="store_true", help="skip the one-worker / two-worker run")
    parser.add_argument("--only-workers", action="store_true", help="only the one-worker / two-worker run")
    parser.add_argument(
        "--only-refresh", action="store_true", help="only refresh rotation (PostgreSQL + Redis)"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    if args.only_million:
        print(json.dumps(million_sessions(args), indent=2))
        return
    if args.only_refresh:
        with deployment("postgres+redis") as bench:
            server = bench.start(prefix=_pin(SERVER_CPUS))
            _, cookie, _ = signed_up(server.base_url)
            found = {
                alg: refresh_rotation(
                    server.base_url, bench.env, cookie, str(bench.dir), args, id_token_alg=alg
                )
                for alg in ("RS256", "ES256")
            }
        print(json.dumps(found, indent=2))
        return
    if args.only_workers:
        print(json.dumps(workers_scaling(args), indent=2))
        return
    hello = hello_ceiling(args)
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {interpreter()}",
        "load_average_at_start": os.getloadavg()[0],
        "settings": f"{args.runs} runs x {args.duration} s after a 2 s warm-up, {args.connections} connections",
        "argon2id_verifications_per_s_one_core": round(argon2_rate(), 1),
        "bare_starlette_hello": hello,
        "jose": jose_rates(),
        "backends": {},
    }
    for backend in args.backends.split(","):
        report["backends"][backend] = run_backend(backend, args, hello["rps_median"])
    if not args.skip_workers:
        report["workers"] = workers_scaling(args)
    if not args.skip_million:
        report["million_sessions"] = million_sessions(args)
    report["load_average_at_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2))
    table = render(report)
    (RESULTS / f"{stamp}.md").write_text(table + "\n")
    (RESULTS / "latest.md").write_text(table + "\n")
    print(table)


def render(report: dict[str, Any]) -> str:
    hello = report["bare_starlette_hello"]
    argon2 = report["argon2id_verifications_per_s_one_core"]
    lines = [
        f"Machine: {report['machine']}; {report['settings']}; load average {report['load_average_at_start']:.1f} "
        f"at start, {report['load_average_at_end']:.1f} at end.",
        f"Ceilings: bare Starlette hello {hello['rps_median']:.0f} req/s (p99 {hello['p99_ms']:.1f} ms); "
        f"Argon2id (19 MiB, t=2, p=1) one core {argon2}/s.",
        "",
        "| backend | scenario | req/s (median) | spread | p50 ms | p99 ms | errors | vs hello |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend, results in report["backends"].items():
        for name, f in results.items():
            lines.append(
                f"| {backend} | {name} | {f['rps_median']:.0f} | {f['rps_spread']:.0f} | {f['p50_ms']:.2f} | "
                f"{f['p99_ms']:.2f} | {f['errors']} | {f['ratio_to_hello']:.2f} |"
            )
            if name == "password login":
                lines[-1] = lines[-1][:-1] + (
                    f"; vs Argon2id {f['rps_median'] / argon2:.2f}; vs Argon2id on the server's core around "
                    f"each run {f['ratio_to_adjacent_ceiling_median']:.2f} "
                    f"± {f['ratio_to_adjacent_ceiling_spread']:.2f} |"
                )
            if "concurrent_session_checks_p99_ms" in f:
                lines[-1] = lines[-1][:-1] + (
                    f"; vs Argon2id {f['rps_median'] / argon2:.2f}; session checks alongside: "
                    f"{f['concurrent_session_checks_rps']:.0f}/s, p99 {f['concurrent_session_checks_p99_ms']:.1f} ms |"
                )
    lines += ["", "| JOSE (in-process) | sign/s | decode+verify/s | TokenVerifier.verify/s | verify vs raw |"]
    lines += ["| --- | ---: | ---: | ---: | ---: |"]
    for alg, f in report["jose"].items():
        lines.append(
            f"| {alg} | {f['joserfc_sign_per_s']} | {f['joserfc_decode_verify_per_s']} | "
            f"{f['token_verifier_verify_per_s']} | {f['verify_vs_raw']:.2f} |"
        )
    workers = report.get("workers")
    if workers:
        lines += [
            "",
            "| postgres+redis (wrk on core 1) | 1 worker on one core req/s | 1 worker, not pinned | "
            "2 workers, not pinned | 2 / 1 on one core | 2 / 1 not pinned | p99 ms (1c / 1 / 2) "
            "| server cores (1c / 1 / 2) | wrk cores (1c / 1 / 2) | server CPU us per request (1c / 1 / 2) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, ratio in workers["ratio"].items():
            runs = [workers[label][name] for label in WORKER_RUNS if label in workers]
            if len(runs) < 3:  # a report from before the pinned run
                continue

            def each(key: str, runs: list[dict[str, Any]] = runs) -> str:
                return " / ".join(str(run[key]) for run in runs)

            lines.append(
                f"| {name} | {runs[0]['rps_median']:.0f} | {runs[1]['rps_median']:.0f} | "
                f"{runs[2]['rps_median']:.0f} | {workers['ratio_to_one_core'][name]:.2f} | {ratio:.2f} | "
                f"{each('p99_ms')} | {each('server_cores')} | {each('wrk_cores')} | {each('server_cpu_us')} |"
            )
    million = report.get("million_sessions")
    if million:
        lines += [
            "",
            "| Redis sessions (cache off) | req/s | p50 ms | p99 ms | errors |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for key in ("10k", "1M"):
            f = million[key]
            lines.append(
                f"| {f['sessions']} | {f['rps_median']:.0f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['errors']} |"
            )
        lines.append(
            f"\np99 1M / 10k: {million['p99_ratio_1M_to_10k']:.2f}; Redis memory "
            f"{million['redis_bytes_per_session']:.0f} bytes per session ({million['sessions_per_user']} sessions "
            f"per user, {million['distinct_user_agents']} distinct user agents)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
