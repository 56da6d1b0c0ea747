"""What applications import to trust Threshold: a token verifier, a FastAPI dependency, an ASGI middleware,
and a back-channel logout receiver (threshold.client.backchannel).

from threshold.client import AuthenticationFailed, TokenVerifier, ThresholdAuth, handle_authentication_failed

verifier = TokenVerifier(issuer="https://auth.example.com", audience="https://api.example.com")
auth = ThresholdAuth(verifier, session_url="https://auth.example.com/api/v1/session")
app.add_exception_handler(AuthenticationFailed, handle_authentication_failed)  # the middleware's body

@app.get("/orders")
async def orders(principal: Principal = Depends(auth)): ...
"""

from threshold.client.auth import (
    AuthenticationFailed,
    Principal,
    ThresholdAuth,
    ThresholdAuthMiddleware,
    handle_authentication_failed,
)
from threshold.client.backchannel import BackchannelLogout, InMemoryReplayCache, LogoutEvent, ReplayCache
from threshold.client.errors import TokenError
from threshold.client.introspection import Introspection
from threshold.client.verifier import TokenVerifier, VerifiedToken

__all__ = [
    "AuthenticationFailed",
    "BackchannelLogout",
    "InMemoryReplayCache",
    "Introspection",
    "LogoutEvent",
    "Principal",
    "ReplayCache",
    "ThresholdAuth",
    "ThresholdAuthMiddleware",
    "TokenError",
    "TokenVerifier",
    "VerifiedToken",
    "handle_authentication_failed",
]
