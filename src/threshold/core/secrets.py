"""Random values and their digests. Every random value comes from `secrets`."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits


def new_token() -> str:
    """A fresh 256-bit opaque token, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_id() -> str:
    """A 128-bit random identifier for records that are not secrets (hex, 32 characters)."""
    return secrets.token_hex(16)


def digest(token: str) -> str:
    """SHA-256 hex digest of a token: what is stored instead of the token itself."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison."""
    a_bytes = a.encode("utf-8", "surrogatepass") if isinstance(a, str) else a
    b_bytes = b.encode("utf-8", "surrogatepass") if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)
