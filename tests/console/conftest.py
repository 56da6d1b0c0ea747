"""Fixtures of the console suite: one fake clock per test, an app on it, and an operator signed in at aal2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import clocked_client_factory
from tests.api.helpers import FakeClock
from tests.console.helpers import ConsoleUser, new_operator

__all__ = ["clocked_client_factory"]

WINDOW = 300
"""The re-authentication window of these tests (mfa.reauthentication_window)."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def app(clocked_client_factory: Callable[..., Any], clock: FakeClock) -> httpx.AsyncClient:
    result: httpx.AsyncClient = await clocked_client_factory(clock, mfa={"reauthentication_window": WINDOW})
    return result


@pytest.fixture
async def operator(app: httpx.AsyncClient, clock: FakeClock) -> ConsoleUser:
    return await new_operator(app, clock)
