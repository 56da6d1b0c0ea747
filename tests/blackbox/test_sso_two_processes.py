"""Enterprise sign-in between two real Threshold processes: one is Acme's identity provider (an OpenID
Provider like any other), the other the service Acme's people sign in to. Set up only with the CLI, as
operators would, and walked over HTTP by a browser that keeps one cookie jar per host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.blackbox.conftest import SESSION_COOKIE, Browser
from tests.conftest import STRONG_PASSWORD
from tests.support import Deployment, Server, make_deployment

pytestmark = pytest.mark.slow


@dataclass
class Pair:
    idp: Server
    idp_deployment: Deployment
    sp: Server
    sp_deployment: Deployment
    connection: dict[str, Any]


def cli_json(deployment: Deployment, *args: str, stdin: str | None = None) -> Any:
    result = deployment.cli(*args, "--json", stdin=stdin)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with (
        make_deployment(tmp_path_factory.mktemp("idp"), "sqlite", tag="idp") as idp_deployment,
        make_deployment(tmp_path_factory.mktemp("sp"), "postgres+redis", tag="sp") as sp_deployment,
    ):
        idp = idp_deployment.start(issuer=lambda port: f"http://localhost:{port}")
        sp = sp_deployment.start()
        for deployment, server in ((idp_deployment, idp), (sp_deployment, sp)):
            deployment.env["THRESHOLD_ISSUER"] = server.url  # the CLI prints URLs under the same issuer
        for email in ("alice@acme.test", "victim@bank.test"):
            result = idp_deployment.cli(
                "users",
                "create",
                "--email",
                email,
                "--password-stdin",
                "--verified",
                stdin=STRONG_PASSWORD + "\n",
            )
            assert result.returncode == 0, result.stderr
        client = cli_json(
            idp_deployment,
            "clients", "create", "--name", "Service", "--first-party",
            "--redirect-uri", f"{sp.url}/sso/oidc/callback",
            "--scope", "openid", "--scope", "email", "--scope", "profile",
        )  # fmt: skip
        cli_json(sp_deployment, "orgs", "create", "--name", "Acme", "--slug", "acme")
        cli_json(sp_deployment, "orgs", "domains", "add", "acme", "acme.test")
        cli_json(sp_deployment, "orgs", "domains", "verify", "acme", "acme.test", "--trust")
        connection = cli_json(
            sp_deployment,
            "orgs", "connections", "add", "acme", "--type", "oidc",
            "--issuer", idp.url, "--client-id", client["client_id"], "--client-secret-stdin",
            "--require-sso", "--role-group", "admins=admin",
            stdin=client["client_secret"] + "\n",
        )  # fmt: skip
        yield Pair(idp, idp_deployment, sp, sp_deployment, connection)


def test_the_cli_prints_the_connection_and_what_to_register_at_the_idp(pair: Pair) -> None:
    connection = pair.connection
    assert connection["type"] == "oidc"
    assert connection["issuer"] == pair.idp.url
    assert connection["redirect_uri"] == f"{pair.sp.url}/sso/oidc/callback"
    assert (
        connection["backchannel_logout_uri"]
        == f"{pair.sp.url}/sso/oidc/{connection['id']}/backchannel-logout"
    )
    assert connection["require_sso"] is True
    assert "client_secret" not in json.dumps(connection)  # sealed at rest, never printed back
    listed = cli_json(pair.sp_deployment, "orgs", "connections", "list", "acme")
    assert [c["id"] for c in listed] == [connection["id"]]


def test_a_person_signs_in_at_acmes_idp_and_lands_in_acme(pair: Pair, http: httpx.Client) -> None:
    at_sp, at_idp = Browser(http), Browser(http)

    # Home-realm discovery: the address goes to Acme's IdP; no password is looked at.
    at_sp.fetch_csrf(pair.sp)
    routed = at_sp.post(pair.sp, "/api/v1/login", {"email": "alice@acme.test", "password": "anything"})
    assert routed.status_code == 200
    assert routed.json()["status"] == "sso_required"
    start = urlsplit(routed.json()["redirect"])
    started = at_sp.get(pair.sp, f"{start.path}?{start.query}")
    assert started.status_code == 303, started.text[:300]
    authorize = urlsplit(started.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == pair.idp.url

    # At the IdP: Alice signs in there, and the IdP sends her back with a code.
    assert at_idp.login(pair.idp, "alice@acme.test").status_code == 200
    back = at_idp.get(pair.idp, f"{authorize.path}?{authorize.query}")
    assert back.status_code == 303, back.text[:300]
    callback = urlsplit(back.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == pair.connection["redirect_uri"]

    landed = at_sp.get(pair.sp, f"{callback.path}?{callback.query}")
    assert landed.status_code == 303, landed.text[:300]
    assert at_sp.session is not None
    session = at_sp.get(pair.sp, "/api/v1/session").json()
    assert session["user"]["email"] == "alice@acme.test"
    assert session["user"]["email_verified"] is True
    members = cli_json(pair.sp_deployment, "orgs", "members", "list", "acme")
    assert [(m["email"], m["role"]) for m in members] == [("alice@acme.test", "member")]


def test_an_address_outside_the_verified_domain_is_not_signed_in_by_acmes_idp(
    pair: Pair, http: httpx.Client
) -> None:
    """Acme's IdP asserts bank.test's address: Acme has not verified bank.test, so nothing happens."""
    at_sp, at_idp = Browser(http), Browser(http)
    started = at_sp.get(pair.sp, f"/sso/start?connection={pair.connection['id']}")
    assert started.status_code == 303
    authorize = urlsplit(started.headers["location"])
    assert at_idp.login(pair.idp, "victim@bank.test").status_code == 200
    callback = urlsplit(at_idp.get(pair.idp, f"{authorize.path}?{authorize.query}").headers["location"])
    refused = at_sp.get(pair.sp, f"{callback.path}?{callback.query}")
    assert refused.status_code == 400
    assert "reason: domain_not_verified" in refused.text
    assert SESSION_COOKIE not in at_sp.cookies


def test_saml_connection_from_a_metadata_file(pair: Pair, tmp_path: Path) -> None:
    from tests.support.saml_idp import Pysaml2Idp
    from threshold.saml import ServiceProvider

    placeholder = ServiceProvider(entity_id="https://sp.invalid/metadata", acs_url="https://sp.invalid/acs")
    metadata = tmp_path / "idp.xml"
    metadata.write_bytes(Pysaml2Idp(workdir=tmp_path, sp=placeholder).metadata_xml())
    cli_json(pair.sp_deployment, "orgs", "create", "--name", "Globex", "--slug", "globex")
    saml = cli_json(
        pair.sp_deployment,
        "orgs",
        "connections",
        "add",
        "globex",
        "--type",
        "saml",
        "--metadata-file",
        str(metadata),
    )
    base = f"{pair.sp.url}/sso/saml/{saml['id']}"
    assert (saml["type"], saml["acs_url"], saml["entity_id"], saml["metadata_url"]) == (
        "saml",
        f"{base}/acs",
        f"{base}/metadata",
        f"{base}/metadata",
    )
    with httpx.Client() as client:
        served = client.get(saml["metadata_url"].replace(pair.sp.url, pair.sp.base_url))
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/samlmetadata+xml")
    assert saml["acs_url"] in served.text

    bad = tmp_path / "bad.xml"
    bad.write_text("<not-metadata/>", encoding="utf-8")
    result = pair.sp_deployment.cli(
        "orgs", "connections", "add", "globex", "--type", "saml", "--metadata-file", str(bad)
    )
    assert result.returncode != 0
    assert "metadata" in result.stderr.lower()


def test_saml_connection_from_a_metadata_url(pair: Pair, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    from tests.support.saml_idp import Pysaml2Idp
    from threshold.saml import ServiceProvider

    placeholder = ServiceProvider(entity_id="https://sp.invalid/metadata", acs_url="https://sp.invalid/acs")
    idp = Pysaml2Idp(workdir=tmp_path, sp=placeholder, entity_id="https://idp.initech.test/metadata")
    site = tmp_path / "site"
    site.mkdir()
    (site / "metadata.xml").write_bytes(idp.metadata_xml())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        cli_json(pair.sp_deployment, "orgs", "create", "--name", "Initech", "--slug", "initech")
        saml = cli_json(
            pair.sp_deployment,
            "orgs", "connections", "add", "initech", "--type", "saml",
            "--metadata-url", f"{base}/metadata.xml", "--email-claim", "mail",
        )  # fmt: skip
        assert saml["idp_entity_id"] == "https://idp.initech.test/metadata"
        assert saml["claims"]["email"] == "mail"
        missing = pair.sp_deployment.cli(
            "orgs", "connections", "add", "initech", "--type", "saml", "--metadata-url", f"{base}/nothing.xml"
        )
        assert missing.returncode != 0
        assert "404" in missing.stderr
    finally:
        server.shutdown()


def test_a_domain_the_cli_verifies_routes_the_servers_next_sign_in_at_once(
    pair: Pair, http: httpx.Client
) -> None:
    """The server keeps domain claims in memory, the absence of one included (core.orgs.domain_cache).
    The CLI, another process, claims a domain and verifies it for an organization that requires SSO: the
    server's very next password sign-in for an address there goes to the IdP."""

    def signs_in_with_a_password() -> bool:
        browser = Browser(http)
        answer = browser.login(pair.sp, "dana@umbrella.test")
        assert answer.status_code == 200, answer.text
        return browser.session is not None

    created = pair.sp_deployment.cli(
        "users", "create", "--email", "dana@umbrella.test", "--password-stdin", "--verified",
        stdin=STRONG_PASSWORD + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert signs_in_with_a_password() and signs_in_with_a_password()  # the second from memory
    client = cli_json(
        pair.idp_deployment,
        "clients", "create", "--name", "Umbrella", "--first-party",
        "--redirect-uri", f"{pair.sp.url}/sso/oidc/callback", "--scope", "openid", "--scope", "email",
    )  # fmt: skip
    cli_json(pair.sp_deployment, "orgs", "create", "--name", "Umbrella", "--slug", "umbrella")
    cli_json(
        pair.sp_deployment,
        "orgs", "connections", "add", "umbrella", "--type", "oidc",
        "--issuer", pair.idp.url, "--client-id", client["client_id"],
        "--client-secret-stdin", "--require-sso",
        stdin=client["client_secret"] + "\n",
    )  # fmt: skip
    assert signs_in_with_a_password()  # no domain of the organization's yet
    cli_json(pair.sp_deployment, "orgs", "domains", "add", "umbrella", "umbrella.test")
    assert signs_in_with_a_password()  # claimed, not verified
    cli_json(pair.sp_deployment, "orgs", "domains", "verify", "umbrella", "umbrella.test", "--trust")
    routed = Browser(http).login(pair.sp, "dana@umbrella.test")
    assert routed.status_code == 200
    assert routed.json()["status"] == "sso_required"
    assert routed.json()["redirect"].startswith(f"{pair.sp.url}/sso/start?")
