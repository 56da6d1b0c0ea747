"""PKCE (RFC 7636). Only S256: `plain` is refused for every client."""

from __future__ import annotations

import base64
import hashlib
import re

from threshold.core.secrets import equal
from threshold.oidc.errors import InvalidGrant, InvalidRequest

# RFC 7636 section 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def check_code_challenge(*, code_challenge: str | None, method: str | None) -> str:
    """Validate the authorization request's challenge (RFC 7636 section 4.3); S256 is mandatory."""
    if not code_challenge:
        raise InvalidRequest("code_challenge is required (PKCE with S256).")
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256.")
    if not _CHALLENGE.fullmatch(code_challenge):
        raise InvalidRequest("code_challenge is not a base64url SHA-256 digest.")
    return code_challenge


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def check_code_verifier(*, code_verifier: str | None, expected_challenge: str) -> None:
    """RFC 7636 section 4.6: BASE64URL(SHA256(code_verifier)) must equal the stored challenge."""
    if not code_verifier or not _VERIFIER.fullmatch(code_verifier):
        raise InvalidGrant("code_verifier is missing or malformed.")
    if not equal(s256(code_verifier), expected_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge.")
