"""/api/v1: second factors, passkeys, step-up. Thin views over threshold.core.mfa.Factors."""

from __future__ import annotations

from typing import Any

import segno
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from threshold.core.clock import iso
from threshold.core.flows.factors import FactorAdded, Factors
from threshold.core.models import Passkey
from threshold.services import Services
from threshold.web.api.v1 import PROBLEM, SessionOut, apply_outcome, signed_in_response
from threshold.web.deps import (
    AuthDep,
    ContextDep,
    MaybeAuth,
    ServicesDep,
    csrf_protect,
)
from threshold.web.security import PENDING_COOKIE

router = APIRouter(prefix="/api/v1", dependencies=[Depends(csrf_protect)], tags=["api v1: factors"])


def factors_of(services: Services) -> Factors:
    return services.factors


class MfaCode(BaseModel):
    method: StrictStr = Field(pattern="^(totp|recovery_code)$")
    code: StrictStr = Field(min_length=1, max_length=64)


class PasskeyResponse(BaseModel):
    credential: dict[str, Any]


class NewPasskey(BaseModel):
    credential: dict[str, Any]
    name: StrictStr | None = Field(None, max_length=100)


class PasskeyName(BaseModel):
    name: StrictStr = Field(min_length=1, max_length=100)


class Reauthentication(BaseModel):
    method: StrictStr = Field(pattern="^(password|totp|recovery_code|passkey)$")
    password: StrictStr | None = Field(None, max_length=4096)
    code: StrictStr | None = Field(None, max_length=64)
    credential: dict[str, Any] | None = None


class TotpCode(BaseModel):
    code: StrictStr = Field(min_length=1, max_length=16)


class PasskeyOut(BaseModel):
    id: str
    name: str
    created_at: str
    last_used_at: str | None
    backup_eligible: bool
    backup_state: bool
    transports: list[str]
    aaguid: str
    flagged: bool


class MfaStatus(BaseModel):
    methods: list[str]
    totp: bool
    passkeys: int
    recovery_codes_left: int
    mfa_required: bool
    enrollment_required: bool


def passkey_out(passkey: Passkey) -> PasskeyOut:
    return PasskeyOut(
        id=passkey.id,
        name=passkey.name,
        created_at=iso(passkey.created_at),
        last_used_at=iso(passkey.last_used_at) if passkey.last_used_at else None,
        backup_eligible=passkey.backup_eligible,
        backup_state=passkey.backup_state,
        transports=list(passkey.transports),
        aaguid=passkey.aaguid,
        flagged=passkey.flagged,
    )


def qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG QR code, generated here (the secret never leaves the server)."""
    # omitsize: a viewBox instead of fixed width/height, so CSS can scale it without cropping it.
    qr = segno.make(uri, error="m")
    return str(qr.svg_inline(scale=5, dark="#000", light="#fff", border=4, omitsize=True))


@router.post(
    "/login/mfa",
    summary="Complete a pending sign-in with a TOTP or recovery code",
    responses={401: PROBLEM, 429: PROBLEM},
)
async def login_mfa(
    body: MfaCode, request: Request, services: ServicesDep, context: ContextDep, current: MaybeAuth
) -> Response:
    outcome = await services.signin.with_code(
        pending_token=request.cookies.get(PENDING_COOKIE),
        method=body.method,
        code=body.code,
        context=context,
        replacing=current.session if current else None,
    )
    return apply_outcome(services, outcome)


@router.post("/login/passkey/options", summary="Challenge for a passkey sign-in (button or autofill)")
async def login_passkey_options(services: ServicesDep) -> dict[str, Any]:
    return {"publicKey": await services.signin.passkey_options()}


@router.post(
    "/login/passkey",
    summary="Sign in with a passkey, alone or as the second factor",
    responses={400: PROBLEM},
)
async def login_passkey(
    body: PasskeyResponse, request: Request, services: ServicesDep, context: ContextDep, current: MaybeAuth
) -> Response:
    outcome = await services.signin.with_passkey(
        credential=body.credential,
        pending_token=request.cookies.get(PENDING_COOKIE),
        context=context,
        replacing=current.session if current else None,
    )
    return apply_outcome(services, outcome)


@router.post(
    "/reauthenticate", summary="Step-up: prove a factor again", responses={400: PROBLEM, 429: PROBLEM}
)
async def reauthenticate(
    body: Reauthentication, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> Response:
    issued = await services.stepup.reauthenticate(
        auth.user,
        auth.session,
        method=body.method,
        secret=body.password or body.code,
        credential=body.credential,
        context=context,
    )
    return signed_in_response(services, auth.user, issued)  # a re-authentication gets a new session id


@router.post("/reauthenticate/passkey/options", summary="Challenge for a passkey step-up")
async def reauthenticate_passkey_options(auth: AuthDep, services: ServicesDep) -> dict[str, Any]:
    return {"publicKey": await services.stepup.passkey_options(auth.user)}


@router.get("/mfa", response_model=MfaStatus, summary="The user's sign-in methods")
async def mfa_status(auth: AuthDep, services: ServicesDep) -> MfaStatus:
    status = await services.factors.status(auth.user)
    return MfaStatus(
        methods=services.factors.second_factor_methods(status),
        totp=status.totp,
        passkeys=len(status.passkeys),
        recovery_codes_left=status.recovery_codes_left,
        mfa_required=status.mfa_required,
        enrollment_required=status.mfa_required and not status.has_second_factor,
    )


@router.get("/passkeys", summary="The user's passkeys")
async def list_passkeys(auth: AuthDep, services: ServicesDep) -> dict[str, list[PasskeyOut]]:
    status = await services.factors.status(auth.user)
    return {"passkeys": [passkey_out(p) for p in status.passkeys]}


@router.post(
    "/passkeys/options",
    summary="Challenge to register a passkey (needs a recent sign-in)",
    responses={401: PROBLEM},
)
async def passkey_options(auth: AuthDep, services: ServicesDep) -> dict[str, Any]:
    return {"publicKey": await services.factors.passkey_registration_options(auth.user, auth.session)}


def _added(extra: dict[str, Any], added: FactorAdded) -> dict[str, Any]:
    if added.recovery_codes is not None:
        extra["recovery_codes"] = added.recovery_codes
    return extra


@router.post(
    "/passkeys", status_code=201, summary="Register a passkey", responses={400: PROBLEM, 401: PROBLEM}
)
async def add_passkey(
    body: NewPasskey, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> Response:
    passkey, added = await services.factors.add_passkey(
        auth.user, auth.session, credential=body.credential, name=body.name, context=context
    )
    body_out = _added({"passkey": passkey_out(passkey).model_dump()}, added)
    return JSONResponse(body_out, status_code=201)


@router.patch("/passkeys/{passkey_id}", status_code=204, summary="Rename a passkey", responses={404: PROBLEM})
async def rename_passkey(
    passkey_id: str, body: PasskeyName, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> Response:
    await services.factors.rename_passkey(auth.user, passkey_id[:64], body.name, context=context)
    return Response(status_code=204)


@router.delete(
    "/passkeys/{passkey_id}",
    status_code=204,
    summary="Remove a passkey (needs a recent sign-in)",
    responses={401: PROBLEM, 404: PROBLEM, 409: PROBLEM},
)
async def delete_passkey(
    passkey_id: str, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> Response:
    await services.factors.remove_passkey(auth.user, auth.session, passkey_id[:64], context=context)
    return Response(status_code=204)


@router.post(
    "/passkeys/prompt/dismiss", status_code=204, summary="Hide the passkey upgrade prompt for a while"
)
async def dismiss_prompt(auth: AuthDep, services: ServicesDep) -> Response:
    await services.factors.snooze_passkey_prompt(auth.user)
    return Response(status_code=204)


@router.post(
    "/mfa/totp/setup",
    summary="Start authenticator-app setup: secret, otpauth URI and QR code",
    responses={401: PROBLEM},
)
async def totp_setup(auth: AuthDep, services: ServicesDep) -> dict[str, str]:
    enrollment = await services.factors.start_totp(
        auth.user, auth.session, issuer=services.settings.theme.product_name
    )
    return {"secret": enrollment.secret, "otpauth_uri": enrollment.uri, "qr_svg": qr_svg(enrollment.uri)}


@router.post(
    "/mfa/totp/confirm", summary="Finish setup with a valid code", responses={400: PROBLEM, 401: PROBLEM}
)
async def totp_confirm(
    body: TotpCode, auth: AuthDep, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    added = await services.factors.confirm_totp(auth.user, auth.session, code=body.code, context=context)
    return _added({"status": "enabled"}, added)


@router.delete(
    "/mfa/totp",
    status_code=204,
    summary="Remove the authenticator app (needs a recent sign-in)",
    responses={401: PROBLEM, 404: PROBLEM},
)
async def totp_delete(auth: AuthDep, services: ServicesDep, context: ContextDep) -> Response:
    await services.factors.remove_totp(auth.user, auth.session, context=context)
    return Response(status_code=204)


@router.post(
    "/mfa/recovery-codes", summary="New recovery codes (the old ones stop working)", responses={401: PROBLEM}
)
async def recovery_codes(auth: AuthDep, services: ServicesDep, context: ContextDep) -> dict[str, list[str]]:
    codes = await services.factors.regenerate_recovery_codes(auth.user, auth.session, context=context)
    return {"recovery_codes": codes}


__all__ = ["SessionOut", "qr_svg", "router"]
