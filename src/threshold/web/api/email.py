"""/api/v1: email verification, password reset, sign-in by email, email change."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from threshold.core.flows.outcome import MfaRequired
from threshold.web.api.v1 import PROBLEM, apply_outcome, user_out
from threshold.web.deps import (
    AuthDep,
    ContextDep,
    MaybeAuth,
    ServicesDep,
    csrf_protect,
)
from threshold.web.security import EMAIL_LOGIN_COOKIE

router = APIRouter(prefix="/api/v1", dependencies=[Depends(csrf_protect)], tags=["api v1: email"])


class EmailIn(BaseModel):
    email: StrictStr = Field(min_length=1, max_length=1024)


class TokenIn(BaseModel):
    token: StrictStr = Field(min_length=1, max_length=128)


class ResetIn(BaseModel):
    token: StrictStr = Field(min_length=1, max_length=128)
    new_password: StrictStr = Field(min_length=1, max_length=4096)


class EmailLoginVerify(BaseModel):
    token: StrictStr | None = Field(None, max_length=128)
    code: StrictStr | None = Field(None, max_length=16)
    confirm: StrictBool = False


def set_email_login_cookie(response: Response, binding: str, *, max_age: int) -> None:
    response.set_cookie(
        EMAIL_LOGIN_COOKIE, binding, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax"
    )


@router.post(
    "/password/reset/request",
    status_code=202,
    summary="Email a reset link (same answer for every address)",
    responses={429: PROBLEM},
)
async def reset_request(body: EmailIn, services: ServicesDep, context: ContextDep) -> dict[str, str]:
    await services.email.request_password_reset(body.email, context=context)
    return {"status": "reset_requested"}


@router.post(
    "/password/reset",
    summary="Set a new password with the emailed token; every session ends",
    responses={400: PROBLEM, 422: PROBLEM},
)
async def reset(body: ResetIn, services: ServicesDep, context: ContextDep) -> dict[str, str]:
    await services.email.reset_password(token=body.token, new_password=body.new_password, context=context)
    return {"status": "password_reset"}


@router.post("/email/verify", summary="Verify the address with the emailed token", responses={400: PROBLEM})
async def verify(body: TokenIn, services: ServicesDep, context: ContextDep) -> dict[str, object]:
    user = await services.email.verify_email(body.token, context=context)
    return {"user": user_out(user).model_dump()}


@router.post(
    "/email/verify/resend",
    status_code=202,
    summary="Send the verification link again",
    responses={429: PROBLEM},
)
async def resend(auth: AuthDep, services: ServicesDep, context: ContextDep) -> dict[str, str]:
    await services.email.resend_verification(auth.user, context=context)
    return {"status": "verification_sent"}


@router.post(
    "/email/change",
    status_code=202,
    summary="Change the address: confirm the new one, notify the old",
    responses={401: PROBLEM, 409: PROBLEM},
)
async def change(body: EmailIn, auth: AuthDep, services: ServicesDep, context: ContextDep) -> dict[str, str]:
    await services.stepup.require_recent_auth(auth.user, auth.session)
    await services.email.request_email_change(auth.user, body.email, context=context)
    return {"status": "confirmation_sent"}


@router.post(
    "/email/change/confirm",
    summary="Confirm the new address with the emailed token",
    responses={400: PROBLEM, 409: PROBLEM},
)
async def change_confirm(body: TokenIn, services: ServicesDep, context: ContextDep) -> dict[str, object]:
    user = await services.email.confirm_email_change(body.token, context=context)
    return {"user": user_out(user).model_dump()}


@router.post(
    "/login/email",
    status_code=202,
    summary="Email a sign-in link and code (same answer for every address)",
    responses={403: PROBLEM, 429: PROBLEM},
)
async def login_email(body: EmailIn, services: ServicesDep, context: ContextDep) -> Response:
    started = await services.email.request_email_login(body.email, context=context)
    response = JSONResponse({"status": "email_sent"}, status_code=202)
    set_email_login_cookie(response, started.binding, max_age=services.settings.email.login_lifetime)
    return response


@router.post(
    "/login/email/verify",
    summary="Sign in with the emailed link token or code",
    responses={400: PROBLEM, 409: PROBLEM},
)
async def login_email_verify(
    body: EmailLoginVerify, request: Request, services: ServicesDep, context: ContextDep, current: MaybeAuth
) -> Response:
    _, outcome = await services.email.complete_email_login(
        token=body.token,
        code=body.code,
        binding=request.cookies.get(EMAIL_LOGIN_COOKIE),
        confirmed=body.confirm,
        context=context,
        replacing=current.session if current else None,
    )
    response = apply_outcome(services, outcome)
    if isinstance(outcome, MfaRequired):  # email is never a second factor
        return response
    response.delete_cookie(EMAIL_LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response
