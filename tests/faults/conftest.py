"""Fault injection against real processes: PostgreSQL and Redis of the suite's OWN, stopped and restarted.

The shared servers at 127.0.0.1:5432 and :6379 are never touched: a session-wide PostgreSQL cluster is
made with initdb into a temporary directory (as the `postgres` OS user when running as root, since
initdb refuses root) on a free port, and a Redis server runs on a free port with an append-only file
fsynced on every write, so that what Redis acknowledged survives a SIGKILL and a restart.

`Load` drives a mix of requests (session checks with a valid and with a revoked cookie, logins,
sign-ups) from several threads, each with its own httpx client and short timeouts, and records every
answer; `violations` judges them: an answer is either correct or a 503 problem with Retry-After and
the stable code `temporarily_unavailable`, never a 500, never a false "logged out" for a valid session
and never a false "valid" for a revoked one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.support import (
    Deployment,
    RedisServer,
    Server,
    clean_env,
    free_port,
    migrate,
    need,
    new_redis_prefix,
    wait_for,
)

PROBLEM_TYPE = "application/problem+json"
UNAVAILABLE_CODE = "temporarily_unavailable"
REQUEST_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
TEMPLATE = "faults_template"


# --- PostgreSQL of our own ----------------------------------------------------------------------


def _pg_bin() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4].split(".")[0])
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgCluster:
    """One PostgreSQL server in a temporary directory, stopped and started at will on a fixed port."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "postgres.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> None:
        self.sockets.mkdir()
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)
        result = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets} "
            "-c max_connections=200 -c shared_buffers=32MB"
            # Crash recovery syncs the data directory first; one syncfs() is much faster than an
            # fsync() per file, and the guarantee is the same.
            " -c recovery_init_sync_method=syncfs"
        )
        result = self._pg_ctl("-l", str(self.log), "-o", options, "start")
        assert result.returncode == 0, result.stdout + result.stderr + self.log.read_text(errors="replace")

    def stop(self, mode: str = "fast") -> None:
        result = self._pg_ctl("-m", mode, "stop")
        assert result.returncode == 0, result.stdout + result.stderr

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", *args)

    def running(self) -> bool:
        result = self._pg_ctl("status")
        return result.returncode == 0

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def migrate_template(self, work_dir: Path) -> None:
        """Make the template every deployment's database is copied from, migrated by `threshold migrate`."""
        sql(self.url(), f'CREATE DATABASE "{TEMPLATE}"')
        env = clean_env(THRESHOLD_DATABASE_URL=self.url(TEMPLATE), THRESHOLD_DATA_DIR=work_dir / "data")
        migrate(env, cwd=work_dir)

    def create_database(self) -> str:
        """A new database, a copy of the migrated template (much faster than migrating); returns its URL."""
        name = f"faults_{secrets.token_hex(5)}"
        sql(self.url(), f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return self.url(name)


def sql(url: str, statement: str, *args: object) -> list[tuple[object, ...]]:
    """Run one statement on the database at `url` (asyncpg, a connection of its own)."""
    import asyncpg

    async def run() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return [tuple(row) for row in await conn.fetch(statement, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """initdb once per session; the cluster is removed at the end, whatever happened."""
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        need("PostgreSQL", "no initdb/pg_ctl binaries (/usr/lib/postgresql/*/bin)")
    assert bin_dir is not None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            need("PostgreSQL", "running as root and there is no `postgres` user to run initdb as")
        if shutil.which("runuser") is None:
            need("PostgreSQL", "running as root and `runuser` is missing")
    root = Path(tempfile.mkdtemp(prefix="threshold-faults-pg-"))
    cluster = PgCluster(bin_dir, root)
    try:
        cluster.init()
        cluster.start()
        cluster.migrate_template(root)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            if cluster.running():
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg(pg_cluster: PgCluster) -> Iterator[PgCluster]:
    """The session cluster, running at the start and again at the end of the test (whatever it did)."""
    pg_cluster.ensure_running()
    yield pg_cluster
    pg_cluster.ensure_running()


# --- Redis of our own ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        need("Redis", "no redis-server binary")
    assert binary is not None
    root = Path(tempfile.mkdtemp(prefix="threshold-faults-redis-"))
    server = RedisServer(binary, root)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    redis_server.ensure_running()
    yield redis_server
    redis_server.ensure_running()


# --- Deployments on them ------------------------------------------------------------------------


@dataclass
class FaultDeployment:
    deployment: Deployment
    database_url: str

    def start(self, *, workers: int = 1) -> Server:
        return self.deployment.start(workers=workers)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.deployment.cli(*args)

    def accounts(self) -> dict[str, bool]:
        """Every account's email -> whether it has a password credential (straight from the tables)."""
        rows = sql(
            self.database_url,
            "SELECT u.email, p.user_id IS NOT NULL FROM users u "
            "LEFT JOIN password_credentials p ON p.user_id = u.id",
        )
        return {str(email): bool(has_password) for email, has_password in rows}


@contextlib.contextmanager
def fault_deployment(
    tmp_dir: Path, pg: PgCluster, redis: RedisServer | None = None, **settings: str
) -> Iterator[FaultDeployment]:
    """A fresh migrated database in our own cluster, our Redis if given.

    Last-seen is written on every session check (more writes under fault) and the per-address
    sign-up limit is lifted (the load signs up many accounts from one address).
    """
    url = pg.create_database()
    values: dict[str, str | os.PathLike[str]] = {
        "THRESHOLD_DATABASE_URL": url,
        "THRESHOLD_DATA_DIR": tmp_dir / "data",
        "THRESHOLD_LOG_LEVEL": "warning",
        "THRESHOLD_RATE_LIMIT__SIGNUP_PER_IP": "100000",
        "THRESHOLD_SESSION__TOUCH_INTERVAL": "0",
        **settings,
    }
    if redis is not None:
        values["THRESHOLD_REDIS_URL"] = redis.url
        values["THRESHOLD_REDIS_KEY_PREFIX"] = new_redis_prefix("faults")
    deployment = Deployment(env=clean_env(**values), dir=tmp_dir)
    try:
        yield FaultDeployment(deployment=deployment, database_url=url)
    finally:
        deployment.stop()


@dataclass
class Running:
    """Two `threshold serve` processes of one deployment (a session made on one works on the other)."""

    deployment: FaultDeployment
    a: Server
    b: Server

    @property
    def servers(self) -> list[Server]:
        return [self.a, self.b]


def start_two(deployment: FaultDeployment) -> Running:
    """Start two servers at once (each takes seconds to import and start)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(lambda _: deployment.start(), range(2))
    return Running(deployment, a, b)


@pytest.fixture(scope="session")
def sql_sessions(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """PostgreSQL alone (sessions in SQL, cache invalidation by NOTIFY), shared by the session's tests."""
    pg_cluster.ensure_running()
    with fault_deployment(tmp_path_factory.mktemp("sql-sessions"), pg_cluster) as deployment:
        yield start_two(deployment)


@pytest.fixture(scope="session")
def redis_sessions(
    pg_cluster: PgCluster, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """PostgreSQL + Redis (sessions and cache invalidation in Redis), shared by the session's tests."""
    pg_cluster.ensure_running()
    redis_server.ensure_running()
    with fault_deployment(tmp_path_factory.mktemp("redis-sessions"), pg_cluster, redis_server) as deployment:
        yield start_two(deployment)


# --- Load ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    op: str
    started: float
    ended: float
    status: int | None = None  # None: no HTTP answer (transport error or exception, see `error`)
    code: str | None = None
    retry_after: str | None = None
    content_type: str = ""
    error: str = ""
    email: str = ""
    session: str | None = None  # the session cookie a sign-up or login handed out

    def describe(self) -> str:
        answer = f"{self.status} {self.code or ''}".strip() if self.status is not None else self.error
        return f"{self.op} at {self.started:.2f}-{self.ended:.2f}: {answer} (retry-after={self.retry_after})"


def record(
    op: str, call: Callable[[], httpx.Response], *, email: str = ""
) -> tuple[Outcome, httpx.Response | None]:
    started = time.monotonic()
    try:
        response = call()
    except Exception as exc:  # transport errors, and anything else: it is judged, not raised in a thread
        return Outcome(op=op, started=started, ended=time.monotonic(), error=repr(exc), email=email), None
    outcome = Outcome(
        op=op,
        started=started,
        ended=time.monotonic(),
        status=response.status_code,
        retry_after=response.headers.get("retry-after"),
        content_type=response.headers.get("content-type", ""),
        email=email,
    )
    if outcome.content_type.startswith(PROBLEM_TYPE):
        with contextlib.suppress(ValueError):
            outcome.code = response.json().get("code")
    return outcome, response


@dataclass
class Account:
    email: str
    session: str  # a session cookie value


def sign_up(http: httpx.Client, server: Server) -> Account:
    browser = Browser(http)
    email = unique_email("fault")
    response = browser.signup(server, email)
    assert response.status_code == 201, response.text
    assert browser.session
    return Account(email, browser.session)


def check_session(http: httpx.Client, server: Server, session: str) -> httpx.Response:
    return Browser(http, cookies={SESSION_COOKIE: session}).get(server, "/api/v1/session")


def log_out(http: httpx.Client, server: Server, session: str) -> httpx.Response:
    return Browser(http, cookies={SESSION_COOKIE: session}).post(server, "/api/v1/logout")


# Which statuses each operation may answer besides a well-formed 503.
EXPECTED = {
    "session_valid": {200},
    "session_revoked": {401},
    "login": {200},
    "signup": {201},
    "readyz": {200},
    "logout": {204},
    "revoke": {204},
}


@dataclass
class Load:
    """Threads sending a mix of requests until stopped; every answer is recorded."""

    servers: list[Server]
    valid: list[Account]  # sessions that must never be refused while the service answers
    revoked: list[str]  # session cookies revoked before the load: never accepted again
    threads: int = 6
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    in_flight: dict[int, tuple[str, float]] = field(default_factory=dict)  # thread -> (op, started)

    OPS = ("session_valid", "signup", "session_revoked", "login", "session_valid")

    def start(self) -> Load:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=30)
            assert not thread.is_alive(), f"{thread.name} did not stop"
        return self.outcomes

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, index: int) -> None:
        step = index
        with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
            while not self._stop.is_set():
                server = self.servers[step % len(self.servers)]
                op = self.OPS[step % len(self.OPS)]
                step += 1
                self.in_flight[index] = (op, time.monotonic())
                outcome = self._one(http, server, op, step)
                del self.in_flight[index]
                with self._lock:
                    self.outcomes.append(outcome)

    def wait_for_answers(self, op: str, status: int, count: int, *, timeout: float = 30) -> None:
        """Until `count` requests of `op` have been answered with `status`."""

        def enough() -> bool:
            with self._lock:
                return sum(o.op == op and o.status == status for o in self.outcomes) >= count

        wait_for(enough, timeout, f"{count} answers {status} to {op}")

    def wait_for_in_flight(self, ops: set[str], *, older_than: float = 0.02, timeout: float = 10) -> None:
        """Until a request of one of `ops` has been on its way for `older_than` seconds."""

        def busy() -> bool:
            now = time.monotonic()
            return any(op in ops and now - t >= older_than for op, t in list(self.in_flight.values()))

        wait_for(busy, timeout, f"a request of {sorted(ops)} in flight", interval=0.005)

    def _one(self, http: httpx.Client, server: Server, op: str, step: int) -> Outcome:
        if op == "session_valid":
            account = self.valid[step % len(self.valid)]
            return record(op, lambda: check_session(http, server, account.session), email=account.email)[0]
        if op == "session_revoked":
            session = self.revoked[step % len(self.revoked)]
            return record(op, lambda: check_session(http, server, session))[0]
        browser = Browser(http)
        if op == "login":
            account = self.valid[step % len(self.valid)]
            outcome, _ = record(op, lambda: browser.login(server, account.email), email=account.email)
        else:
            email = unique_email("load")
            outcome, _ = record(op, lambda: browser.signup(server, email), email=email)
        outcome.session = browser.session
        return outcome


def problems(outcome: Outcome) -> list[str]:
    """What is wrong with one answer (nothing when it is correct or a well-formed 503)."""
    if outcome.status is None:
        return [f"no answer: {outcome.describe()}"]
    if outcome.status in EXPECTED[outcome.op]:
        if outcome.op == "session_revoked" and outcome.code != "not_authenticated":
            return [f"401 without code not_authenticated: {outcome.describe()}"]
        return []
    if outcome.status == 503:
        wrong = []
        if outcome.op != "readyz" and not outcome.content_type.startswith(PROBLEM_TYPE):
            wrong.append(f"503 not problem+json ({outcome.content_type})")
        if outcome.op != "readyz" and outcome.code != UNAVAILABLE_CODE:
            wrong.append(f"503 with code {outcome.code!r}")
        if not (outcome.retry_after or "").isdigit() or int(outcome.retry_after or "0") < 1:
            wrong.append("503 without a Retry-After of at least 1 second")
        return [f"{w}: {outcome.describe()}" for w in wrong]
    if outcome.op == "session_valid" and outcome.status == 401:
        return [f"false 'logged out' for a valid session: {outcome.describe()}"]
    if outcome.op == "session_revoked" and outcome.status == 200:
        return [f"false 'valid' for a revoked session: {outcome.describe()}"]
    return [f"unexpected answer: {outcome.describe()}"]


def violations(
    outcomes: list[Outcome], *, transport_ok: Callable[[Outcome], bool] | None = None
) -> list[str]:
    found: list[str] = []
    for outcome in outcomes:
        if outcome.status is None and transport_ok is not None and transport_ok(outcome):
            continue
        found.extend(problems(outcome))
    return found


def logs(servers: Sequence[Server], size: int = 6000) -> str:
    """For a failure message: what each server's 503s met (web.errors logs each cause), then the end
    of its log."""
    parts = []
    for server in servers:
        text = server.output()
        causes = [line for line in text.splitlines() if "503 on " in line][-20:]
        parts.append(f"\n--- 503 causes at {server.base_url} ---\n" + "\n".join(causes))
        parts.append(f"\n--- log of {server.base_url} ---\n{text[-size:]}")
    return "".join(parts)


def assert_no_violations(
    outcomes: list[Outcome],
    servers: Sequence[Server] = (),
    *,
    transport_ok: Callable[[Outcome], bool] | None = None,
) -> None:
    found = violations(outcomes, transport_ok=transport_ok)
    if found:
        shown = "\n".join(found[:40])
        raise AssertionError(f"{len(found)} wrong answer(s) of {len(outcomes)}:\n{shown}{logs(servers)}")


@dataclass
class Prober:
    """Polls /readyz from its own thread, recording each answer."""

    servers: list[Server]
    interval: float = 0.1
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Prober:
        self._thread = threading.Thread(target=self._run, name="readyz", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
            while not self._stop.is_set():
                for server in self.servers:
                    outcome, _ = record("readyz", functools.partial(http.get, server.base_url + "/readyz"))
                    self.outcomes.append(outcome)
                self._stop.wait(self.interval)


def ready(server: Server) -> bool:
    try:
        return httpx.get(server.base_url + "/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def between(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    """The outcomes of requests sent and answered entirely within [start, end]."""
    return [o for o in outcomes if o.started >= start and o.ended <= end]


def assert_can_log_in(http: httpx.Client, server: Server, email: str, password: str = STRONG_PASSWORD) -> str:
    browser = Browser(http)
    response = browser.login(server, email, password)
    assert response.status_code == 200, (email, response.text)
    assert browser.session
    return browser.session
