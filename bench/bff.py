"""The backend-for-frontend's proxied API call against the same call made directly to the API.

One `threshold serve` (SQLite), an API that verifies Threshold's access tokens with TokenVerifier
(uvicorn, one process), and `threshold-bff` in front of it (one process, sessions in memory). A person
signs in once; then wrk calls, for the same duration and connections:

  direct:  GET {api}/orders with Authorization: Bearer <access token>
  proxied: GET {bff}/api/orders with the BFF's cookie and X-CSRF: 1 (the BFF attaches the token)

against two APIs: a bare one (it verifies the token and answers at once: what is left is the cost of
the hop itself, and on this 2-core machine wrk, the BFF and the API share the cores) and one that, like
most APIs, waits on its database (`--api-ms`, 5 ms, awaited) before it answers. Reported: requests per
second, p50 and p99 of each and the ratios (issue 14's target: the proxied call at most 1.3x the direct
one, p50 and p99). Not a test: figures into bench/results/bff-*.json/.md.

    .venv/bin/python bench/bff.py [--duration 10] [--runs 2] [--connections 16] [--api-ms 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bench.run import parse_wrk, save_results  # noqa: E402
from tests.blackbox.oidc_support import IssuerBrowser  # noqa: E402
from tests.conftest import STRONG_PASSWORD  # noqa: E402
from tests.support import clean_env, free_port, make_deployment, spawn  # noqa: E402

API = """
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from threshold.client import TokenVerifier
import asyncio
import os

verifier = TokenVerifier(issuer=os.environ["ISSUER"], audience=os.environ["ISSUER"])

async def orders(request: Request) -> JSONResponse:
    token = request.headers.get("authorization", "").partition(" ")[2]
    verified = await verifier.averify(token)
    return JSONResponse({"sub": verified.subject, "orders": []})

async def orders_from_database(request: Request) -> JSONResponse:
    await asyncio.sleep(float(os.environ["API_MS"]) / 1000)  # the API's own query
    return await orders(request)

app = Starlette(routes=[Route("/orders", orders), Route("/orders-db", orders_from_database)])
"""


def wrk(url: str, headers: dict[str, str], *, duration: int, connections: int) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout=10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    return parse_wrk(output)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--api-ms", type=float, default=5.0, help="the second API's wait per call")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    with (
        tempfile.TemporaryDirectory(prefix="threshold-bff-bench-") as tmp,
        make_deployment(Path(tmp), "sqlite", THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP="1000") as deployment,
    ):
        threshold = deployment.start()
        api_port, bff_port = free_port(), free_port()
        api_url, bff_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bff_port}"
        (Path(tmp) / "bench_api.py").write_text(API)
        made = deployment.cli(
            "clients", "create", "--name", "SPA", "--first-party", "--access-token-lifetime", "900",
            "--redirect-uri", f"{bff_url}/bff/callback", "--json",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        client = json.loads(made.stdout)
        api = spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench_api:app",
                "--port",
                str(api_port),
                "--log-level",
                "warning",
            ],
            log=Path(tmp) / "api.log",
            env=clean_env(ISSUER=threshold.url, PYTHONPATH=tmp, API_MS=str(args.api_ms)),
            cwd=Path(tmp),
        )
        bff = spawn(
            [
                str(Path(sys.executable).with_name("threshold-bff")),
                *("--issuer", threshold.url, "--client-id", client["client_id"]),
                *("--upstream", api_url, "--port", str(bff_port)),
            ],
            log=Path(tmp) / "bff.log",
            env=clean_env(THRESHOLD_BFF_CLIENT_SECRET=client["client_secret"]),
        )
        try:
            bff.wait_until_ready(f"{bff_url}/bff/user", what="threshold-bff", status=403)  # (no X-CSRF)
            with httpx.Client(timeout=30) as http:
                browser = IssuerBrowser(http)
                assert browser.signup(
                    threshold, f"bench-{time.time_ns()}@example.com", STRONG_PASSWORD
                ).is_success
                started = http.get(f"{bff_url}/bff/login")
                login_cookie = started.headers["set-cookie"].split(";")[0]
                authorize = urlsplit(started.headers["location"])
                answered = browser.get(threshold, f"{authorize.path}?{authorize.query}")
                back = urlsplit(answered.headers["location"])
                done = http.get(f"{bff_url}/bff/callback?{back.query}", headers={"Cookie": login_cookie})
                assert done.status_code == 303, done.text
                session_cookie = next(
                    c.split(";")[0] for c in done.headers.get_list("set-cookie") if "threshold-bff=" in c
                )
                http.cookies.clear()
                proxied_headers = {"Cookie": session_cookie, "X-CSRF": "1"}
                first = http.get(f"{bff_url}/api/orders", headers=proxied_headers)
                assert first.status_code == 200, first.text
                # the direct call's token: the same client, the same person (a second code flow)
                token = _direct_token(http, browser, threshold, client, bff_url)
                direct_headers = {"Authorization": f"Bearer {token}"}
                assert http.get(f"{api_url}/orders", headers=direct_headers).status_code == 200
            figures: dict[str, Any] = {
                "connections": args.connections,
                "duration": args.duration,
                "api_ms": args.api_ms,
            }
            for api_name, path in (("bare", "/orders"), ("database", "/orders-db")):
                for name, url, headers in (
                    ("direct", f"{api_url}{path}", direct_headers),
                    ("proxied", f"{bff_url}/api{path}", proxied_headers),
                ):
                    wrk(url, headers, duration=2, connections=args.connections)  # warm-up
                    samples = [
                        wrk(url, headers, duration=args.duration, connections=args.connections)
                        for _ in range(args.runs)
                    ]
                    median = {k: sorted(s[k] for s in samples)[len(samples) // 2] for k in samples[0]}
                    figures[f"{api_name}_{name}"] = median
                    print(api_name, name, median, flush=True)
                d, p = figures[f"{api_name}_direct"], figures[f"{api_name}_proxied"]
                figures[f"{api_name}_ratio_p50"] = round(p["p50_ms"] / d["p50_ms"], 2)
                figures[f"{api_name}_ratio_p99"] = round(p["p99_ms"] / d["p99_ms"], 2)
        finally:
            bff.stop()
            api.stop()
    labels = {"bare": "bare API (answers at once)", "database": f"API with a {args.api_ms:g} ms query"}
    lines = [
        f"# BFF proxied call vs direct ({args.connections} connections, {args.runs} x {args.duration} s)",
        "",
        "| API | call | req/s | p50 ms | p99 ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for api_name, label in labels.items():
        for name in ("direct", "proxied"):
            f = figures[f"{api_name}_{name}"]
            lines.append(
                f"| {label} | {name} | {f['rps']:.0f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | "
                f"{f['errors']:.0f} |"
            )
    lines.append("")
    for api_name, label in labels.items():
        lines.append(
            f"{label}: proxied / direct p50 {figures[f'{api_name}_ratio_p50']}x, "
            f"p99 {figures[f'{api_name}_ratio_p99']}x (target <= 1.3x)"
        )
    save_results("bff", figures, lines)
    return 0


def _direct_token(
    http: httpx.Client, browser: IssuerBrowser, threshold: Any, client: dict[str, Any], bff_url: str
) -> str:
    from tests.blackbox.oidc_support import HttpRP

    rp = HttpRP(
        client_id=client["client_id"],
        secret=client["client_secret"],
        http=http,
        redirect_uri=f"{bff_url}/bff/callback",
    )
    tokens = rp.tokens(browser, threshold)
    return str(tokens["access_token"])


if __name__ == "__main__":
    raise SystemExit(main())
