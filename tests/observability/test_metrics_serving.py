"""How /metrics is served by a real `threshold serve`: on the metrics address without the token (and
nothing else there), and with `--workers 2` as the sum of both workers, whichever one answers."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.blackbox.conftest import Browser
from tests.conftest import unique_email
from tests.observability.helpers import BEARER, TOKEN, Samples, assert_labels_bounded, parse, value
from tests.support import Deployment, Server, clean_env, free_port, make_deployment, run_cli, wait_for
from threshold.web.metrics import FLUSH_AFTER

CHECKS = "threshold_http_request_duration_seconds_count"


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


# --- the metrics address ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    port = free_port()
    with make_deployment(
        tmp_path_factory.mktemp("metrics-address"), "sqlite", THRESHOLD_METRICS_LISTEN=f"127.0.0.1:{port}"
    ) as deployment:
        # a public issuer: without a token, the service's own address does not serve /metrics
        yield deployment.start(issuer="https://auth.example.test"), f"http://127.0.0.1:{port}"


def test_the_metrics_address_serves_metrics_without_the_token(with_address: tuple[Server, str]) -> None:
    server, address = with_address
    for _ in range(3):
        assert httpx.get(server.base_url + "/api/v1/session", timeout=10).status_code == 401
    samples = scrape(address + "/metrics")
    assert value(samples, CHECKS, group="session_check", status="4xx") >= 3
    assert value(samples, "threshold_queue_depth", queue="mail") == 0
    assert value(samples, "threshold_invalidation_feed_up", feed="file") == 1
    assert_labels_bounded(samples)


def test_the_metrics_address_serves_nothing_else(with_address: tuple[Server, str]) -> None:
    server, address = with_address
    for method, path in (
        ("GET", "/healthz"),
        ("GET", "/api/v1/session"),
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/login"),
        ("POST", "/metrics"),
        ("GET", "/metrics/"),
    ):
        response = httpx.request(method, address + path, timeout=10)
        assert response.status_code == 404, (method, path, response.status_code)
        assert "threshold" not in response.text.lower()
    # and the service's own address still keeps /metrics to itself
    assert httpx.get(server.base_url + "/metrics", timeout=10).status_code == 404


def test_the_metrics_address_must_be_free_another_port_and_a_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    with make_deployment(tmp_path, "sqlite", THRESHOLD_METRICS_LISTEN=f"127.0.0.1:{port}") as deployment:
        same = deployment.cli("serve", "--port", str(port))
    assert same.returncode == 2, same.stderr
    assert "THRESHOLD_METRICS_LISTEN" in same.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        (tmp_path / "busy").mkdir()
        with make_deployment(tmp_path / "busy", "sqlite", THRESHOLD_METRICS_LISTEN=busy) as deployment:
            occupied = deployment.cli("serve", "--port", str(free_port()))
    assert occupied.returncode == 2, occupied.stderr
    assert f"THRESHOLD_METRICS_LISTEN={busy}" in occupied.stderr
    env = clean_env(THRESHOLD_DATA_DIR=tmp_path / "other", THRESHOLD_METRICS_LISTEN="9464")
    refused = run_cli("serve", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert "THRESHOLD_METRICS_LISTEN" in refused.stderr and "host:port" in refused.stderr


# --- two workers --------------------------------------------------------------------------------


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing's spawned children, not its resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if Path(f"/proc/{pid}").exists() and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def multiprocess_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [entry.split(b"=", 1)[1] for entry in environ if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert found, "the worker has no PROMETHEUS_MULTIPROC_DIR"
    return Path(found[0].decode())


def worker_samples(directory: Path, pid: int, scratch: Path) -> Samples:
    """What one worker alone has counted: its own files, added up on their own."""
    own = scratch / str(pid)
    own.mkdir(parents=True)
    for path in directory.glob(f"*_{pid}.db"):
        shutil.copy(path, own / path.name)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(own))  # type: ignore[no-untyped-call]
    return parse(generate_latest(registry).decode())


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, Server, str]]:
    port = free_port()
    with make_deployment(
        tmp_path_factory.mktemp("two-workers"),
        "postgres+redis",
        THRESHOLD_METRICS_LISTEN=f"127.0.0.1:{port}",
        THRESHOLD_METRICS_TOKEN=TOKEN,
        THRESHOLD_RATE_LIMIT__LOGIN_PER_IP="1000",
    ) as deployment:
        server = deployment.start(workers=2)
        wait_for(lambda: len(worker_pids(server.pid)) == 2, 30, "two workers")
        yield deployment, server, f"http://127.0.0.1:{port}"


def test_two_workers_add_up(two_workers: tuple[Deployment, Server, str], tmp_path: Path) -> None:
    _, server, address = two_workers
    pids = worker_pids(server.pid)
    directory = multiprocess_dir(pids[0])
    assert multiprocess_dir(pids[1]) == directory
    assert directory.stat().st_mode & 0o077 == 0, "the metrics directory is private to the service"

    # sign-ins and session checks on fresh connections: each lands on whichever worker accepts it
    with httpx.Client(timeout=30) as http:
        browser = Browser(http)
        email = unique_email("two-workers")
        assert browser.signup(server, email).status_code == 201

    def sign_in(_: int) -> int:
        with httpx.Client(timeout=30) as fresh:
            return Browser(fresh).login(server, email).status_code

    def check(_: int) -> int:
        return httpx.get(server.base_url + "/api/v1/session", timeout=30).status_code

    signed_in = "threshold_sign_ins_total"
    time.sleep(FLUSH_AFTER + 0.5)  # the sign-up's tallies are in the metrics
    before = scrape(address + "/metrics")
    shares_before = [worker_samples(directory, pid, tmp_path / "before") for pid in pids]
    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(sign_in, range(12))) == {200}
        sent = 0
        for round_ in range(10):  # until both workers have served some (the kernel picks the acceptor)
            assert set(pool.map(check, range(120))) == {401}
            sent += 120
            time.sleep(FLUSH_AFTER + 0.5)  # each worker adds its tallies within FLUSH_AFTER seconds
            shares = [worker_samples(directory, pid, tmp_path / str(round_)) for pid in pids]
            served = [
                value(now, CHECKS, group="session_check") - value(then, CHECKS, group="session_check")
                for now, then in zip(shares, shares_before, strict=True)
            ]
            if all(served):
                break
    assert all(count > 0 for count in served), served

    # the scrape is the sum of what each worker counted on its own
    after = scrape(address + "/metrics")
    assert sum(served) == sent
    assert value(after, CHECKS, group="session_check") - value(before, CHECKS, group="session_check") == sent
    assert value(after, signed_in, result="succeeded") - value(before, signed_in, result="succeeded") == 12
    sign_ins = [value(share, signed_in, result="succeeded") for share in shares]
    assert sum(sign_ins) == value(after, signed_in, result="succeeded")
    assert_labels_bounded(after)

    # the token on the service's own address gives the same sum
    main = scrape(server.base_url + "/metrics", BEARER)
    assert value(main, CHECKS, group="session_check") == value(after, CHECKS, group="session_check")


def test_two_workers_report_their_feed_and_the_queues(two_workers: tuple[Deployment, Server, str]) -> None:
    _, _, address = two_workers

    def both_feeds_up() -> bool:
        return value(scrape(address + "/metrics"), "threshold_invalidation_feed_up", feed="redis") == 1

    wait_for(both_feeds_up, 15, "both workers' invalidation feeds up")
    samples = scrape(address + "/metrics")
    for queue in ("mail", "logout"):
        assert ("threshold_queue_depth", frozenset({("queue", queue)})) in samples
        assert ("threshold_queue_oldest_age_seconds", frozenset({("queue", queue)})) in samples


def test_the_supervisor_removes_the_metrics_directory(tmp_path: Path) -> None:
    with make_deployment(tmp_path, "sqlite") as deployment:
        server = deployment.start(workers=2)
        wait_for(lambda: len(worker_pids(server.pid)) == 2, 30, "two workers")
        directory = multiprocess_dir(worker_pids(server.pid)[0])
        wait_for(lambda: any(directory.glob("*.db")), 10, "metrics files")
        server.stop()
        deadline = time.monotonic() + 10
        while directory.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not directory.exists()
