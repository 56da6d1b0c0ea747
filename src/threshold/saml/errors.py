"""Why a SAML message was refused: the stable `reason` of `SsoRejected`.

The values are public strings (the identity provider's administrator needs them and tests assert on
them); each refusal also carries one clear sentence. Nothing here reveals anything about accounts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NoReturn

from threshold.core.sso.errors import SsoRejected


class Reason(StrEnum):
    MALFORMED = "malformed"  # not base64, not XML, too large, or not shaped like SAML says
    DTD_FORBIDDEN = "dtd_forbidden"  # a DOCTYPE (entities, external references): never parsed
    SIGNATURE_INVALID = "signature_invalid"  # a signature that does not verify with a pinned certificate
    NOT_SIGNED = "not_signed"  # the assertion (or the logout request) carries no signature
    MULTIPLE_ASSERTIONS = "multiple_assertions"  # more than one Assertion anywhere in the document
    ENCRYPTED_UNSUPPORTED = "encrypted_unsupported"  # EncryptedAssertion / EncryptedID
    ALGORITHM_FORBIDDEN = "algorithm_forbidden"  # SHA-1 or an algorithm outside the allow-list
    ISSUER_MISMATCH = "issuer_mismatch"
    DESTINATION_MISMATCH = "destination_mismatch"
    RECIPIENT_MISMATCH = "recipient_mismatch"
    AUDIENCE_MISMATCH = "audience_mismatch"
    IN_RESPONSE_TO_MISMATCH = "in_response_to_mismatch"
    UNSOLICITED = "unsolicited"  # a request was sent, but the answer names none
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    STATUS_NOT_SUCCESS = "status_not_success"
    METADATA_INVALID = "metadata_invalid"


def reject(reason: Reason, message: str) -> NoReturn:
    raise SsoRejected(reason, message)


def shown(value: str | None, limit: int = 120) -> str:
    """A value from the message, quoted and cut short, for an error sentence."""
    if value is None:
        return "nothing"
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)
