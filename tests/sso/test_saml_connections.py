"""SAML connections end to end, in-process on both backends: the round trip through an independent
identity provider (pysaml2, signing with xmlsec1), every response of the attack corpus posted to the ACS
against a live flow, replays, IdP-initiated sign-ins, the linking rule, the SP metadata and single logout.

Each connection is its own service provider whose entity id and ACS contain the connection's id, so the
identity provider (which must know its SP) is built after the connection: its metadata depends only on
its key, entity id and endpoints, which are fixed for the module, so the connection is added with the
metadata of a draft of the same identity provider.
"""

from __future__ import annotations

import base64
import functools
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from tests.conftest import ISSUER, signup
from tests.sso.conftest import FLOW_COOKIE, SESSION_COOKIE, path_of
from tests.support import saml_attacks
from tests.support.saml_attacks import (
    ATTACKS,
    EVIL_NAME_ID,
    PASSWORD_PROTECTED,
    Attack,
    SigningKey,
    attack_corpus,
    legit_spec,
    make_signing_key,
    mint_response,
)
from tests.support.saml_idp import IdpAnswer, Pysaml2Idp
from threshold.core.accounts import OPERATOR
from threshold.core.models import User
from threshold.core.orgs.models import Organization, OrgRole
from threshold.core.secrets import new_id
from threshold.core.sso.models import Connection, Policy
from threshold.saml import IdpMetadata, ServiceProvider, parse_idp_metadata
from threshold.services import Services

pytestmark = pytest.mark.usefixtures("backend")

IDP_ENTITY_ID = "https://idp.acme.test/metadata"
IDP_BASE = "https://idp.acme.test"
MFA_CONTEXT = "https://refeds.org/profile/mfa"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
ALICE = "alice@acme.test"
ATTRIBUTES: Mapping[str, Sequence[str]] = {
    "email": [ALICE],
    "givenName": ["Alice"],
    "surname": ["Liddell"],
    "groups": ["engineering", "acme-admins"],
}
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


# --- the identity provider, its keys and the organization's connection ------------------------------


@dataclass(frozen=True)
class IdpSetup:
    """The identity provider's key and metadata, shared by the module (independent of any SP)."""

    key: SigningKey
    metadata_xml: str
    metadata: IdpMetadata


@pytest.fixture(scope="module")
def idp_setup(tmp_path_factory: pytest.TempPathFactory) -> IdpSetup:
    key = make_signing_key("idp.acme.test")
    placeholder = sp_of("draft")
    draft = Pysaml2Idp(
        workdir=tmp_path_factory.mktemp("saml-idp-draft"),
        sp=placeholder,
        entity_id=IDP_ENTITY_ID,
        base_url=IDP_BASE,
        key=key,
    )
    xml = draft.metadata_xml()
    return IdpSetup(key=key, metadata_xml=xml.decode(), metadata=parse_idp_metadata(xml))


def sp_of(connection_id: str) -> ServiceProvider:
    """The service provider a connection is, by the contract of DESIGN.md (not asked of the service)."""
    base = f"{ISSUER}/sso/saml/{connection_id}"
    return ServiceProvider(entity_id=f"{base}/metadata", acs_url=f"{base}/acs", slo_url=f"{base}/slo")


@dataclass(frozen=True)
class SamlOrg:
    org: Organization
    connection: Connection
    sp: ServiceProvider

    @property
    def acs(self) -> str:
        return path_of(self.sp.acs_url)


async def saml_org(
    services: Services,
    setup: IdpSetup,
    *,
    slug: str = "acme",
    domain: str | None = "acme.test",
    verified: bool = True,
    policy: Policy | None = None,
    allow_idp_initiated: bool = False,
) -> SamlOrg:
    """An organization with a domain (verified on the operator's word) and a SAML connection."""
    org = await services.orgs.create(name=slug.title(), slug=slug, context=OPERATOR)
    if domain:
        await services.orgs.add_domain(org, domain, context=OPERATOR)
        if verified:
            await services.orgs.verify_domain(org, domain, trust=True, context=OPERATOR)
    connection = await services.sso.connections.add_saml(
        org,
        name=f"{slug} IdP",
        metadata_xml=setup.metadata_xml,
        policy=policy or Policy(),
        allow_idp_initiated=allow_idp_initiated,
        context=OPERATOR,
    )
    return SamlOrg(org=org, connection=connection, sp=sp_of(connection.id))


