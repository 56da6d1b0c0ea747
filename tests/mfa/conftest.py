"""Fixtures of the second-factor suite: one fake clock per test, and an app whose services use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import clocked_client_factory
from tests.api.helpers import FakeClock
from tests.mfa.authenticator import SoftAuthenticator

__all__ = ["clocked_client_factory"]  # registered here so the suite shares the API suite's app builder


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app_factory(clocked_client_factory: Callable[..., Any], clock: FakeClock) -> Callable[..., Any]:
    """make(**settings_overrides) -> a browser client on an app that runs on this test's clock."""

    async def make(**overrides: Any) -> httpx.AsyncClient:
        result: httpx.AsyncClient = await clocked_client_factory(clock, **overrides)
        return result

    return make


@pytest.fixture
async def app(app_factory: Callable[..., Any]) -> httpx.AsyncClient:
    """The app with default settings, on the fake clock (use `browser(app)` for other browsers)."""
    result: httpx.AsyncClient = await app_factory()
    return result


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    """A device-bound platform authenticator for the test issuer (rp id auth.threshold.test)."""
    return SoftAuthenticator()
