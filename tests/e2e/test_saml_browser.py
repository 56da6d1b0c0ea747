"""A SAML sign-in walked in Chromium: the service (SP, `threshold serve` on 127.0.0.1) sends the browser to
a pysaml2 identity provider on another site (localhost), whose page posts the signed Response back to the
SP's ACS the way IdPs do (an auto-submitting form, a cross-site POST), and the person lands signed in.

What only a browser shows: the SP's flow cookie must come back on that cross-site POST (SameSite=None),
and the page chain after the ACS (its redirect, the account page) must not be stopped by a CSP or a
cookie rule.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import session_info
from tests.support import free_port, make_deployment, run_cli
from tests.support.saml_idp import Pysaml2Idp
from tests.support.threaded import ThreadedServer
from threshold.saml import ServiceProvider

pytestmark = pytest.mark.browser

PAT = "pat@initech.test"
STEP_SECONDS = 15


@dataclass
class SamlWorld:
    sp: Server
    idp_url: str


def _cli(sp: Server, *args: str) -> Any:
    result = run_cli(*args, "--json", env=sp.env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlWorld]:
    root = tmp_path_factory.mktemp("saml-e2e")
    idp_port = free_port()
    idp_base = f"http://localhost:{idp_port}"
    entity_id = f"{idp_base}/metadata"
    (root / "sp").mkdir()
    with make_deployment(root / "sp", "sqlite", THRESHOLD_LOG_LEVEL="info") as deployment:
        sp = deployment.start()
        _cli(sp, "orgs", "create", "--name", "Initech", "--slug", "initech")
        _cli(sp, "orgs", "domains", "add", "initech", "initech.test")
        _cli(sp, "orgs", "domains", "verify", "initech", "initech.test", "--trust")
        placeholder = ServiceProvider(
            entity_id="https://sp.invalid/metadata", acs_url="https://sp.invalid/acs"
        )
        draft = Pysaml2Idp(workdir=root / "draft", sp=placeholder, entity_id=entity_id, base_url=idp_base)
        metadata = root / "idp.xml"
        metadata.write_bytes(draft.metadata_xml())
        connection = _cli(
            sp, "orgs", "connections", "add", "initech", "--type", "saml", "--metadata-file", str(metadata)
        )
        idp = Pysaml2Idp(
            workdir=root / "idp",
            sp=ServiceProvider(entity_id=connection["entity_id"], acs_url=connection["acs_url"]),
            entity_id=entity_id,
            base_url=idp_base,
            key=draft.key,
        )

        async def single_sign_on(request: Request) -> Response:
            """The IdP's page after its own sign-in: the signed Response, posted by the browser."""
            answer = idp.respond(str(request.url), name_id=PAT, attributes={"email": [PAT]})
            fields = {"SAMLResponse": answer.saml_response_b64, "RelayState": answer.relay_state}
            inputs = "".join(
                f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
                for name, value in fields.items()
            )
            return HTMLResponse(
                "<!doctype html><title>Identity provider</title>"
                f'<form method="post" action="{html.escape(answer.acs_url)}">{inputs}'
                '<button id="continue">Continue</button></form>'
                "<script>document.forms[0].submit()</script>"
            )

        server = ThreadedServer(Starlette(routes=[Route("/sso/redirect", single_sign_on)]), port=idp_port)
        server.start()
        try:
            yield SamlWorld(sp=sp, idp_url=idp_base)
        finally:
            server.stop()


def test_a_person_signs_in_through_a_saml_idp_on_another_site(
    browser: Any, world: SamlWorld, shoot: Any
) -> None:
    context = browser.new_context()
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    trail: list[str] = []
    page.on("framenavigated", lambda frame: trail.append(frame.url) if frame == page.main_frame else None)
    try:
        page.goto(f"{world.sp.url}/sso/start?email={PAT}&next=/account")
        account = re.compile(rf"^{re.escape(world.sp.url)}/account(/passkey-upgrade\?.*)?$")
        deadline = time.monotonic() + STEP_SECONDS
        while not account.search(page.url):
            assert time.monotonic() < deadline, f"stopped at {page.url}; pages: {trail}; CSP: {violations}"
            page.wait_for_timeout(100)
        page.wait_for_load_state()
        assert any(url.startswith(f"{world.idp_url}/sso/redirect?SAMLRequest=") for url in trail), trail
        if "/account/passkey-upgrade" in page.url:
            page.get_by_role("button", name="Not now").click()
            page.wait_for_url(f"{world.sp.url}/account")
        shoot(page, "sp-signed-in")
        session = session_info(page)
        assert session["status"] == 200, session
        assert session["body"]["user"]["email"] == PAT
        assert session["body"]["user"]["email_verified"] is True  # the IdP is authoritative for initech.test
        assert not violations, violations
    finally:
        context.close()
