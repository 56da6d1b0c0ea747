"""An independent SAML 2.0 identity provider for tests: pysaml2's `Server`, signing with xmlsec1.

Nothing here shares code with `threshold.saml`: pysaml2 parses our AuthnRequest, builds and signs the
Response with Debian's `/usr/bin/xmlsec1`, and writes its own metadata. A throwaway RSA key and
self-signed certificate are generated with `cryptography` into a directory of the test's own.

    idp = Pysaml2Idp(workdir=tmp_path, sp=sp)
    metadata = parse_idp_metadata(idp.metadata_xml())
    answer = idp.respond(authn_request_redirect_url(...), name_id="alice@acme.test", attributes={...})
    verify_response(answer.saml_response_b64, ...)
    url = idp.logout_request_url(name_id="alice@acme.test", session_index=answer.session_index)

`require_xmlsec1()` skips the calling test when xmlsec1 is missing, and fails it under CI=true.
"""

from __future__ import annotations

import base64
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.support.environment import need
from tests.support.saml_attacks import PASSWORD_PROTECTED, SigningKey, make_signing_key
from threshold.saml import ServiceProvider, sp_metadata_xml

with warnings.catch_warnings():
    # pysaml2 7.5 still names cryptography's CFB mode by its deprecated path when imported.
    warnings.simplefilter("ignore")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.config import IdPConfig
    from saml2.metadata import create_metadata_string
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
    from saml2.samlp import response_from_string
    from saml2.server import Server

XMLSEC1 = "/usr/bin/xmlsec1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
ATTRNAME_FORMAT_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"


def require_xmlsec1() -> str:
    """The xmlsec1 binary pysaml2 signs with (skip the test without it; fail it under CI=true)."""
    found = shutil.which("xmlsec1") or (XMLSEC1 if os.access(XMLSEC1, os.X_OK) else None)
    if found is None:
        need("xmlsec1", "pysaml2 signs with it; install Debian's xmlsec1 package")
    return found


@dataclass(frozen=True)
class IdpAnswer:
    """What the identity provider posts back to the ACS, and what it put in it (read by pysaml2)."""

    saml_response_b64: str
    relay_state: str
    acs_url: str
    in_response_to: str
    assertion_id: str
    session_index: str


class Pysaml2Idp:
    """A pysaml2 identity provider that trusts one service provider, `sp` (given its metadata)."""

    def __init__(
        self,
        *,
        workdir: Path,
        sp: ServiceProvider,
        entity_id: str = "https://idp.acme.test/metadata",
        base_url: str = "https://idp.acme.test",
        key: SigningKey | None = None,
    ) -> None:
        xmlsec1 = require_xmlsec1()
        self.sp = sp
        self.entity_id = entity_id
        self.sso_url = f"{base_url}/sso/redirect"
        self.slo_url = f"{base_url}/slo/redirect"
        self.key = key or make_signing_key(urlsplit(base_url).hostname or "idp")
        workdir.mkdir(parents=True, exist_ok=True)
        key_file = workdir / "idp-key.pem"
        cert_file = workdir / "idp-cert.pem"
        key_file.write_bytes(self.key.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        cert_file.write_text(self.key.cert_pem)
        config: dict[str, Any] = {
            "entityid": entity_id,
            "xmlsec_binary": xmlsec1,
            "key_file": str(key_file),
            "cert_file": str(cert_file),
            "metadata": {"inline": [sp_metadata_xml(sp).decode()]},
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)],
                        "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT)],
                    },
                    "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": ATTRNAME_FORMAT_URI}},
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "want_authn_requests_signed": False,
                    "signing_algorithm": RSA_SHA256,
                    "digest_algorithm": SHA256,
                },
            },
            "debug": False,
        }
        self._config = IdPConfig().load(config)
        self._server = Server(config=self._config)

    def metadata_xml(self) -> bytes:
        """The identity provider's EntityDescriptor, as pysaml2 writes it."""
        document = create_metadata_string(None, config=self._config)
        return document if isinstance(document, bytes) else str(document).encode()

    def respond(
        self,
        authn_request_url: str,
        *,
        name_id: str,
        attributes: Mapping[str, Sequence[str]],
        sign_response: bool = False,
        authn_context_class: str = PASSWORD_PROTECTED,
        sign_alg: str = RSA_SHA256,
        digest_alg: str = SHA256,
    ) -> IdpAnswer:
        """Answer an AuthnRequest sent by HTTP-Redirect with a signed assertion (and signed Response)."""
        query = parse_qs(urlsplit(authn_request_url).query)
        parsed = self._server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        response_args = self._server.response_args(parsed.message, [BINDING_HTTP_POST])
        response = self._server.create_authn_response(
            {name: list(values) for name, values in attributes.items()},
            userid=name_id,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=name_id),
            authn={"class_ref": authn_context_class, "authn_auth": self.entity_id},
            sign_assertion=True,
            sign_response=sign_response,
            sign_alg=sign_alg,
            digest_alg=digest_alg,
            **response_args,
        )
        document = str(response)
        read_back = response_from_string(document)
        assertion = read_back.assertion[0]
        return IdpAnswer(
            saml_response_b64=base64.b64encode(document.encode()).decode("ascii"),
            relay_state=query.get("RelayState", [""])[0],
            acs_url=str(response_args["destination"]),
            in_response_to=str(parsed.message.id),
            assertion_id=str(assertion.id),
            session_index=str(assertion.authn_statement[0].session_index),
        )

    def logout_request_url(
        self,
        *,
        name_id: str,
        session_index: str,
        relay_state: str | None = None,
        sign: bool = True,
        sign_alg: str = RSA_SHA256,
        destination: str | None = None,
    ) -> str:
        """A LogoutRequest for `name_id` to the SP's SLO URL by HTTP-Redirect, query-string signed."""
        target = destination or self.sp.slo_url
        assert target is not None, "the service provider has no SLO URL"
        _, request = self._server.create_logout_request(
            target,
            self.sp.entity_id,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=name_id),
            session_indexes=[session_index],
            sign=False,
        )
        info = self._server.apply_binding(
            BINDING_HTTP_REDIRECT, str(request), target, relay_state or "", sign=sign, sigalg=sign_alg
        )
        return str(dict(info["headers"])["Location"])

    def read_logout_response(self, url: str) -> tuple[str, str, str]:
        """(InResponseTo, Issuer, top-level StatusCode) of a LogoutResponse sent here by HTTP-Redirect.

        Decoded and checked by pysaml2 (its redirect binding, its Destination and issuer checks against
        the SP's metadata), not by threshold.saml.
        """
        query = parse_qs(urlsplit(url).query)
        parsed = self._server.parse_logout_request_response(query["SAMLResponse"][0], BINDING_HTTP_REDIRECT)
        if parsed is None:
            raise AssertionError("pysaml2 refused the LogoutResponse")
        response = parsed.response
        return str(response.in_response_to), str(response.issuer.text), str(response.status.status_code.value)
