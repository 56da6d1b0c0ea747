"""Loop CPU per password sign-in, for A/B comparisons of a change: the server (one worker, pinned to
core 0 as bench/run.py runs it) on postgres+redis, wrk with 8 connections on the other core; each run
reports sign-ins/s, the event loop thread's CPU per sign-in and the other threads' (the hash), and how
often per sign-in the loop went to sleep (its voluntary context switches: each one lets the hash run,
and the loop wakes with its caches cold).

    .venv/bin/python bench/ab_login.py [--runs 3] [--seconds 12] [--backend postgres+redis]

Not a test: it reports figures.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import time
from pathlib import Path
from profile import thread_cpu

from run import CLIENT_CPUS, SERVER_CPUS, _pin, deployment, login_script, signed_up


def sleeps(pid: int) -> int:
    """Voluntary context switches of the process's main thread (the event loop)."""
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    return int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--backend", default="postgres+redis")
    args = parser.parse_args()
    loops, rates = [], []
    for run in range(args.runs):
        with deployment(args.backend) as bench:  # type: ignore[arg-type]
            server = bench.start(prefix=_pin(SERVER_CPUS))
            email, _, device = signed_up(server.base_url)
            script = login_script(Path(bench.dir), email, device)
            url = f"{server.base_url}/api/v1/login"
            wrk = [*_pin(CLIENT_CPUS), "wrk", "-t2", "-c8", "-s", script, url]
            subprocess.run([*wrk, "-d2s"], capture_output=True, check=True)  # warm-up
            before, slept, start = thread_cpu(server.pid), sleeps(server.pid), time.perf_counter()
            output = subprocess.run([*wrk, f"-d{args.seconds}s"], capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            after, slept = thread_cpu(server.pid), sleeps(server.pid) - slept
            rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output.stdout).group(1))  # type: ignore[union-attr]
            count = rate * wall
            loop = (after["event loop (main thread)"] - before["event loop (main thread)"]) / count
            other = (after["other threads"] - before["other threads"]) / count
            loops.append(loop)
            rates.append(rate)
            print(
                f"run {run + 1}: {rate:.2f} sign-ins/s; per sign-in: loop {1000 * loop:.2f} ms, other "
                f"threads {1000 * other:.2f} ms, the loop slept {slept / count:.1f} times",
                flush=True,
            )
    print(
        f"median: {statistics.median(rates):.2f} sign-ins/s, loop {1000 * statistics.median(loops):.2f} ms "
        "per sign-in"
    )


if __name__ == "__main__":
    main()
