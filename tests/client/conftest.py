"""One real `threshold serve` on SQLite for the client-library suite, driven over HTTP and the CLI.

The issuer is http://127.0.0.1:<port>; its access tokens (client_credentials, audience = issuer) are
what an application's TokenVerifier sees in production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support import Deployment, Server, make_deployment


@dataclass(frozen=True)
class ServiceClient:
    client_id: str
    client_secret: str


def register_service(deployment: Deployment, name: str, *scopes: str) -> ServiceClient:
    """`threshold clients create --grant-type client_credentials --json`, as an operator would."""
    args = ["clients", "create", "--name", name, "--grant-type", "client_credentials", "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    result = deployment.cli(*args)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["grant_types"] == ["client_credentials"]
    return ServiceClient(created["client_id"], created["client_secret"])


@dataclass
class Threshold:
    deployment: Deployment
    server: Server
    admin: ServiceClient
    """threshold:admin, for /admin/v1/keys."""
    service: ServiceClient
    """api:read, the service whose tokens the tests verify."""

    @property
    def issuer(self) -> str:
        return self.server.base_url

    def token(self, client: ServiceClient, scope: str | None = None) -> str:
        data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        response = httpx.post(
            f"{self.issuer}/oauth2/token",
            data=data,
            auth=(client.client_id, client.client_secret),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def rotate_keys(self, alg: str = "Ed25519") -> None:
        """`threshold keys rotate`, then make the running server pick the change up at once (it would
        within its 30 s reload interval anyway): /admin/v1/keys reloads the key ring."""
        result = self.deployment.cli("keys", "rotate", "--alg", alg)
        assert result.returncode == 0, result.stderr
        response = httpx.get(
            f"{self.issuer}/admin/v1/keys",
            headers={"Authorization": f"Bearer {self.token(self.admin)}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text

    def signing_keys(self) -> list[dict[str, str]]:
        response = httpx.get(
            f"{self.issuer}/admin/v1/keys",
            headers={"Authorization": f"Bearer {self.token(self.admin)}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        keys: list[dict[str, str]] = response.json()["keys"]
        return keys


@pytest.fixture(scope="package")
def threshold(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Threshold]:
    with make_deployment(tmp_path_factory.mktemp("client-lib"), "sqlite") as deployment:
        server = deployment.start()
        admin = register_service(deployment, "ops", "threshold:admin")
        yield Threshold(deployment, server, admin, register_service(deployment, "svc", "api:read"))
