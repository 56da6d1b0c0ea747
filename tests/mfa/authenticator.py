"""A software WebAuthn authenticator (test code only): ES256 keys, attestation "none".

It reads the PublicKeyCredentialCreationOptions / RequestOptions JSON the API returns under
"publicKey" and answers in the WebAuthn JSON form (PublicKeyCredential.toJSON()) that py_webauthn
parses. Every field a relying party must check can be made wrong on purpose: the origin and type in
clientDataJSON, the RP id whose hash starts authenticatorData, the UP/UV/BE/BS flags, the signature
counter; and a response can be sent twice, as a replaying attacker would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

RP_ID = "auth.threshold.test"
ORIGIN = "https://auth.threshold.test"

UP = 0x01  # user present
UV = 0x04  # user verified
BE = 0x08  # backup eligible (a synced, multi-device passkey)
BS = 0x10  # backed up
AT = 0x40  # attested credential data included

COSE_ES256 = -7
AAGUID = bytes.fromhex("7468726573686f6c642d746573742d31")  # "threshold-test-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    """One key pair the authenticator holds (a resident key: it keeps the user handle)."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: COSE_ES256,  # alg
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftAuthenticator:
    """A platform authenticator in memory. `synced` sets BE and BS (a passkey in a cloud keychain)."""

    rp_id: str = RP_ID
    origin: str = ORIGIN
    synced: bool = False
    transports: tuple[str, ...] = ("internal", "hybrid")
    aaguid: bytes = AAGUID
    credentials: dict[str, Credential] = field(default_factory=dict)
    last_response: dict[str, Any] | None = None

    # --- building blocks ---------------------------------------------------------------------------

    def _flags(self, *, user_present: bool, user_verified: bool, attested: bool) -> int:
        flags = (UP if user_present else 0) | (UV if user_verified else 0) | (AT if attested else 0)
        if self.synced:
            flags |= BE | BS
        return flags

    @staticmethod
    def _client_data(*, kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def new_credential(
        self, *, user_handle: bytes = b"", rp_id: str | None = None, credential_id: bytes | None = None
    ) -> Credential:
        """A key pair this authenticator holds (not registered anywhere until `create` sends it)."""
        credential = Credential(
            credential_id=credential_id or secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp_id or self.rp_id,
            user_handle=user_handle,
        )
        self.credentials[credential.id] = credential
        return credential

    # --- navigator.credentials.create() ------------------------------------------------------------

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        sign_count: int = 0,
        client_data_type: str = "webauthn.create",
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """A registration response (attestation "none") to PublicKeyCredentialCreationOptions JSON.

        `credential_id` forces the id of the new key pair (to present an id that already exists).
        """
        assert options["pubKeyCredParams"], options
        assert any(p["alg"] == COSE_ES256 for p in options["pubKeyCredParams"]), options
        effective_rp = rp_id or options.get("rp", {}).get("id") or self.rp_id
        excluded = {c["id"] for c in options.get("excludeCredentials", [])}
        assert not excluded & set(self.credentials), "an excluded credential lives on this authenticator"
        credential = self.new_credential(
            user_handle=unb64url(options["user"]["id"]), rp_id=effective_rp, credential_id=credential_id
        )
        credential.sign_count = sign_count
        auth_data = (
            hashlib.sha256(effective_rp.encode()).digest()
            + bytes([self._flags(user_present=True, user_verified=user_verified, attested=True)])
            + struct.pack(">I", sign_count)
            + self.aaguid
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_public_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data(
            kind=client_data_type, challenge=options["challenge"], origin=origin or self.origin
        )
        response = {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": list(self.transports),
            },
            "clientExtensionResults": {"credProps": {"rk": True}},
            "authenticatorAttachment": "platform",
        }
        self.last_response = response
        return response

    # --- navigator.credentials.get() ---------------------------------------------------------------

    def get(
        self,
        options: dict[str, Any],
        *,
        credential: Credential | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        sign_count: int | None = None,
        user_present: bool = True,
        user_verified: bool = True,
        client_data_type: str = "webauthn.get",
    ) -> dict[str, Any]:
        """An assertion for PublicKeyCredentialRequestOptions JSON.

        Args:
            options: the "publicKey" object; its allowCredentials (if any) picks the credential.
            credential: use this one (even one the RP never saw) instead of choosing.
            origin, rp_id: override what goes into clientDataJSON / the rpIdHash.
            sign_count: the counter to report; by default the stored one plus one.
        """
        chosen = credential or self._choose(options)
        effective_rp = rp_id or options.get("rpId") or chosen.rp_id
        chosen.sign_count = chosen.sign_count + 1 if sign_count is None else sign_count
        auth_data = (
            hashlib.sha256(effective_rp.encode()).digest()
            + bytes([self._flags(user_present=user_present, user_verified=user_verified, attested=False)])
            + struct.pack(">I", chosen.sign_count)
        )
        client_data = self._client_data(
            kind=client_data_type, challenge=options["challenge"], origin=origin or self.origin
        )
        signature = chosen.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response = {
            "id": chosen.id,
            "rawId": chosen.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(chosen.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
        self.last_response = response
        return response

    def _choose(self, options: dict[str, Any]) -> Credential:
        allowed = [c["id"] for c in options.get("allowCredentials") or []]
        if allowed:
            for credential_id in allowed:
                if credential_id in self.credentials:
                    return self.credentials[credential_id]
            raise AssertionError("none of the allowed credentials lives on this authenticator")
        rp = options.get("rpId") or self.rp_id
        for credential in self.credentials.values():
            if credential.rp_id == rp:
                return credential  # a discoverable credential for this RP
        raise AssertionError(f"no credential for {rp} on this authenticator")
