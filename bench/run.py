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
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
PASSWORD = "bench marks are not tests 2026"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    url: str, *, duration: int, connections: int, headers: dict[str, str], script: str | None = None
) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
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
) -> dict[str, Any]:
    wrk(url, duration=2, connections=connections, headers=headers, script=script)  # warm-up
    samples = [
        wrk(url, duration=duration, connections=connections, headers=headers, script=script)
        for _ in range(runs)
    ]
    rates = [s["rps"] for s in samples]
    return {
        "rps_median": statistics.median(rates),
        "rps_spread": max(rates) - min(rates),
        "p50_ms": statistics.median(s["p50_ms"] for s in samples),
        "p99_ms": statistics.median(s["p99_ms"] for s in samples),
        "errors": sum(s["errors"] for s in samples),
    }


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


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    cli = [sys.executable, "-m", "threshold"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    process = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def create_database() -> str:
    import asyncpg

    name = f"threshold_bench_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="threshold-bench-")
    env = {
        **os.environ,
        "THRESHOLD_DATA_DIR": data,
        "THRESHOLD_ISSUER": base,
        "THRESHOLD_LOG_LEVEL": "warning",
        # the login scenario hammers one account from one address: lift the throttles for it
        "THRESHOLD_RATE_LIMIT__LOGIN_PER_IP": "100000000",
        "THRESHOLD_RATE_LIMIT__LOGIN_PER_ACCOUNT_IP": "99",
        "THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP": "1000",
    }
    if backend == "postgres+redis":
        env["THRESHOLD_DATABASE_URL"] = create_database()
        env["THRESHOLD_REDIS_URL"] = "redis://127.0.0.1:6379/0"
        env["THRESHOLD_REDIS_KEY_PREFIX"] = f"bench{secrets.token_hex(3)}:"
    server = start_server(env, port)
    try:
        email = f"bench.{secrets.token_hex(3)}@example.com"
        response = httpx.post(f"{base}/api/v1/signup", json={"email": email, "password": PASSWORD})
        response.raise_for_status()
        token = re.search(r"__Host-threshold_session=([^;]+)", response.headers["set-cookie"])
        assert token is not None
        cookie = f"__Host-threshold_session={token.group(1)}"
        run = {"runs": args.runs, "duration": args.duration, "connections": args.connections}
        results: dict[str, Any] = {"hello (/healthz)": scenario(f"{base}/healthz", headers={}, **run)}
        results["session check (/api/v1/session)"] = scenario(
            f"{base}/api/v1/session", headers={"Cookie": cookie}, **run
        )
        results["forward-auth"] = scenario(f"{base}/api/v1/forward-auth", headers={"Cookie": cookie}, **run)
        script = Path(data) / "login.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps({'email': email, 'password': PASSWORD}))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        results["password login (/api/v1/login)"] = scenario(
            f"{base}/api/v1/login", headers={}, script=str(script), **{**run, "connections": 8}
        )
        hello = results["hello (/healthz)"]["rps_median"]
        for figures in results.values():
            figures["ratio_to_hello"] = round(figures["rps_median"] / hello, 3)
        return results
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,postgres+redis")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "argon2id_verifications_per_s_one_core": round(argon2_rate(), 1),
        "backends": {},
    }
    for backend in args.backends.split(","):
        report["backends"][backend] = run_backend(backend, args)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"Machine: {report['machine']}; "
        f"Argon2id one core: {report['argon2id_verifications_per_s_one_core']}/s",
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
    table = "\n".join(lines)
    (RESULTS / f"{stamp}.md").write_text(table + "\n")
    (RESULTS / "latest.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
