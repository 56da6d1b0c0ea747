"""The backend-for-frontend's proxied API call against the same call made directly to the API.

One `threshold serve` (SQLite), an API that verifies Threshold's access tokens with TokenVerifier
(uvicorn, one process), and `threshold-bff` in front of it (one process, sessions in memory). A person
signs in once; then wrk calls, for the same duration and connections:

  direct:  GET {api}/orders with Authorization: Bearer <access token>
  proxied: GET {bff}/api/orders with the BFF's cookie and X-CSRF: 1 (the BFF attaches the token)

and reports requests per second, p50 and p99 of each and the ratios (issue 14's target: the proxied
call at most 1.3x the direct one, p50 and p99). Not a test: figures into bench/results/bff-*.json/.md.

    .venv/bin/python bench/bff.py [--duration 10] [--runs 2] [--connections 16]
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

from bench.run import parse_wrk  # noqa: E402
from tests.blackbox.oidc_support import IssuerBrowser  # noqa: E402
from tests.conftest import STRONG_PASSWORD  # noqa: E402
from tests.support import clean_env, free_port, make_deployment, spawn  # noqa: E402

RESULTS = ROOT / "results"
API = """
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from threshold.client import TokenVerifier
import os

verifier = TokenVerifier(issuer=os.environ["ISSUER"], audience=os.environ["ISSUER"])

async def orders(request: Request) -> JSONResponse:
    token = request.headers.get("authorization", "").partition(" ")[2]
    verified = await verifier.averify(token)
    return JSONResponse({"sub": verified.subject, "orders": []})

app = Starlette(routes=[Route("/orders", orders)])
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
            env=clean_env(ISSUER=threshold.url, PYTHONPATH=tmp),
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
            with httpx.Client(timeout=30) as http:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if http.get(f"{bff_url}/bff/user").status_code == 403:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, bff.output()
                    time.sleep(0.1)
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
            figures: dict[str, Any] = {"connections": args.connections, "duration": args.duration}
            for name, url, headers in (
                ("direct", f"{api_url}/orders", direct_headers),
                ("proxied", f"{bff_url}/api/orders", proxied_headers),
            ):
                wrk(url, headers, duration=2, connections=args.connections)  # warm-up
                samples = [
                    wrk(url, headers, duration=args.duration, connections=args.connections)
                    for _ in range(args.runs)
                ]
                figures[name] = {k: sorted(s[k] for s in samples)[len(samples) // 2] for k in samples[0]}
                print(name, figures[name], flush=True)
        finally:
            bff.stop()
            api.stop()
    d, p = figures["direct"], figures["proxied"]
    figures["ratio_p50"] = round(p["p50_ms"] / d["p50_ms"], 2)
    figures["ratio_p99"] = round(p["p99_ms"] / d["p99_ms"], 2)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"bff-{stamp}.json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = [
        f"# BFF proxied call vs direct ({args.connections} connections, {args.runs} x {args.duration} s)",
        "",
        "| call | req/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {n} | {figures[n]['rps']:.0f} | {figures[n]['p50_ms']:.2f} | {figures[n]['p99_ms']:.2f} | "
            f"{figures[n]['errors']:.0f} |"
            for n in ("direct", "proxied")
        ),
        "",
        f"proxied / direct: p50 {figures['ratio_p50']}x, p99 {figures['ratio_p99']}x (target <= 1.3x)",
    ]
    (RESULTS / f"bff-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
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
