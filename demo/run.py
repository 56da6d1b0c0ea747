"""`make demo`: Threshold and one small application per architecture of the decision framework, on loopback.

    .venv/bin/python -m demo [--base-port 8600] [--ready-file FILE]

Everything runs from this checkout's virtual environment and Debian's nginx, in a fresh directory that is
removed on exit (Ctrl-C stops every process). Ports, from the base port B:

    B      nginx: Threshold (issuer http://127.0.0.1:B), the shop at /shop/, the handbook at /handbook/
    B+1    the SPA and its backend-for-frontend (threshold-bff)
    B+2    the Orders API (TokenVerifier)
    B+3    a service calling the API with client_credentials
    B+4    the desktop-style app (loopback redirect)
    B+5    Acme's identity provider (a second Threshold, http://localhost:B+5)
    B+10   Threshold itself, B+11 the shop (both behind nginx)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
THRESHOLD = str(BIN / "threshold")
DEMO_USER = "demo@example.com"
IDP_USER = "alice@acme.test"


@dataclass(frozen=True)
class Ports:
    """The demo's ports, from the base port B (see the module's table)."""

    front: int
    spa: int
    api: int
    service: int
    native: int
    idp: int
    threshold: int
    shop: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(*(base + offset for offset in (0, 1, 2, 3, 4, 5, 10, 11)))

    def all(self) -> list[int]:
        return list(astuple(self))


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Demo:
    run: Path
    ports: Ports
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.ports.front}"

    @property
    def idp_issuer(self) -> str:
        return f"http://localhost:{self.ports.idp}"

    def threshold_env(self, name: str, issuer: str, **more: str) -> dict[str, str]:
        return {
            **_base_env(),
            "THRESHOLD_ISSUER": issuer,
            "THRESHOLD_DATA_DIR": str(self.run / name),
            "THRESHOLD_DEVELOPMENT": "true",
            "THRESHOLD_LOG_LEVEL": "warning",
            "THRESHOLD_ACCESS_LOG": "false",
            **more,
        }

    def cli(self, env: dict[str, str], *args: str, stdin: str = "") -> Any:
        done = subprocess.run(
            [THRESHOLD, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"demo: threshold {' '.join(args[:3])} failed:\n{done.stderr}")
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.run / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent, start_new_session=True
        )
        self.processes.append((name, process))

    def uvicorn(self, name: str, factory: str, port: int, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "uvicorn", f"demo.apps:{factory}", "--factory"]
        self.spawn(name, [*argv, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env)

    def stop(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def wait_for(
        self, url: str, what: str, ok: Callable[[httpx.Response], bool], timeout: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise SystemExit(
                        f"demo: {name} stopped:\n{(self.run / f'{name}.log').read_text()[-2000:]}"
                    )
            try:
                if ok(httpx.get(url, timeout=5)):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: {what} did not answer at {url}")
            time.sleep(0.2)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONPATH": str(HERE.parent)}


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise SystemExit("demo: nginx not found (Debian: apt-get install nginx)")
    return found


@contextmanager
def running(base_port: int) -> Iterator[dict[str, Any]]:
    """Everything started and set up; yields what `--ready-file` holds (URLs and demo accounts)."""
    ports = Ports.from_base(base_port)
    busy = [p for p in ports.all() if not _free(p)]
    if busy:
        raise SystemExit(f"demo: ports {busy} are in use (--base-port picks others)")
    nginx = _nginx()
    run = Path(tempfile.mkdtemp(prefix="threshold-demo-"))
    run.chmod(0o755)  # nginx's workers (another user when started as root) reach its temp files
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run / "tmp" / sub).mkdir(parents=True)
        (run / "tmp" / sub).chmod(0o777)
    demo = Demo(run, ports)
    try:
        yield _start(demo, nginx)
    finally:
        demo.stop()
        shutil.rmtree(run, ignore_errors=True)


def _start(demo: Demo, nginx: str) -> dict[str, Any]:
    ports, issuer = demo.ports, demo.issuer
    password, idp_password = (f"demo-{secrets.token_urlsafe(12)}" for _ in range(2))
    main_env = demo.threshold_env("threshold", issuer, THRESHOLD_TRUSTED_PROXIES='["127.0.0.1/32"]')
    idp_env = demo.threshold_env("idp", demo.idp_issuer, THRESHOLD_THEME__PRODUCT_NAME="Acme IdP")
    spa_url, api_url = f"http://127.0.0.1:{ports.spa}", f"http://127.0.0.1:{ports.api}"
    service_url, native_url = f"http://127.0.0.1:{ports.service}", f"http://127.0.0.1:{ports.native}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        for done in pool.map(lambda env: demo.cli(env, "migrate"), (main_env, idp_env)):
            del done
        demo.spawn("idp", [THRESHOLD, "serve", "--port", str(ports.idp)], idp_env)
        demo.spawn("threshold", [THRESHOLD, "serve", "--port", str(ports.threshold)], main_env)
        users = [
            pool.submit(demo.cli, main_env, "users", "create", "--email", DEMO_USER, "--verified",
                        "--password-stdin", stdin=password),
            pool.submit(demo.cli, idp_env, "users", "create", "--email", IDP_USER, "--verified",
                        "--password-stdin", stdin=idp_password),
        ]  # fmt: skip
        spa = pool.submit(
            demo.cli, main_env, "clients", "create", "--name", "Demo SPA", "--first-party",
            "--redirect-uri", f"{spa_url}/bff/callback", "--post-logout-redirect-uri", f"{spa_url}/",
            "--backchannel-logout-uri", f"{spa_url}/bff/backchannel", "--json",
        )  # fmt: skip
        service = pool.submit(
            demo.cli, main_env, "clients", "create", "--name", "Demo service",
            "--grant-type", "client_credentials", "--scope", "orders:read", "--json",
        )  # fmt: skip
        native = pool.submit(
            demo.cli, main_env, "clients", "create", "--name", "Demo desktop app", "--public",
            "--first-party", "--redirect-uri", "http://127.0.0.1/callback", "--json",
        )  # fmt: skip
        sso_client = pool.submit(
            demo.cli, idp_env, "clients", "create", "--name", "Threshold demo (Acme SSO)", "--first-party",
            "--redirect-uri", f"{issuer}/sso/oidc/callback",
            "--scope", "openid", "--scope", "email", "--scope", "profile", "--json",
        )  # fmt: skip
        org = demo.cli(main_env, "orgs", "create", "--name", "Acme", "--slug", "acme", "--json")
        demo.cli(main_env, "orgs", "domains", "add", org["slug"], "acme.test", "--json")
        demo.cli(main_env, "orgs", "domains", "verify", org["slug"], "acme.test", "--trust", "--json")
        for user in users:
            user.result()
        demo.wait_for(f"{demo.idp_issuer}/readyz", "the IdP", lambda r: r.status_code == 200)
        demo.cli(
            main_env, "orgs", "connections", "add", org["slug"], "--type", "oidc",
            "--issuer", demo.idp_issuer, f"--client-id={sso_client.result()['client_id']}",
            f"--client-secret={sso_client.result()['client_secret']}", "--json",
        )  # fmt: skip
        spa_client, service_client, native_client = spa.result(), service.result(), native.result()

    apps_env = {
        **_base_env(),
        "DEMO_ISSUER": issuer,
        "DEMO_THRESHOLD_INTERNAL": f"http://127.0.0.1:{ports.threshold}",
        "DEMO_API_URL": api_url,
        "DEMO_SERVICE_URL": service_url,
        "DEMO_NATIVE_URL": native_url,
        "DEMO_NATIVE_CLIENT_ID": native_client["client_id"],
        "DEMO_SERVICE_CLIENT_ID": service_client["client_id"],
        "DEMO_SERVICE_CLIENT_SECRET": service_client["client_secret"],
    }
    demo.uvicorn("shop", "shop", ports.shop, apps_env)
    demo.uvicorn("api", "orders_api", ports.api, apps_env)
    demo.uvicorn("service", "service", ports.service, apps_env)
    demo.uvicorn("native", "native", ports.native, apps_env)
    # nginx's workers (another user when it starts as root) read the handbook from the run directory
    handbook = demo.run / "handbook"
    shutil.copytree(HERE / "handbook", handbook)
    for path in (handbook, *handbook.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    config = (HERE / "nginx.conf").read_text()
    for name, value in {
        "RUN": str(demo.run),
        "FRONT": str(ports.front),
        "THRESHOLD": str(ports.threshold),
        "SHOP": str(ports.shop),
        "HANDBOOK": str(handbook),
    }.items():
        config = config.replace(f"@@{name}@@", value)
    (demo.run / "nginx.conf").write_text(config)
    demo.spawn("nginx", [nginx, "-p", str(demo.run), "-c", str(demo.run / "nginx.conf")], _base_env())
    demo.wait_for(f"{issuer}/readyz", "Threshold (through nginx)", lambda r: r.status_code == 200)
    bff_env = {**_base_env(), "THRESHOLD_BFF_CLIENT_SECRET": spa_client["client_secret"]}
    demo.spawn(
        "bff",
        [
            str(BIN / "threshold-bff"),
            *("--issuer", issuer, "--client-id", spa_client["client_id"], "--upstream", api_url),
            *("--static", str(HERE / "spa"), "--port", str(ports.spa), "--public-url", spa_url),
        ],
        bff_env,
    )
    for url, what in (
        (f"{spa_url}/", "the SPA's BFF"),
        (f"{api_url}/", "the Orders API"),
        (f"{native_url}/", "the desktop app"),
        (f"{issuer}/shop/", "the shop"),
    ):
        demo.wait_for(url, what, lambda r: r.status_code < 500)
    return {
        "issuer": issuer,
        "user": {"email": DEMO_USER, "password": password},
        "idp_user": {"email": IDP_USER, "password": idp_password},
        "idp": demo.idp_issuer,
        "urls": {
            "shop": f"{issuer}/shop/",
            "spa": f"{spa_url}/",
            "api": f"{api_url}/",
            "service": f"{service_url}/",
            "handbook": f"{issuer}/handbook/",
            "native": f"{native_url}/",
            "sso": f"{issuer}/login",
        },
    }


def summary(ready: dict[str, Any]) -> str:
    urls, user, idp_user = ready["urls"], ready["user"], ready["idp_user"]
    return f"""