def pysaml2_for(acme: SamlOrg, setup: IdpSetup, workdir: Path) -> Pysaml2Idp:
    """The identity provider of the draft's metadata, now trusting the connection's SP."""
    return Pysaml2Idp(
        workdir=workdir / acme.connection.id,
        sp=acme.sp,
        entity_id=IDP_ENTITY_ID,
        base_url=IDP_BASE,
        key=setup.key,
    )


# --- the browser's side ------------------------------------------------------------------------------


def services_of(client: httpx.AsyncClient) -> Services:
    svc: Services = client.services  # type: ignore[attr-defined]
    return svc


def redirect_message(url: str, parameter: str = "SAMLRequest") -> etree._Element:
    """The SAML message an HTTP-Redirect URL carries (base64 of raw DEFLATE), parsed without DTDs."""
    value = parse_qs(urlsplit(url).query)[parameter][0]
    return etree.fromstring(zlib.decompress(base64.b64decode(value), -15), SAFE_XML)


@dataclass(frozen=True)
class Flow:
    """A sign-in started at the SP: the AuthnRequest redirect, its ID and the RelayState."""

    location: str
    request_id: str
    relay_state: str


async def start(client: httpx.AsyncClient, path: str = f"/sso/start?email={ALICE}") -> Flow:
    started = await client.get(path)
    assert started.status_code == 303, started.text[:400]
    assert FLOW_COOKIE in client.cookies
    location = started.headers["location"]
    assert location.startswith(f"{IDP_BASE}/sso/redirect?")
    request = redirect_message(location)
    assert request.tag == "{urn:oasis:names:tc:SAML:2.0:protocol}AuthnRequest"
    relay_state = parse_qs(urlsplit(location).query)["RelayState"][0]
    return Flow(location=location, request_id=str(request.get("ID")), relay_state=relay_state)


async def post_acs(
    client: httpx.AsyncClient, acme: SamlOrg, response_b64: str, relay_state: str | None
) -> httpx.Response:
    form = {"SAMLResponse": response_b64}
    if relay_state is not None:
        form["RelayState"] = relay_state
    return await client.post(acme.acs, data=form)


async def through_pysaml2(
    client: httpx.AsyncClient,
    idp: Pysaml2Idp,
    acme: SamlOrg,
    *,
    start_path: str = f"/sso/start?email={ALICE}",
    name_id: str = ALICE,
    attributes: Mapping[str, Sequence[str]] = ATTRIBUTES,
    authn_context_class: str = PASSWORD_PROTECTED,
) -> tuple[httpx.Response, IdpAnswer]:
    """Start at the SP, sign in at pysaml2's IdP, post its answer to the ACS: (the SP's answer, the IdP's)."""
    flow = await start(client, start_path)
    answer = idp.respond(
        flow.location, name_id=name_id, attributes=attributes, authn_context_class=authn_context_class
    )
    assert answer.in_response_to == flow.request_id
    assert answer.acs_url == acme.sp.acs_url  # pysaml2 checked our AuthnRequest against our SP metadata
    assert answer.relay_state == flow.relay_state
    return await post_acs(client, acme, answer.saml_response_b64, answer.relay_state), answer


def unsolicited(setup: IdpSetup, acme: SamlOrg) -> str:
    """A valid, signed response to no request (IdP-initiated), minted with the identity provider's key."""
    spec = legit_spec(sp=acme.sp, idp=setup.metadata, request_id=None, now=time.time())
    return mint_response(spec, setup.key)


@functools.cache
def _attacker_key(common_name: str, **options: Any) -> SigningKey:
    return make_signing_key(common_name, **options)


def the_attack(setup: IdpSetup, acme: SamlOrg, flow: Flow, name: str) -> Attack:
    """The corpus's attack `name` on this flow's request (the attacker's throwaway key is made once per
    run rather than once per corpus: an RSA key takes longer to generate than the whole corpus)."""
    assert isinstance(setup.key.key, rsa.RSAPrivateKey)
    with mock.patch.object(saml_attacks, "make_signing_key", _attacker_key):
        corpus = attack_corpus(
            idp_key=setup.key.key,
            idp_cert_pem=setup.key.cert_pem,
            sp=acme.sp,
            idp=setup.metadata,
            request_id=flow.request_id,
            now=time.time(),
        )
    return next(attack for attack in corpus if attack.name == name)


