"""Print the fastest CPython >= 3.11 on this machine: the interpreter `make bench` and `make bench-peers`
serve Threshold with (their own venv, .venv-bench).

Threshold's Docker image runs on python:3.11-slim, a release build (profile-guided and link-time
optimized, the interpreter linked statically), as are the distributions' own Pythons. A Python built by
pyenv without PYTHON_CONFIGURE_OPTS="--enable-optimizations --with-lto" (its default), as on these
development machines, runs Python code 15-40 % slower: serving with it would measure the build, not
Threshold, next to peers that run on Node's release builds. Each candidate on PATH and in the usual
places runs the same small workload (dicts, strings, JSON: what a request does) in a fresh process; the
fastest of three tries wins. Prints the path; the candidates and their times go to stderr.

    python3 bench/release_python.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

WORKLOAD = """
import json, sys, time
if sys.version_info < (3, 11):
    print("old"); raise SystemExit
def work():
    d = {}
    for i in range(20000):
        d[str(i)] = [i, i * 2, {"a": i, "b": str(i)}]
    return json.dumps(d)
best = min(((time.perf_counter(), work(), time.perf_counter()) for _ in range(8)), key=lambda t: t[2] - t[0])
print(best[2] - best[0])
"""

PLACES = ("/usr/bin", "/usr/local/bin")
NAMES = ("python3", "python3.11", "python3.12", "python3.13")


def candidates() -> list[str]:
    found: dict[str, str] = {}
    paths = [sys.executable]
    for name in NAMES:
        on_path = shutil.which(name)
        if on_path:
            paths.append(on_path)
        paths += [str(Path(place) / name) for place in PLACES]
    for path in paths:
        if os.access(path, os.X_OK):
            found.setdefault(str(Path(path).resolve()), path)
    return list(found.values())


def seconds(python: str) -> float | None:
    try:
        out = subprocess.run(
            [python, "-I", "-c", WORKLOAD], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return None if out == "old" else float(out)


def has_venv(python: str) -> bool:
    """Whether `python -m venv` can make a venv with pip (Debian ships ensurepip in python3-venv)."""
    return subprocess.run([python, "-I", "-c", "import ensurepip, venv"], capture_output=True).returncode == 0


def main() -> None:
    timed: list[tuple[float, str]] = []
    for python in candidates():
        tries = [t for t in (seconds(python) for _ in range(3)) if t is not None]
        usable = bool(tries) and has_venv(python)
        print(
            f"{python}: {min(tries) * 1000:.0f} ms{'' if usable else ' (no venv/ensurepip: skipped)'}"
            if tries
            else f"{python}: not CPython >= 3.11",
            file=sys.stderr,
        )
        if usable:
            timed.append((min(tries), python))
    print(min(timed)[1] if timed else sys.executable)


if __name__ == "__main__":
    main()
