"""Fixtures of the API suite beyond tests/conftest.py: an app whose services run on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.api.helpers import USER_AGENT, FakeClock
from tests.conftest import ISSUER, _truncate_pg
from threshold.services import Services, build_services
from threshold.settings import Settings


@pytest.fixture
async def clocked_client_factory(
    backend: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Any]]:
    """make(clock, **settings_overrides) -> a browser client on an app whose services use `clock`."""
    from threshold.web.app import create_app

    built: list[tuple[httpx.AsyncClient, Services]] = []

    async def make(clock: FakeClock, **overrides: Any) -> httpx.AsyncClient:
        settings = make_settings(**overrides)
        services = build_services(settings, clock=clock)
        if backend != "sqlite" and not built:
            await _truncate_pg(services)
        app = create_app(settings, services=services)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
            base_url=ISSUER,
            headers={"user-agent": USER_AGENT},
        )
        client.app = app  # type: ignore[attr-defined]
        client.services = services  # type: ignore[attr-defined]
        built.append((client, services))
        return client

    yield make
    for client, services in built:
        await client.aclose()
        await services.close()
