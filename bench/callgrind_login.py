"""Instructions per password sign-in outside the hash, counted exactly: for an A/B of a change to the
sign-in path, where wall-clock figures on this machine drift by more than the change (bench/ab_login.py's
runs vary by 10 % within minutes).

The app runs in-process (its lifespan, then each request handed to it as uvicorn hands it over, so
uvicorn's HTTP protocol is not counted, nor any client) on a deployment of its own (PostgreSQL + Redis by default), under valgrind's
callgrind, which counts instructions, not seconds: the same code and inputs give the same count
whatever else the machine does. The Argon2id verification is replaced by a constant answer on its
thread (the hash's own instructions are the same before and after any change to the rest, and under
callgrind a hash takes seconds); the hand-off to the hashing thread is kept. Only the `--count`
sign-ins after `--warm` uncounted ones are counted (callgrind's collection is switched on and off
around them from inside the process), so start-up and imports are not. Each sign-in is a returning
browser's (its device cookie sent).

    .venv/bin/python bench/callgrind_login.py [--count 200] [--warm 30] [--backend postgres+redis]
    git worktree add /tmp/before HEAD  # then, for the A/B, beside the run above:
    .venv/bin/python bench/callgrind_login.py --src /tmp/before/src

Needs valgrind. About two minutes. Not a test: it reports figures.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import uvloop
from run import PASSWORD, cookie_of, deployment
from starlette.types import ASGIApp, Message

TOGGLE_C = """
#include <valgrind/callgrind.h>
void toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
"""


def _toggle(work: Path) -> Callable[[], None]:
    """A function that turns callgrind's counting on or off (a client request: a few instructions that
    valgrind recognises, compiled from its header; nothing when not under valgrind)."""
    source, library = work / "toggle.c", work / "toggle.so"
    source.write_text(TOGGLE_C)
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return ctypes.CDLL(str(library)).toggle


async def _sign_in(count: int, warm: int, toggle: Callable[[], None]) -> None:
    """In the process under callgrind: sign up once, `warm` sign-ins uncounted, then `count` counted."""
    import httpx

    from threshold.core import passwords
    from threshold.web.app import app_from_environment
    from threshold.web.security import DEVICE_COOKIE

    def verified(self: passwords.PasswordHasher, stored: str, password: str) -> bool:
        return password == PASSWORD

    passwords.PasswordHasher._verify_sync = verified  # type: ignore[method-assign]
    app = app_from_environment()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1") as client:
            email = f"callgrind.{os.getpid()}@example.com"
            signup = await client.post("/api/v1/signup", json={"email": email, "password": PASSWORD})
            signup.raise_for_status()
            device = cookie_of(signup, DEVICE_COOKIE)
        body = json.dumps({"email": email, "password": PASSWORD}).encode()
        for index in range(warm + count):
            if index == warm:
                toggle()
            status = await _post(app, "/api/v1/login", body, [(b"cookie", device.encode())])
            assert status == 200, status
        toggle()


async def _post(app: ASGIApp, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """One JSON POST straight to the ASGI app, as uvicorn hands it over (no HTTP client counted); its
    status."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8400"), (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), *headers,
        ],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8400), "state": {},
    }  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


def _instructions(env: dict[str, str], count: int, warm: int, work: Path) -> int:
    out = work / "callgrind.out"
    subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--collect-atstart=no", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--inner", str(count), "--warm", str(warm), "--work", str(work),
        ],
        env=env, check=True, capture_output=True, cwd=Path(__file__).parent,
    )  # fmt: skip
    summary = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
    assert summary is not None, f"no summary in {out}"
    return int(summary.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument("--backend", default="postgres+redis")
    parser.add_argument(
        "--src", help="count another checkout's sources (its src/ directory) instead, for an A/B"
    )
    parser.add_argument("--keep", help="copy callgrind's output here (for callgrind_annotate)")
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner is not None:
        uvloop.run(_sign_in(args.inner, args.warm, _toggle(Path(args.work))))  # as `threshold serve` runs
        return
    # The back-channel queue is polled every 0.25 s of wall time, and under valgrind a sign-in takes about
    # fifty times as long, so the polls would be counted with each sign-in: once a minute here instead.
    with (
        deployment(args.backend, THRESHOLD_BACKCHANNEL__POLL_INTERVAL="60") as bench,
        tempfile.TemporaryDirectory(prefix="callgrind-") as work,
    ):
        path = [*([str(Path(args.src).resolve())] if args.src else []), str(Path(__file__).parent)]
        env = {**bench.env, "PYTHONPATH": os.pathsep.join(path), "THRESHOLD_ISSUER": "http://127.0.0.1:8400"}
        per = _instructions(env, args.count, args.warm, Path(work)) / args.count
        if args.keep:
            shutil.copy(Path(work) / "callgrind.out", args.keep)
    print(
        f"{args.backend}{' (' + args.src + ')' if args.src else ''}: {per / 1e6:.3f} M instructions per "
        f"sign-in (outside the hash; {args.count} sign-ins)"
    )


if __name__ == "__main__":
    main()
