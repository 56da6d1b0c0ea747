"""The real server as separate processes, driven only over HTTP (and the CLI, as an operator would).

Browser cookies are `Secure`, so over plain http a cookie jar would not send them: `Browser` carries
them itself, reading Set-Cookie and sending `Cookie:` explicitly, and does the double-submit CSRF dance.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    REDIS_URL,
    STRONG_PASSWORD,
    create_pg_database,
    drop_pg_database,
    free_port,
)

THRESHOLD = str(Path(sys.executable).parent / "threshold")
SESSION_COOKIE = "__Host-threshold_session"
CSRF_COOKIE = "__Host-threshold_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CLI_TIMEOUT = 60
START_TIMEOUT = 30


def clean_env(**values: str | os.PathLike[str]) -> dict[str, str]:
    """The test process's environment without any THRESHOLD_* variable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRESHOLD_")}
    env.update({k: str(v) for k, v in values.items()})
    return env


def run_cli(
    *args: str,
    env: Mapping[str, str],
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [THRESHOLD, *args],
        env=dict(env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def migrate(env: Mapping[str, str], cwd: Path | None = None) -> None:
    result = run_cli("migrate", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # Worker processes share the server's own process group (started with start_new_session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def start_server(
    env: Mapping[str, str], log_dir: Path, *, workers: int = 1, ready_timeout: float = START_TIMEOUT
) -> Server:
    """`threshold serve` on a free port, waiting until /readyz answers 200."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    server_env = {**env, "THRESHOLD_ISSUER": f"http://127.0.0.1:{port}"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [THRESHOLD, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=server_env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process=process, port=port, log=log)
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(server.base_url + "/readyz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready after {ready_timeout}s:\n{server.output()}")
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise


@dataclass
class Deployment:
    """Shared configuration of every process of one service (servers and CLI)."""

    env: dict[str, str]
    dir: Path
    servers: list[Server] = field(default_factory=list)

    def start(self, *, workers: int = 1) -> Server:
        server = start_server(self.env, self.dir, workers=workers)
        self.servers.append(server)
        return server

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env, stdin=stdin, cwd=self.dir)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _redis_available() -> bool:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


def _delete_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextlib.contextmanager
def make_deployment(tmp_dir: Path, *, redis: bool) -> Iterator[Deployment]:
    """A migrated PostgreSQL database of its own (migrated by `threshold migrate`), Redis if asked."""
    from tests.conftest import need

    if redis and not _redis_available():
        need("Redis", f"nothing answers at {REDIS_URL}")
    pg_url = create_pg_database()
    prefix = f"thbb:{secrets.token_hex(4)}:"
    values: dict[str, str | os.PathLike[str]] = {
        "THRESHOLD_DATABASE_URL": pg_url,
        "THRESHOLD_DATA_DIR": tmp_dir / "data",
        "THRESHOLD_LOG_LEVEL": "warning",
    }
    if redis:
        values["THRESHOLD_REDIS_URL"] = REDIS_URL
        values["THRESHOLD_REDIS_KEY_PREFIX"] = prefix
    deployment = Deployment(env=clean_env(**values), dir=tmp_dir)
    try:
        migrate(deployment.env, cwd=tmp_dir)
        yield deployment
    finally:
        deployment.stop()
        drop_pg_database(pg_url)
        if redis:
            _delete_redis_prefix(prefix)


@pytest.fixture(scope="module")
def pg_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `threshold serve` on PostgreSQL + Redis, shared by a module."""
    with make_deployment(tmp_path_factory.mktemp("server"), redis=True) as deployment:
        yield deployment.start()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


# --- A browser over plain http ----------------------------------------------------------------


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str]]:
    """(name, value, attributes with lower-case names) of one Set-Cookie header."""
    first, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    attrs: dict[str, str] = {}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        attrs[key.strip().lower()] = val.strip()
    return name.strip(), value.strip().strip('"'), attrs


@dataclass
class Browser:
    """One browser profile: its own cookies, sent explicitly to whichever server it talks to."""

    http: httpx.Client
    cookies: dict[str, str] = field(default_factory=dict)
    user_agent: str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"

    @property
    def session(self) -> str | None:
        return self.cookies.get(SESSION_COOKIE)

    def request(
        self,
        server: Server,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        method = method.upper()
        if method not in SAFE_METHODS and SESSION_COOKIE in self.cookies and CSRF_COOKIE not in self.cookies:
            self.fetch_csrf(server)
        sent: dict[str, str] = {"User-Agent": self.user_agent}
        if method not in SAFE_METHODS:
            sent["Origin"] = server.base_url
            if CSRF_COOKIE in self.cookies:
                sent["X-CSRF-Token"] = self.cookies[CSRF_COOKIE]
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        sent.update(headers or {})
        response = self.http.request(method, server.base_url + path, json=json, headers=sent)
        self.http.cookies.clear()  # only this object's cookies are ever sent
        self._absorb(response)
        return response

    def get(self, server: Server, path: str) -> httpx.Response:
        return self.request(server, "GET", path)

    def post(self, server: Server, path: str, json: Any = None) -> httpx.Response:
        return self.request(server, "POST", path, json=json)

    def delete(self, server: Server, path: str) -> httpx.Response:
        return self.request(server, "DELETE", path)

    def fetch_csrf(self, server: Server) -> str:
        response = self.get(server, "/api/v1/csrf")
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        assert self.cookies.get(CSRF_COOKIE) == token
        return token

    def signup(self, server: Server, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
        self.fetch_csrf(server)
        return self.post(server, "/api/v1/signup", {"email": email, "password": password})

    def login(self, server: Server, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
        self.fetch_csrf(server)
        return self.post(server, "/api/v1/login", {"email": email, "password": password})

    def _absorb(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            name, value, attrs = parse_set_cookie(header)
            if name == SESSION_COOKIE and value:
                assert "secure" in attrs and "httponly" in attrs, header
                assert attrs.get("path") == "/" and "domain" not in attrs, header  # __Host- rules
            if not value or attrs.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