Threshold demo: every architecture of the decision framework, on loopback.
Sign in as {user["email"]} / {user["password"]}   (Threshold: {ready["issuer"]}/account, mail: /dev/outbox)

1. Monolith / server-rendered app, Threshold's session cookie (ThresholdAuth, same origin):
     {urls["shop"]}
2. SPA behind a backend-for-frontend (tokens stay server-side, an httpOnly cookie in the browser):
     {urls["spa"]}        Sign in, Load orders, Sign out
3. API verifying 5-minute JWT access tokens (TokenVerifier), and a service calling it (client_credentials):
     {urls["api"]}   and   {urls["service"]}
4. Static site behind nginx auth_request (/api/v1/forward-auth):
     {urls["handbook"]}
5. Desktop-style app: system browser, loopback redirect on a port the OS picks, PKCE, no secret:
     {urls["native"]}
6. B2B: Acme signs in through its own identity provider ({ready["idp"]}):
     {urls["sso"]}   type {idp_user["email"]} (password at Acme's IdP: {idp_user["password"]})

Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-port", type=int, default=8600)
    parser.add_argument("--ready-file", help="write the URLs and accounts here (JSON) once all answer")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running(args.base_port) as ready:
        if args.ready_file:
            Path(args.ready_file).write_text(json.dumps(ready, indent=2))
        print(summary(ready), flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0
