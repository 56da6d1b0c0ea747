"""SAML 2.0 Web Browser SSO, service-provider side: protocol logic only (no web, no storage).

`metadata` reads the identity provider's metadata and writes ours; `request` builds the AuthnRequest
redirect; `response` verifies the posted Response and its signed assertion; `logout` verifies an
identity provider's LogoutRequest and answers it. Every refusal is `SsoRejected` with a `Reason`.
XML signatures are verified by signxml against the certificates pinned from metadata only.
"""

from threshold.saml.errors import Reason
from threshold.saml.logout import VerifiedLogoutRequest, logout_response_redirect_url, parse_logout_request
from threshold.saml.metadata import IdpMetadata, ServiceProvider, parse_idp_metadata, sp_metadata_xml
from threshold.saml.request import authn_request_redirect_url, new_request_id
from threshold.saml.response import VerifiedAssertion, verify_response

__all__ = [
    "IdpMetadata",
    "Reason",
    "ServiceProvider",
    "VerifiedAssertion",
    "VerifiedLogoutRequest",
    "authn_request_redirect_url",
    "logout_response_redirect_url",
    "new_request_id",
    "parse_idp_metadata",
    "parse_logout_request",
    "sp_metadata_xml",
    "verify_response",
]
