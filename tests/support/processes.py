"""Processes of a test or benchmark run: `threshold` commands, servers waited for until they answer,
stopped by process group, their log in every failure message; deployments that share a configuration."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.environment import clean_env, free_port, wait_for
from tests.support.storage import Backend, backend_env

THRESHOLD = str(Path(sys.executable).parent / "threshold")
CLI_TIMEOUT = 60
# How long a server or worker process may take to start: a bound, not a wait. Under the parallel test
# run, a process imports the whole service beside the other worker (and, for a replacement worker in
# tests/faults, beside its test's own Argon2id load): 30 s was too short there.
START_TIMEOUT = 90


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


# --- Any long-running process -----------------------------------------------------------------------


class StartFailed(AssertionError):
    """A process exited or did not answer in time (an AssertionError: a test shows it as a failure)."""


@dataclass
class Process:
    """A child in a process group of its own (so its own children are stopped with it), output in `log`."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_until_ready(
        self, url: str, timeout: float = START_TIMEOUT, what: str = "process", status: int = 200
    ) -> None:
        """Until GET `url` answers `status`; StartFailed with the log when it exits or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise StartFailed(f"{what} exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(url, timeout=2).status_code == status:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StartFailed(f"{what} not ready after {timeout}s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15) -> None:
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def spawn(
    argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Process:
    """Start `argv` in a new session, stdout and stderr appended to `log`."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(process=process, log=log)


# --- threshold serve --------------------------------------------------------------------------------


def loopback_issuer(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@dataclass
class Server(Process):
    """`threshold serve`: reached at `base_url` (loopback), answering as `url` (its issuer)."""

    port: int
    url: str
    env: dict[str, str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(
    env: Mapping[str, str],
    log_dir: Path,
    *,
    workers: int = 1,
    issuer: str | Callable[[int], str] = loopback_issuer,
    prefix: Sequence[str] = (),
    factory: str | None = None,
    ready_timeout: float = START_TIMEOUT,
) -> Server:
    """`threshold serve` on a free port, waiting until /readyz answers 200.

    `issuer` is the URL it answers as (by default its own loopback URL), or a function of its port;
    `prefix` goes before the command (e.g. `taskset -c 0`); `factory` ("module:function") is an app
    factory uvicorn serves instead, on the same configuration (one worker).
    """
    port = free_port()
    url = issuer(port) if callable(issuer) else issuer
    server_env = {**env, "THRESHOLD_ISSUER": url}
    if factory is None:
        argv = [*prefix, THRESHOLD, "serve", "--workers", str(workers)]
    else:
        argv = [*prefix, sys.executable, "-m", "uvicorn", "--factory", factory, "--log-level", "warning"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    child = spawn(argv, log=log_dir / f"server-{port}.log", env=server_env)
    server = Server(process=child.process, log=child.log, port=port, url=url, env=server_env)
    try:
        server.wait_until_ready(server.base_url + "/readyz", ready_timeout, what="server")
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class Deployment:
    """Shared configuration of every process of one service (servers and CLI)."""

    env: dict[str, str]
    dir: Path
    servers: list[Server] = field(default_factory=list)

    def start(
        self,
        *,
        workers: int = 1,
        issuer: str | Callable[[int], str] = loopback_issuer,
        prefix: Sequence[str] = (),
        factory: str | None = None,
    ) -> Server:
        server = start_server(
            self.env, self.dir, workers=workers, issuer=issuer, prefix=prefix, factory=factory
        )
        self.servers.append(server)
        return server

    def cli(
        self, *args: str, stdin: str | None = None, timeout: float = CLI_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env, stdin=stdin, cwd=self.dir, timeout=timeout)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def make_deployment(
    directory: Path, backend: Backend, *, tag: str = "test", **settings: str | os.PathLike[str]
) -> Iterator[Deployment]:
    """A deployment on `backend` with storage of its own, migrated by `threshold migrate`.

    `settings` are more THRESHOLD_* variables (the log level is `warning` unless they say otherwise).
    Its servers are stopped and its storage removed on exit.
    """
    with backend_env(backend, directory / "data", tag=tag) as values:
        deployment = Deployment(
            env=clean_env(**{"THRESHOLD_LOG_LEVEL": "warning", **values, **settings}), dir=directory
        )
        try:
            migrate(deployment.env, cwd=directory)
            yield deployment
        finally:
            deployment.stop()


# --- A Redis server of one's own --------------------------------------------------------------------


class RedisServer:
    """redis-server on a free port, no RDB snapshots; `durable`: an append-only file fsynced on every
    write, so that what it acknowledged survives a SIGKILL and a restart."""

    def __init__(self, binary: str, root: Path, *, durable: bool = True) -> None:
        self.binary = binary
        self.root = root
        self.durable = durable
        self.port = free_port()
        self.log = root / "redis.log"
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        assert not self.running()
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        if not self.durable:
            persistence = ["--appendonly", "no"]
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
            "--dir", str(self.root), "--daemonize", "no", "--protected-mode", "no",
        ]  # fmt: skip
        self.process = spawn(argv, log=self.log)
        try:
            wait_for(self.ping, 15, "redis-server answering PING")
        except AssertionError:
            self.kill()
            raise StartFailed(self.process.output()) from None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.running():
            self.process.process.send_signal(sig)
            self.process.process.wait(timeout=15)

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def ensure_running(self) -> None:
        if not self.running():
            self.start()
