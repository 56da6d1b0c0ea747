"""Encryption of secrets at rest (signing keys, TOTP secrets) with the key-encryption key.

AES-256-GCM from `cryptography`; each value gets a fresh 96-bit nonce from `secrets`, and an
associated-data label binds a ciphertext to its purpose so one cannot be swapped for another.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"


class DecryptionFailed(Exception):
    pass


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, *, purpose: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext, f"threshold:{purpose}".encode())
        return f"{VERSION}." + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, token: str, *, purpose: str) -> bytes:
        version, _, body = token.partition(".")
        if version != VERSION or not body:
            raise DecryptionFailed("unknown format")
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], f"threshold:{purpose}".encode())
        except InvalidTag as exc:
            raise DecryptionFailed("wrong key or tampered value") from exc
