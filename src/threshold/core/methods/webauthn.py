"""Passkeys (WebAuthn Level 2/3) through py_webauthn: one function per ceremony step.

The library keeps no state; the caller stores each challenge (single use, short-lived) and the
credential. User verification is required; attestation is `none`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import webauthn
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_client_data_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from threshold.core.errors import PasskeyRejected
from threshold.core.models import Passkey

TIMEOUT_MS = 300_000


@dataclass(frozen=True, slots=True)
class VerifiedPasskeyRegistration:
    credential_id: str
    public_key: str
    sign_count: int
    aaguid: str
    backup_eligible: bool
    backup_state: bool
    transports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifiedPasskeyAssertion:
    credential_id: str
    new_sign_count: int
    backup_state: bool
    user_verified: bool


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id), transports=transports or None
    )


def registration_options(
    *, rp_id: str, rp_name: str, user_id: str, user_name: str, existing: Sequence[Passkey], challenge: bytes
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptions as JSON (for PublicKeyCredential.parseCreationOptionsFromJSON)."""
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name=rp_name,
        user_id=user_id.encode(),
        user_name=user_name,
        user_display_name=user_name,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[_descriptor(p) for p in existing],
    )
    result: dict[str, Any] = json.loads(webauthn.options_to_json(options))
    return result


def authentication_options(*, rp_id: str, challenge: bytes, allow: Sequence[Passkey] = ()) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions as JSON; an empty `allow` asks for a discoverable credential."""
    options = webauthn.generate_authentication_options(
        rp_id=rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(p) for p in allow] or None,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    result: dict[str, Any] = json.loads(webauthn.options_to_json(options))
    return result


def challenge_of(credential: dict[str, Any]) -> bytes:
    """The challenge the browser signed, read from clientDataJSON (to find the stored one).

    Raises:
        PasskeyRejected: the response is not shaped like a WebAuthn credential.
    """
    try:
        raw = base64url_to_bytes(credential["response"]["clientDataJSON"])
        return parse_client_data_json(raw).challenge
    except (KeyError, TypeError, ValueError, WebAuthnException) as exc:
        raise PasskeyRejected() from exc


def credential_id_of(credential: dict[str, Any]) -> str:
    value = credential.get("id") if isinstance(credential, dict) else None
    if not isinstance(value, str) or not 1 <= len(value) <= 1400:
        raise PasskeyRejected()
    return value


def verify_passkey_registration(
    *, credential: dict[str, Any], expected_challenge: bytes, expected_rp_id: str, expected_origins: list[str]
) -> VerifiedPasskeyRegistration:
    """Verify an attestation response (user verification required).

    Raises:
        PasskeyRejected: wrong origin, RP id, challenge, missing user verification, malformed data.
    """
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=expected_challenge,
            expected_rp_id=expected_rp_id,
            expected_origin=expected_origins,
            require_user_verification=True,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise PasskeyRejected(f"The passkey could not be registered: {exc}") from exc
    transports = credential.get("response", {}).get("transports") or []
    return VerifiedPasskeyRegistration(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        aaguid=str(verified.aaguid),
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backup_state=bool(verified.credential_backed_up),
        transports=tuple(str(t) for t in transports if isinstance(t, str))[:8],
    )


def verify_passkey_assertion(
    *,
    credential: dict[str, Any],
    expected_challenge: bytes,
    expected_rp_id: str,
    expected_origins: list[str],
    passkey: Passkey,
) -> VerifiedPasskeyAssertion:
    """Verify an assertion against the stored public key (user verification required).

    The sign-count check (a counter that goes backwards) is the caller's: py_webauthn raises for it,
    and we want to flag and audit it, so the stored count is passed as 0 and compared afterwards.

    Raises:
        PasskeyRejected: any failed check.
    """
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=expected_challenge,
            expected_rp_id=expected_rp_id,
            expected_origin=expected_origins,
            credential_public_key=base64url_to_bytes(passkey.public_key),
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise PasskeyRejected(f"The passkey could not be verified: {exc}") from exc
    return VerifiedPasskeyAssertion(
        credential_id=bytes_to_base64url(verified.credential_id),
        new_sign_count=verified.new_sign_count,
        backup_state=bool(verified.credential_backed_up),
        user_verified=bool(verified.user_verified),
    )


def counter_regressed(*, stored: int, presented: int) -> bool:
    """WebAuthn 6.1.1: a non-zero counter that does not increase suggests a cloned authenticator."""
    return (stored != 0 or presented != 0) and presented <= stored
