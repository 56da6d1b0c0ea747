"""The replay cache of SAML assertion IDs holds under concurrent requests against a real server.

An identity provider's answer to no request (IdP-initiated, allowed on this connection) carries no flow
that a first use could consume: only the replay cache of assertion IDs stops it from signing in twice.
One such response posted many times at once must sign in exactly once; a check-then-set cache (seen?
no; verify; remember) would let several concurrent posts through.

The connection is set up as an operator would, with the CLI, against the server's issuer (so the ACS and
entity id the CLI prints are the ones the server checks the response against).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.blackbox.conftest import SESSION_COOKIE, parse_set_cookie
from tests.support import Backend, Deployment, Server, make_deployment, run_cli
from tests.support.saml_attacks import legit_spec, make_signing_key, mint_response
from tests.support.saml_idp import Pysaml2Idp
from threshold.saml import ServiceProvider, parse_idp_metadata

CONCURRENT = 8
ALICE = "alice@acme.test"


@dataclass
class Deployed:
    deployment: Deployment
    server: Server
    backend: str

    def cli(self, *args: str) -> dict[str, Any]:
        """`threshold ... --json` as the operator runs it, with the server's configuration (its issuer)."""
        result = run_cli(*args, "--json", env=self.server.env, cwd=self.deployment.dir)
        assert result.returncode == 0, f"threshold {' '.join(args)}: {result.stderr}"
        body: dict[str, Any] = json.loads(result.stdout)
        return body


@pytest.fixture(scope="module", params=["postgres+redis"])
def deployed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    backend: Backend = request.param
    with make_deployment(tmp_path_factory.mktemp("saml-race"), backend, tag="samlrace") as deployment:
        yield Deployed(deployment=deployment, server=deployment.start(), backend=backend)


def session_cookie_set(response: httpx.Response) -> bool:
    return any(
        parse_set_cookie(header)[0] == SESSION_COOKIE and parse_set_cookie(header)[1]
        for header in response.headers.get_list("set-cookie")
    )


async def test_one_unsolicited_response_posted_concurrently_signs_in_once(
    deployed: Deployed, tmp_path: Path
) -> None:
    key = make_signing_key("idp.acme.test")
    placeholder = ServiceProvider(entity_id="https://sp.invalid/metadata", acs_url="https://sp.invalid/acs")
    metadata_xml = Pysaml2Idp(workdir=tmp_path / "idp", sp=placeholder, key=key).metadata_xml()
    metadata_file = tmp_path / "idp-metadata.xml"
    metadata_file.write_bytes(metadata_xml)

    org = deployed.cli("orgs", "create", "--name", "Acme", "--slug", "acme")
    assert org["slug"] == "acme"

    def domain() -> dict[str, Any]:
        assert deployed.cli("orgs", "domains", "add", "acme", "acme.test")["verified"] is False
        return deployed.cli("orgs", "domains", "verify", "acme", "acme.test", "--trust")

    # The domain and the connection are independent of each other: set up side by side (it saves time).
    verified, connection = await asyncio.gather(
        asyncio.to_thread(domain),
        asyncio.to_thread(
            deployed.cli,
            "orgs", "connections", "add", "acme", "--type", "saml",
            "--metadata-file", str(metadata_file), "--allow-idp-initiated",
        ),
    )  # fmt: skip
    assert verified["verified"] is True
    base = f"{deployed.server.url}/sso/saml/{connection['id']}"
    assert (connection["type"], connection["allow_idp_initiated"]) == ("saml", True)
    assert (connection["acs_url"], connection["entity_id"]) == (f"{base}/acs", f"{base}/metadata")
    assert connection["metadata_url"] == f"{base}/metadata"

    sp = ServiceProvider(entity_id=connection["entity_id"], acs_url=connection["acs_url"])
    spec = legit_spec(sp=sp, idp=parse_idp_metadata(metadata_xml), request_id=None, now=time.time())
    response = mint_response(spec, key)  # a valid, signed answer to no request
    acs = f"{deployed.server.base_url}/sso/saml/{connection['id']}/acs"

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=CONCURRENT)) as http:
        answers = await asyncio.gather(
            *(http.post(acs, data={"SAMLResponse": response}) for _ in range(CONCURRENT))
        )

    outcomes = Counter(
        "signed_in"
        if a.status_code == 303 and session_cookie_set(a)
        else "replayed"
        if a.status_code == 400 and "(reason: replayed)" in a.text and not session_cookie_set(a)
        else f"{a.status_code}: {a.text[:200]}"
        for a in answers
    )
    assert outcomes == {"signed_in": 1, "replayed": CONCURRENT - 1}, (deployed.backend, outcomes)

    # And afterwards, once more, on its own: still refused.
    async with httpx.AsyncClient(timeout=30) as http:
        late = await http.post(acs, data={"SAMLResponse": response})
    assert late.status_code == 400 and "(reason: replayed)" in late.text, late.text[:400]
    assert not session_cookie_set(late)
