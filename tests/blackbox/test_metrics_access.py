"""GET /metrics of the real server (issue 11, hole 10d): THRESHOLD_METRICS_TOKEN as an operator sets it,
and the default without it, on a public issuer and on a loopback one (`make run`)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import Deployment, Server, make_deployment, start_server
from tests.support.processes import loopback_issuer

pytestmark = pytest.mark.slow

TOKEN = "s3cret-metrics-token-0123456789"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with make_deployment(tmp_path_factory.mktemp("metrics"), "sqlite", tag="metrics") as made:
        yield made


def _start(deployment: Deployment, issuer: str | None = None, **settings: str) -> Server:
    env = {**deployment.env, **settings}
    server = start_server(env, deployment.dir, issuer=issuer or loopback_issuer)
    deployment.servers.append(server)
    return server


def _metrics(server: Server, authorization: str | None = None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return httpx.get(server.base_url + "/metrics", headers=headers, timeout=10)


def test_with_a_token_only_that_bearer_token_opens_the_metrics(deployment: Deployment) -> None:
    server = _start(deployment, THRESHOLD_METRICS_TOKEN=TOKEN)  # on a loopback issuer, still needed
    for refused in (None, "Bearer", "Bearer wrong", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN):
        response = _metrics(server, refused)
        assert response.status_code == 401, (refused, response.text)
        assert response.headers["www-authenticate"].startswith('Bearer realm="metrics"')
        assert "# TYPE" not in response.text
    opened = _metrics(server, f"Bearer {TOKEN}")
    assert opened.status_code == 200 and opened.headers["content-type"].startswith("text/plain")
    assert "# HELP " in opened.text and "# TYPE " in opened.text


def test_without_a_token_a_public_issuer_serves_none(deployment: Deployment) -> None:
    server = _start(deployment, issuer="https://auth.example.com")
    assert _metrics(server).status_code == 404
    assert _metrics(server, "Bearer anything").status_code == 404
    assert httpx.get(server.base_url + "/healthz", timeout=10).status_code == 200


def test_without_a_token_a_loopback_issuer_serves_them(deployment: Deployment) -> None:
    server = _start(deployment)  # http://127.0.0.1:<port>, as `make run` (http://localhost:8400)
    response = _metrics(server)
    assert response.status_code == 200 and "# TYPE " in response.text
