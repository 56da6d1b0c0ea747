"""Fixtures of the OIDC suite: the app in-process on a fake clock, a browser and an RP back channel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from joserfc.jwk import Key, RSAKey

from tests.api.helpers import USER_AGENT, FakeClock
from tests.conftest import ISSUER, _truncate_pg
from tests.oidc.helpers import OP
from threshold.services import Services, build_services
from threshold.settings import Settings

_RSA_POOL: list[Any] = []  # cryptography RSA private keys


@pytest.fixture
def pooled_rsa_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """RSA key generation (about 50 ms a key, two per test) from a pool made once per run.

    Every key of one test is still distinct; only the material is reused by later tests, each of which
    has a database of its own.
    """
    from threshold.oidc import keys as keys_module

    real = keys_module.generate_jwk
    used = 0

    def generate(alg: str, kid: str) -> Key:
        nonlocal used
        if alg != "RS256":
            return real(alg, kid)
        if used == len(_RSA_POOL):
            _RSA_POOL.append(real(alg, "pool").raw_value)
        raw = _RSA_POOL[used]
        used += 1
        return RSAKey(raw, raw, {"kid": kid, "alg": alg, "use": "sig"})

    monkeypatch.setattr(keys_module, "generate_jwk", generate)


@pytest.fixture
async def op_factory(
    backend: str, make_settings: Callable[..., Settings], pooled_rsa_keys: None
) -> AsyncIterator[Callable[..., Any]]:
    """make(**settings_overrides) -> an OP (app, browser, back channel) on its own fake clock."""
    from threshold.web.app import create_app

    built: list[tuple[OP, Services]] = []

    async def make(**overrides: Any) -> OP:
        settings = make_settings(**overrides)
        clock = FakeClock()
        services = build_services(settings, clock=clock)
        if backend != "sqlite" and not built:
            await _truncate_pg(services)
        app = create_app(settings, services=services)
        await services.provider.keys.ensure_keys()  # what the lifespan does at start-up

        def new_client(ip: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=(ip, 50000)),
                base_url=ISSUER,
                headers={"user-agent": USER_AGENT},
            )

        op = OP(
            browser=new_client("203.0.113.7"),
            rp=new_client("198.51.100.20"),
            services=services,
            clock=clock,
            new_client=new_client,
        )
        built.append((op, services))
        return op

    yield make
    for op, services in built:
        await op.close()
        await services.close()


@pytest.fixture
async def op(op_factory: Callable[..., Awaitable[OP]]) -> OP:
    return await op_factory()
