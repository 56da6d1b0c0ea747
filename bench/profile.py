"""Where a hot path's CPU goes: py-spy samples `threshold serve` (one worker, pinned to core 0 as
bench/run.py runs it) while wrk drives one scenario, and the report lists the functions by their share
of the samples (own time and time including callees), limited to the server's event-loop thread and
its worker threads together.

    .venv/bin/python bench/profile.py login [--backend postgres+redis] [--seconds 10] [--top 40]
    scenarios: login, client_credentials, refresh, session

Writes bench/results/profile-{scenario}-{backend}-{stamp}.txt (the report) and .folded (the collapsed
stacks, for a flame graph with any `flamegraph.pl`/speedscope). Needs wrk and py-spy (in the dev extra).
Not a test: it reports figures.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from run import (
    CLIENT_CPUS,
    REFRESH_LUA,
    RESULTS,
    SERVER_CPUS,
    _pin,
    client_credentials_script,
    deployment,
    login_script,
    refresh_tokens,
    signed_up,
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the main thread (the event loop) and of the other threads together (the password
    hashing pool, the database driver's threads)."""
    totals: dict[str, float] = collections.defaultdict(float)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (task / "stat").read_text()
        except FileNotFoundError:
            continue
        name = "event loop (main thread)" if task.name == str(pid) else "other threads"
        fields = raw.rpartition(")")[2].split()
        totals[name] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return totals


def summarize(folded: Path, top: int) -> list[str]:
    """Own and inclusive shares per function from py-spy's collapsed stacks (idle frames excluded)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        if any(marker in frames[-1] for marker in ("select (selectors", "_run_once (asyncio", "run (uvloop")):
            idle += count
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"samples: {total} (idle in the event loop's select: {idle})", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "including callees:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("login", "client_credentials", "refresh", "session"))
    parser.add_argument("--backend", default="postgres+redis")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="include C frames (uvloop, asyncpg, httptools)")
    parser.add_argument("--factory", help="module:function, an app factory to serve instead (uvicorn)")
    parser.add_argument("--id-token-alg", default="RS256", help="refresh: the client's ID token algorithm")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    name = f"profile-{args.scenario}-{args.backend.replace('+', '-')}-{stamp}"
    folded = RESULTS / f"{name}.folded"
    with deployment(args.backend) as bench:  # type: ignore[arg-type]
        server = bench.start(prefix=_pin(SERVER_CPUS), factory=args.factory)
        base, env, data = server.base_url, bench.env, Path(bench.dir)
        email, cookie, device = signed_up(base)
        connections, extra = args.connections, []
        if args.scenario == "login":
            script = login_script(data, email, device)
            url, connections = f"{base}/api/v1/login", 8
        elif args.scenario == "client_credentials":
            script = client_credentials_script(env, data)
            url = f"{base}/oauth2/token"
        elif args.scenario == "refresh":
            tokens, basic = refresh_tokens(base, env, cookie, 2 * connections, id_token_alg=args.id_token_alg)
            pool = data / "refresh.txt"
            pool.write_text("\n".join(tokens) + "\n")
            script = str(data / "refresh.lua")
            Path(script).write_text(REFRESH_LUA.replace("PATH", "/oauth2/token").replace("AUTH", basic))
            url, extra = f"{base}/oauth2/token", ["--", str(pool)]
        else:
            script = str(data / "session.lua")
            Path(script).write_text(f'wrk.headers["Cookie"] = "{cookie}"\n')
            url = f"{base}/api/v1/session"
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.pid),
                "--duration", str(args.seconds + 1), "--rate", str(args.rate), "--format", "raw",
                "--threads", "--output", str(folded), *(["--native"] if args.native else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
        threads_before = thread_cpu(server.pid)
        output = subprocess.run(
            [
                *_pin(CLIENT_CPUS), "wrk", "-t2", f"-c{connections}", f"-d{args.seconds}s", "--latency",
                "-s", script, url, *extra,
            ],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        wall = time.perf_counter() - wall_before
        busy = (cpu_seconds(server.pid) - cpu_before) / wall
        threads = {k: (v - threads_before.get(k, 0.0)) / wall for k, v in thread_cpu(server.pid).items()}
        spy.wait(timeout=args.seconds + 60)
    lines = [f"# {args.scenario} on {args.backend}, {args.seconds} s, {connections} connections", ""]
    lines += ["```", output.strip(), "```", "", f"server CPU while wrk ran: {100 * busy:.0f}% of one core"]
    lines += [
        f"  thread {k}: {100 * v:.0f}%"
        for k, v in sorted(threads.items(), key=lambda kv: -kv[1])
        if v > 0.005
    ]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    lines += [f"CPU per request: {1000 * busy / rate:.2f} ms", ""]
    lines += summarize(folded, args.top)
    (RESULTS / f"{name}.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
