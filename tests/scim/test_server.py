"""SCIM against a real `threshold serve` per backend, its token made by the CLI (`threshold orgs
scim-token ORG --json`): scim2-tester's checks, and concurrent creations of one userName (exactly one
201, the others 409 uniqueness, and nothing left of the others)."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Path
from scim2_tester import Status, check_server

from tests.scim.conftest import ERROR_SCHEMA, SCIM_JSON, USER_SCHEMA
from tests.support import Deployment, Server, make_deployment, run_cli


@dataclass
class ScimServer:
    server: Server
    deployment: Deployment
    slug: str
    domain: str
    token: str
    base_url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_JSON}


def cli_json(server: Server, *args: str) -> Any:
    """The CLI of the deployment, answering as the server's issuer."""
    result = run_cli(*args, "--json", env=server.env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def scim_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScimServer]:
    backend: str = request.param
    with make_deployment(
        tmp_path_factory.mktemp("scim"), "sqlite" if backend == "sqlite" else "postgres+redis", tag="scim"
    ) as deployment:
        server = deployment.start()
        slug = f"acme-{secrets.token_hex(3)}"
        domain = f"{slug}.test"
        cli_json(server, "orgs", "create", "--name", "Acme", "--slug", slug)
        cli_json(server, "orgs", "domains", "add", slug, domain)
        cli_json(server, "orgs", "domains", "verify", slug, domain, "--trust")
        issued = cli_json(server, "orgs", "scim-token", slug, "--name", "tester")
        assert issued["token"].startswith("scim_") and issued["base_url"] == f"{server.url}/scim/v2"
        yield ScimServer(
            server=server,
            deployment=deployment,
            slug=slug,
            domain=domain,
            token=issued["token"],
            base_url=issued["base_url"],
        )


def test_the_cli_lists_and_revokes_tokens_and_a_revoked_token_stops_working(scim_server: ScimServer) -> None:
    issued = cli_json(scim_server.server, "orgs", "scim-token", scim_server.slug, "--name", "rollover")
    with httpx.Client(base_url=scim_server.base_url) as http:
        bearer = {"Authorization": f"Bearer {issued['token']}"}
        assert http.get("/Users", headers=bearer).status_code == 200
        listed = cli_json(scim_server.server, "orgs", "scim-tokens", "list", scim_server.slug)
        assert {t["name"] for t in listed} >= {"tester", "rollover"}
        assert all("token" not in t and "digest" not in t for t in listed)
        cli_json(scim_server.server, "orgs", "scim-tokens", "revoke", scim_server.slug, issued["id"])
        refused = http.get("/Users", headers=bearer)
        assert refused.status_code == 401 and refused.json()["schemas"] == [ERROR_SCHEMA]
        # the other live token (rollover: several at a time) still works
        assert http.get("/Users", headers={"Authorization": f"Bearer {scim_server.token}"}).status_code == 200


async def test_concurrent_creations_of_one_user_name_make_exactly_one(scim_server: ScimServer) -> None:
    address = f"race.{secrets.token_hex(3)}@{scim_server.domain}"
    body = {"schemas": [USER_SCHEMA], "userName": address, "emails": [{"value": address, "type": "work"}]}
    async with httpx.AsyncClient(base_url=scim_server.base_url, headers=scim_server.headers) as http:
        answers = await asyncio.gather(*(http.post("/Users", json=body) for _ in range(12)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] + [409] * 11, [a.text for a in answers]
        assert all(a.json().get("scimType") == "uniqueness" for a in answers if a.status_code == 409)
        found = await http.get("/Users", params={"filter": f'userName eq "{address}"'})
        assert found.json()["totalResults"] == 1


async def test_the_losers_of_a_user_name_race_leave_no_account_behind(scim_server: ScimServer) -> None:
    """One userName, several addresses at once: one creation wins, and the others, refused 409, leave
    neither an account nor a membership (the account, its membership and the resource are one
    transaction: all of it or none)."""
    name = f"race-{secrets.token_hex(3)}"
    addresses = [f"{name}.{n}@{scim_server.domain}" for n in range(10)]
    async with httpx.AsyncClient(base_url=scim_server.base_url, headers=scim_server.headers) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    "/Users",
                    json={
                        "schemas": [USER_SCHEMA],
                        "userName": name,
                        "emails": [{"value": a, "type": "work"}],
                    },
                )
                for a in addresses
            )
        )
    won = [a for a in answers if a.status_code == 201]
    assert len(won) == 1 and sorted(a.status_code for a in answers) == [201] + [409] * 9, [
        a.text for a in answers
    ]
    winner = won[0].json()["emails"][0]["value"]
    accounts = {u["email"] for u in cli_json(scim_server.server, "users", "list", "--limit", "100000")}
    assert [a for a in addresses if a in accounts] == [winner]
    members = {m["email"] for m in cli_json(scim_server.server, "orgs", "members", "list", scim_server.slug)}
    assert [a for a in addresses if a in members] == [winner]


class _Addresses(Sequence[str]):
    """A field's `examples` for scim2-tester that gives a fresh address at the organization's verified
    domain each time: Threshold provisions only such addresses (the tester's own are at random domains,
    which the server rightly refuses with 400 invalidValue)."""

    def __init__(self, domain: str) -> None:
        self.domain = domain

    def __len__(self) -> int:
        return 1_000_000

    def __getitem__(self, index: Any) -> Any:
        return f"{uuid.uuid4().hex}@{self.domain}"


def scim_client_for_tester(scim_server: ScimServer, http: httpx2.Client) -> SyncSCIMClient:
    client = SyncSCIMClient(http)
    client.discover()
    user_model = client.get_resource_model("User")
    assert user_model is not None
    for attribute in ("userName", "emails.value"):
        binding = Path[user_model](attribute).resolve()  # type: ignore[valid-type]
        assert binding is not None and binding.target_model is not None
        field = binding.target_model.model_fields[binding.target_field_name]
        field.examples = _Addresses(scim_server.domain)  # type: ignore[assignment]
    return client


def test_scim2_tester_checks_pass(scim_server: ScimServer) -> None:
    with httpx2.Client(
        base_url=scim_server.base_url, headers={"Authorization": f"Bearer {scim_server.token}"}
    ) as http:
        client = scim_client_for_tester(scim_server, http)
        results = check_server(client)
    failed = [
        (r.title, r.resource_type, r.status.name, r.reason)
        for r in results
        if r.status not in (Status.SUCCESS, Status.SKIPPED)
    ]
    assert results and not failed, "\n".join(map(str, failed))
    passed = {(r.title, r.resource_type) for r in results if r.status is Status.SUCCESS}
    for title in (
        "object_creation",
        "object_query",
        "object_replacement",
        "object_deletion",
        "check_add_attribute",
        "check_remove_attribute",
        "check_replace_attribute",
        "search_with_attributes",
    ):
        assert {(title, "User"), (title, "Group")} <= passed, title
