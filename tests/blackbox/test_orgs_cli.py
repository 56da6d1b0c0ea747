"""`threshold orgs ...` as an operator runs it, with domains verified against a real DNS server on
loopback (dnslib): the contract's `--json` shapes, a TXT record that is not there yet, one published,
and DNS that does not answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STRONG_PASSWORD, unique_email
from tests.support import Deployment, make_deployment
from tests.support.dns import DnsServer
from tests.support.environment import free_port


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, dns: DnsServer) -> Iterator[Deployment]:
    settings = {"THRESHOLD_DNS__NAMESERVERS": json.dumps([dns.host]), "THRESHOLD_DNS__PORT": str(dns.port)}
    with make_deployment(tmp_path_factory.mktemp("orgs"), "sqlite", tag="orgs", **settings) as found:
        yield found


def run(deployment: Deployment, *args: str, stdin: str | None = None, expect: int = 0) -> Any:
    result = deployment.cli(*args, stdin=stdin)
    assert result.returncode == expect, (result.stdout, result.stderr)
    return json.loads(result.stdout) if expect == 0 and "--json" in args else result


def test_an_operator_creates_an_organization_adds_a_member_and_verifies_a_domain(
    deployment: Deployment, dns: DnsServer
) -> None:
    org = run(deployment, "orgs", "create", "--name", "Acme Corp", "--json")
    assert set(org) == {"id", "slug", "name"} and org["slug"] == "acme-corp"
    assert run(
        deployment, "orgs", "create", "--name", "Acme", "--slug", "acme-corp", expect=1
    ).stderr.startswith("threshold: slug_taken")

    email = unique_email("owner")
    run(deployment, "users", "create", "--email", email, "--password-stdin", stdin=STRONG_PASSWORD + "\n")
    member = run(deployment, "orgs", "members", "add", "acme-corp", email, "--role", "owner", "--json")
    assert member == {"org_id": org["id"], "user_id": member["user_id"], "email": email, "role": "owner"}
    listed = run(deployment, "orgs", "members", "list", org["id"], "--json")
    assert listed == [{"user_id": member["user_id"], "email": email, "role": "owner"}]

    claim = run(deployment, "orgs", "domains", "add", "acme-corp", "Acme-Corp.Example", "--json")
    assert claim["domain"] == "acme-corp.example" and claim["verified"] is False
    assert claim["txt_name"] == "_threshold-challenge.acme-corp.example"

    not_yet = run(deployment, "orgs", "domains", "verify", "acme-corp", "acme-corp.example", expect=1)
    assert not_yet.stderr.startswith("threshold: domain_not_verified"), not_yet.stderr
    dns.set_txt(claim["txt_name"], ["v=spf1 -all", "threshold-domain-verification=someone-elses"])
    assert (
        run(deployment, "orgs", "domains", "verify", "acme-corp", "acme-corp.example", expect=1).returncode
        == 1
    )
    dns.set_txt(claim["txt_name"], ["v=spf1 -all", claim["txt_value"]])
    verified = run(deployment, "orgs", "domains", "verify", "acme-corp", "acme-corp.example", "--json")
    assert verified["verified"] is True and verified["trusted"] is False

    other = run(deployment, "orgs", "create", "--name", "Other", "--json")
    taken = run(deployment, "orgs", "domains", "add", other["slug"], "acme-corp.example", expect=1)
    assert taken.stderr.startswith("threshold: domain_taken")
    trusted = run(deployment, "orgs", "domains", "add", other["slug"], "other.example", "--json")
    assert trusted["verified"] is False
    asserted = run(
        deployment, "orgs", "domains", "verify", other["slug"], "other.example", "--trust", "--json"
    )
    assert asserted["verified"] is True and asserted["trusted"] is True

    invited = run(
        deployment, "orgs", "invite", "acme-corp", "new.hire@example.com", "--role", "admin", "--json"
    )
    assert (
        invited["email"] == "new.hire@example.com"
        and invited["role"] == "admin"
        and invited["org_id"] == org["id"]
    )

    run(deployment, "orgs", "members", "remove", "acme-corp", email)
    assert run(deployment, "orgs", "members", "list", "acme-corp", "--json") == []
    missing = run(deployment, "orgs", "members", "add", "no-such-org", email, expect=1)
    assert missing.stderr.startswith("threshold: org_not_found")


def test_dns_that_does_not_answer_is_an_outage_not_a_no(tmp_path: Path) -> None:
    silent = free_port()  # nothing listens here
    settings = {
        "THRESHOLD_DNS__NAMESERVERS": json.dumps(["127.0.0.1"]),
        "THRESHOLD_DNS__PORT": str(silent),
        "THRESHOLD_DNS__TIMEOUT": "1",
    }
    with make_deployment(tmp_path, "sqlite", tag="orgs-dns", **settings) as deployment:
        run(deployment, "orgs", "create", "--name", "Quiet", "--json")
        run(deployment, "orgs", "domains", "add", "quiet", "quiet.example", "--json")
        answer = run(deployment, "orgs", "domains", "verify", "quiet", "quiet.example", expect=1)
        assert answer.stderr.startswith("threshold: temporarily_unavailable"), answer.stderr
        listed = run(deployment, "orgs", "domains", "list", "quiet", "--json")
        assert listed[0]["verified"] is False
