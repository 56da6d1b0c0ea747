"""The SCIM application is built on a process's first SCIM request, not at its start: scim2-server and its
models are a quarter of a server's start-up and most deployments never provision over SCIM. What must
hold: a server starts without them, its first SCIM requests (concurrent or not, the oversized one
included) are answered as any later one, and they share one application and one set of tokens with the
admin API."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.scim.conftest import ERROR_SCHEMA, ScimOrg, assert_scim_error
from tests.support.environment import clean_env
from threshold.scim import wiring
from threshold.web.scim import scim_for, scim_tokens_for

FIRST_REQUEST = textwrap.dedent(
    """
    import asyncio, sys
    import httpx
    from threshold.adapters.sql.migrate import upgrade
    from threshold.services import build_services
    from threshold.settings import Settings
    from threshold.web.app import create_app

    SCIM = ("scim2_server", "scim2_models")
    UNUSED_ON_SQLITE = ("asyncpg", "redis", "dns")  # adapters.stores, adapters.dns: loaded where used

    async def main() -> None:
        settings = Settings()
        services = build_services(settings)
        await upgrade(services.engine)
        app = create_app(settings, services=services)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=str(settings.issuer)) as http:
                assert (await http.get("/readyz")).status_code == 200
                print("after start:", [m for m in SCIM + UNUSED_ON_SQLITE if m in sys.modules])
                answer = await http.get("/scim/v2/Users")
                print("first request:", answer.status_code, answer.json()["schemas"])
                print("after it:", [m for m in SCIM if m in sys.modules])

    asyncio.run(main())
    """
)


def test_a_sqlite_server_starts_without_scim_or_unused_drivers_and_loads_scim_when_asked(
    tmp_path: Path,
) -> None:
    env = {
        **clean_env(),
        "THRESHOLD_DATA_DIR": str(tmp_path),
        "THRESHOLD_ISSUER": "http://127.0.0.1:8400",
    }
    result = subprocess.run(
        [sys.executable, "-c", FIRST_REQUEST],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "after start: []",
        f"first request: 401 ['{ERROR_SCHEMA}']",
        "after it: ['scim2_server', 'scim2_models']",
    ], result.stdout


async def test_concurrent_first_requests_build_one_application(
    scim: ScimOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    app: Any = scim.http.app  # type: ignore[attr-defined]
    assert getattr(app.state, "scim", None) is None  # the fixture made its token without building it
    builds: list[wiring.Scim] = []
    build = wiring.build_scim

    def counted(*args: Any, **kwargs: Any) -> wiring.Scim:
        built = build(*args, **kwargs)
        builds.append(built)
        return built

    monkeypatch.setattr(wiring, "build_scim", counted)
    created = await asyncio.gather(*(scim.create_user() for _ in range(8)))
    assert len({user["id"] for user in created}) == 8
    assert len(builds) == 1
    built = await scim_for(app)
    assert built is builds[0]
    assert built.tokens is scim_tokens_for(app)  # revoking through the admin API reaches the SCIM app
    listed = await scim.get("/Users")
    assert listed.status_code == 200 and listed.json()["totalResults"] == 8


async def test_an_oversized_first_request_gets_a_scim_error(scim: ScimOrg) -> None:
    limit: int = scim.services.settings.max_body_bytes
    response = await scim.request(
        "POST",
        "/Users",
        content=b"{" + b" " * limit + b"}",
        headers={"Content-Type": "application/scim+json"},
    )
    assert_scim_error(response, 413)
