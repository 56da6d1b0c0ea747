"""Which services a run needs and what happens without one; free ports; a clean environment; polling.

With CI=true, a test that needs PostgreSQL, Redis or Chromium fails when the service is missing;
elsewhere it is skipped with the reason. Outside a test (bench/) a missing service is `Unavailable`.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import NoReturn

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class Unavailable(RuntimeError):
    """A service a script needs is not there (in a test, `need` skips or fails instead)."""


def need(service: str, reason: str) -> NoReturn:
    """Skip (or, under CI, fail) the running test whose service is not answering."""
    message = f"{service} is not available: {reason}"
    if "PYTEST_CURRENT_TEST" not in os.environ:  # set by pytest for each test's setup, call and teardown
        raise Unavailable(message)
    import pytest

    if IN_CI:
        pytest.fail(message + " (CI=true: services are required)")
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**values: str | os.PathLike[str]) -> dict[str, str]:
    """This process's environment without any THRESHOLD_* variable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRESHOLD_")}
    env.update({k: str(v) for k, v in values.items()})
    return env


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll until predicate() is true; return the time it took (AssertionError after `timeout`)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start