def refused(response: httpx.Response, reason: str | None = None) -> None:
    assert response.status_code == 400, response.text[:400]
    if reason is not None:
        assert f"(reason: {reason})" in response.text, response.text[:1200]
    assert SESSION_COOKIE not in response.cookies
    assert not any(SESSION_COOKIE in h for h in response.headers.get_list("set-cookie"))


async def session_of(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/session")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def audit_kinds(services: Services, user_id: str) -> list[str]:
    return [e.kind.value for e in await services.audit_log.list_for_user(user_id)]


async def existing_account(services: Services, email: str) -> User:
    """An account that exists before any SSO (added directly: no password, no session)."""
    user = User(
        id=new_id(),
        email=email,
        email_normalized=email,
        email_verified=True,
        disabled=False,
        created_at=time.time(),
    )
    await services.users.add(user, None)
    return user


# --- the round trip ----------------------------------------------------------------------------------


async def test_a_person_signs_in_at_the_saml_idp_and_lands_in_the_organization(
    client: httpx.AsyncClient, idp_setup: IdpSetup, tmp_path: Path
) -> None:
    services = services_of(client)
    acme = await saml_org(services, idp_setup, policy=Policy(role_groups={"acme-admins": "admin"}))
    idp = pysaml2_for(acme, idp_setup, tmp_path)

    back, answer = await through_pysaml2(
        client,
        idp,
        acme,
        start_path=f"/sso/start?email={ALICE}&next=/account",
        authn_context_class=MFA_CONTEXT,
    )

    assert back.status_code == 303, back.text[:600]
    assert SESSION_COOKIE in back.cookies
    assert "/account" in back.headers["location"]
    body = await session_of(client)
    assert body["user"]["email"] == ALICE
    assert body["user"]["email_verified"] is True
    assert body["session"]["aal"] == "aal2"  # the IdP's authentication context says MFA
    assert "mfa" in body["session"]["amr"]
    user = await services.users.get_by_email(ALICE)
    assert user is not None
    memberships = await services.orgs.memberships(user)
    assert [(m.org_id, m.role) for m in memberships] == [(acme.org.id, OrgRole.ADMIN)]
    [record] = await services.sessions.list_sessions(user.id)
    assert (record.org_id, record.connection_id) == (acme.org.id, acme.connection.id)
    assert record.upstream_acr == MFA_CONTEXT
    assert "mfa" in record.upstream_amr
    assert "sso_user_provisioned" in await audit_kinds(services, user.id)
    assert answer.session_index

    # The second time, the linked NameID decides; a password-only context is passed through as it is.
    client.cookies.clear()
    again, _ = await through_pysaml2(client, idp, acme, authn_context_class=PASSWORD_PROTECTED)
    assert again.status_code == 303, again.text[:600]
    second = await session_of(client)
    assert second["user"]["id"] == user.id
    assert second["session"]["aal"] == "aal1"
    records = await services.sessions.list_sessions(user.id)
    assert sorted(r.upstream_acr or "" for r in records) == sorted([MFA_CONTEXT, PASSWORD_PROTECTED])
    assert len(await services.orgs.members(acme.org)) == 1


# --- the attack corpus -------------------------------------------------------------------------------


def attack_params() -> list[Any]:
    return [
        pytest.param(
            name,
            reason,
            id=name,
        )
        for name, reason in ATTACKS
    ]


@pytest.mark.parametrize(("name", "reason"), attack_params())
async def test_every_attack_response_is_refused_with_its_reason_and_no_session(
    client: httpx.AsyncClient, idp_setup: IdpSetup, name: str, reason: str
) -> None:
    """Each attack against a live flow of its own (the corpus answers that flow's request)."""
    services = services_of(client)
    acme = await saml_org(services, idp_setup)
    # The wrapping attacks name this existing account: a forged assertion would sign it in (link).
    victim = await existing_account(services, EVIL_NAME_ID)
    flow = await start(client)
    attack = the_attack(idp_setup, acme, flow, name)
    assert attack.reason == reason

    response = await post_acs(client, acme, attack.response_b64, flow.relay_state)

    refused(response, reason)
    assert [u.id for u in await services.users.list()] == [victim.id]  # no account was provisioned
    assert await services.orgs.members(acme.org) == []
    assert await services.sessions.list_sessions(victim.id) == []
    assert await services.orgs.memberships(victim) == []


async def test_after_every_attack_the_legitimate_sign_in_still_works(
    client: httpx.AsyncClient, idp_setup: IdpSetup, tmp_path: Path
) -> None:
    """All attacks against one deployment, each with its own flow, then a real sign-in: nothing the
    attacks did (flows used, audit, caches) stands in the way of the person they imitated."""
    services = services_of(client)
    acme = await saml_org(services, idp_setup)
    victim = await existing_account(services, EVIL_NAME_ID)
    for name, reason in ATTACKS:
        flow = await start(client)
        attack = the_attack(idp_setup, acme, flow, name)
        response = await post_acs(client, acme, attack.response_b64, flow.relay_state)
        refused(response, reason)
    assert [u.id for u in await services.users.list()] == [victim.id]
    assert await services.sessions.list_sessions(victim.id) == []
    assert await services.orgs.members(acme.org) == []
    assert (await client.get("/api/v1/session")).status_code == 401

    back, _ = await through_pysaml2(client, pysaml2_for(acme, idp_setup, tmp_path), acme)
    assert back.status_code == 303, back.text[:600]
    assert (await session_of(client))["user"]["email"] == ALICE


# --- replay and IdP-initiated sign-in -------------------------------------------------------------------


async def test_a_response_is_used_once(
    client: httpx.AsyncClient, idp_setup: IdpSetup, tmp_path: Path
) -> None:
    services = services_of(client)
    acme = await saml_org(services, idp_setup)
    idp = pysaml2_for(acme, idp_setup, tmp_path)
    first = await start(client)
    answer = idp.respond(first.location, name_id=ALICE, attributes=ATTRIBUTES)
    # Another browser (no flow cookie) cannot finish this flow: a login CSRF or a stolen response fails
    # there, and leaves the flow to the browser that started it.
    async with httpx.AsyncClient(transport=client._transport, base_url=client.base_url) as other:
        stolen = await post_acs(other, acme, answer.saml_response_b64, answer.relay_state)
    refused(stolen)
    assert "started in another browser" in stolen.text
    binding = client.cookies[FLOW_COOKIE]
    assert (await post_acs(client, acme, answer.saml_response_b64, answer.relay_state)).status_code == 303
    alice = await services.users.get_by_email(ALICE)
    assert alice is not None

    # Posted again by the same browser (signed out, its flow cookie put back): the flow is used up.
    client.cookies.delete(SESSION_COOKIE)
    assert FLOW_COOKIE not in client.cookies  # the sign-in ended the flow
    client.cookies.set(FLOW_COOKIE, binding, domain=urlsplit(ISSUER).hostname or "")
    again = await post_acs(client, acme, answer.saml_response_b64, answer.relay_state)
    refused(again)
    assert "started in another browser" in again.text
    # With a flow of its own, it answers another request than the new one.
    second = await start(client)
    refused(
        await post_acs(client, acme, answer.saml_response_b64, second.relay_state), "in_response_to_mismatch"
    )
    # As if IdP-initiated (no RelayState), on a connection that does not accept that.
    refused(await post_acs(client, acme, answer.saml_response_b64, None), "unsolicited")
    assert len(await services.sessions.list_sessions(alice.id)) == 1


async def test_an_idp_initiated_response_is_accepted_once_when_the_connection_allows_it(
    client: httpx.AsyncClient, idp_setup: IdpSetup
) -> None:
    services = services_of(client)
    acme = await saml_org(services, idp_setup, allow_idp_initiated=True)
    response = unsolicited(idp_setup, acme)

    first = await post_acs(client, acme, response, None)
    assert first.status_code == 303, first.text[:600]
    assert SESSION_COOKIE in first.cookies
    alice = await services.users.get_by_email(ALICE)
    assert alice is not None
    [record] = await services.sessions.list_sessions(alice.id)
    assert record.connection_id == acme.connection.id

    client.cookies.clear()
    refused(await post_acs(client, acme, response, None), "replayed")
    # A RelayState that names no flow changes nothing: the assertion ID was seen.
    refused(await post_acs(client, acme, response, "made-up-relay-state"), "replayed")
    assert len(await services.sessions.list_sessions(alice.id)) == 1


async def test_idp_initiated_sign_in_is_off_by_default(
    client: httpx.AsyncClient, idp_setup: IdpSetup
) -> None:
    services = services_of(client)
    acme = await saml_org(services, idp_setup)
    response = unsolicited(idp_setup, acme)
    refused(await post_acs(client, acme, response, None), "unsolicited")
    refused(await post_acs(client, acme, response, "made-up-relay-state"))
    assert list(await services.users.list()) == []
    assert await services.orgs.members(acme.org) == []


# --- linking ------------------------------------------------------------------------------------------


async def test_a_saml_connection_without_a_verified_domain_never_reaches_an_existing_account(
    client: httpx.AsyncClient, idp_setup: IdpSetup, tmp_path: Path
) -> None:
    services = services_of(client)
    assert (await signup(client, "victim@bank.test")).status_code == 201
    victim = await services.users.get_by_email("victim@bank.test")
    assert victim is not None
    before = await services.sessions.list_sessions(victim.id)  # the victim's own, from signing up
    assert len(before) == 1
    # The attacker's organization claimed bank.test but could not verify it; its IdP is its own.
    evil = await saml_org(services, idp_setup, slug="evil", domain="bank.test", verified=False)
    idp = pysaml2_for(evil, idp_setup, tmp_path)
    client.cookies.clear()

    back, _ = await through_pysaml2(
        client,
        idp,
        evil,
        start_path=f"/sso/start?connection={evil.connection.id}",
        name_id="victim@bank.test",
        attributes={"email": ["victim@bank.test"], "groups": ["acme-admins"]},
    )

    refused(back, "domain_not_verified")  # the same answer as for an address without an account
    assert await services.sessions.list_sessions(victim.id) == before
    assert await services.sso._repo.linked(evil.connection.id, "victim@bank.test") is None
    assert await services.orgs.memberships(victim) == []
    assert (await client.get("/api/v1/session")).status_code == 401
    # Home-realm discovery does not send the victim's address to the attacker's IdP either.
    assert await services.sso.connections.route("victim@bank.test") is None


# --- the SP metadata --------------------------------------------------------------------------------


async def test_the_sp_metadata_names_the_acs_and_entity_id(
    client: httpx.AsyncClient, idp_setup: IdpSetup
) -> None:
    services = services_of(client)
    acme = await saml_org(services, idp_setup)
    summary = services.sso.connections.summary(acme.connection)
    assert summary["entity_id"] == acme.sp.entity_id
    assert summary["acs_url"] == acme.sp.acs_url
    assert summary["metadata_url"] == acme.sp.entity_id

    response = await client.get(f"/sso/saml/{acme.connection.id}/metadata")

    assert response.status_code == 200, response.text[:400]
    assert response.headers["content-type"] == "application/samlmetadata+xml"
    root = etree.fromstring(response.content, SAFE_XML)
    assert root.tag == f"{{{MD}}}EntityDescriptor"
    assert root.get("entityID") == acme.sp.entity_id
    [descriptor] = root.findall(f"{{{MD}}}SPSSODescriptor")
    [acs] = descriptor.findall(f"{{{MD}}}AssertionConsumerService")
    assert (acs.get("Location"), acs.get("Binding")) == (acme.sp.acs_url, HTTP_POST)
    slo = descriptor.findall(f"{{{MD}}}SingleLogoutService")
    assert [(s.get("Location"), s.get("Binding")) for s in slo] == [(acme.sp.slo_url, HTTP_REDIRECT)]

    assert (await client.get("/sso/saml/no-such-connection/metadata")).status_code == 404


# --- single logout -----------------------------------------------------------------------------------


async def test_single_logout_from_the_idp_ends_the_session_once(
    client: httpx.AsyncClient, idp_setup: IdpSetup, tmp_path: Path
) -> None:
    services = services_of(client)
    acme = await saml_org(services, idp_setup)
    idp = pysaml2_for(acme, idp_setup, tmp_path)
    back, answer = await through_pysaml2(client, idp, acme)
    assert back.status_code == 303, back.text[:600]
    assert (await client.get("/api/v1/session")).status_code == 200
    alice = await services.users.get_by_email(ALICE)
    assert alice is not None

    url = idp.logout_request_url(name_id=ALICE, session_index=answer.session_index, relay_state="rs-slo")
    assert url.startswith(acme.sp.slo_url or "")
    request_id = str(redirect_message(url).get("ID"))

    ended = await client.get(path_of(url))

    assert ended.status_code == 303, ended.text[:600]
    location = ended.headers["location"]
    assert location.startswith(f"{IDP_BASE}/slo/redirect?")
    assert parse_qs(urlsplit(location).query)["RelayState"] == ["rs-slo"]
    assert idp.read_logout_response(location) == (request_id, acme.sp.entity_id, SUCCESS)
    assert (await client.get("/api/v1/session")).status_code == 401
    assert await services.sessions.list_sessions(alice.id) == []

    refused(await client.get(path_of(url)), "replayed")
