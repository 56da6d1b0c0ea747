"""Fixtures of the SAML suite: this service as SP of one connection, an IdP's keys and metadata."""

from __future__ import annotations

import time

import pytest

from tests.support.saml_attacks import ResponseSpec, SigningKey, legit_spec, make_signing_key
from threshold.saml import IdpMetadata, ServiceProvider, new_request_id

ISSUER = "https://auth.threshold.test"
CONNECTION = "conn_7f3a"
SP = ServiceProvider(
    entity_id=f"{ISSUER}/sso/saml/{CONNECTION}/metadata",
    acs_url=f"{ISSUER}/sso/saml/{CONNECTION}/acs",
    slo_url=f"{ISSUER}/sso/saml/{CONNECTION}/slo",
)
IDP_ENTITY_ID = "https://idp.acme.test/metadata"


@pytest.fixture(scope="session")
def idp_key() -> SigningKey:
    return make_signing_key("idp.acme.test")


@pytest.fixture(scope="session")
def next_idp_key() -> SigningKey:
    """The identity provider's next certificate, announced in metadata before a rollover."""
    return make_signing_key("idp.acme.test (next)")


@pytest.fixture
def sp() -> ServiceProvider:
    return SP


@pytest.fixture
def idp(idp_key: SigningKey) -> IdpMetadata:
    return IdpMetadata(
        entity_id=IDP_ENTITY_ID,
        sso_url="https://idp.acme.test/sso",
        slo_url="https://idp.acme.test/slo",
        certificates=(idp_key.cert_pem,),
    )


@pytest.fixture
def now() -> float:
    return time.time()


@pytest.fixture
def request_id() -> str:
    return new_request_id()


@pytest.fixture
def spec(sp: ServiceProvider, idp: IdpMetadata, request_id: str, now: float) -> ResponseSpec:
    """The values of a legitimate answer to `request_id`."""
    return legit_spec(sp=sp, idp=idp, request_id=request_id, now=now)
