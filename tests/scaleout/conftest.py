"""Two `threshold serve` processes of one deployment (PostgreSQL + Redis, or PostgreSQL alone), started
once per backend for the whole folder. They believe X-Forwarded-For from loopback, so that a test can
speak from many client addresses (as from behind a load balancer)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.blackbox.conftest import http
from tests.support import Backend, Deployment, Server, make_deployment

LIMITS = {
    "login_per_account_ip": 4,
    "login_per_account": 7,
    "login_per_ip": 9,
    "signup_per_ip": 1000,
    "window": 900,
}

__all__ = ["http"]  # the black-box suite's HTTP client fixture

_addresses = itertools.count(1)


def new_address() -> str:
    """A client address in a /24 network no other test of the run has used (so never a familiar one)."""
    n = next(_addresses)
    return f"10.{(n >> 8) & 255}.{n & 255}.7"


@dataclass
class Pair:
    deployment: Deployment
    a: Server
    b: Server
    backend: str


@pytest.fixture(scope="package", params=["postgres+redis", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    backend: Backend = request.param
    settings = {f"THRESHOLD_RATE_LIMIT__{name.upper()}": str(value) for name, value in LIMITS.items()}
    with make_deployment(
        tmp_path_factory.mktemp("scaleout"),
        backend,
        THRESHOLD_TRUSTED_PROXIES='["127.0.0.1/32"]',
        **settings,
    ) as deployment:
        with ThreadPoolExecutor(2) as pool:  # each start mostly waits for the new process's imports
            a, b = pool.map(lambda _: deployment.start(), range(2))
        yield Pair(deployment=deployment, a=a, b=b, backend=backend)
