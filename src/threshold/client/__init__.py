"""What applications import to trust Threshold: a token verifier, a FastAPI dependency, an ASGI middleware.

from threshold.client import TokenVerifier, ThresholdAuth

verifier = TokenVerifier(issuer="https://auth.example.com", audience="https://api.example.com")
auth = ThresholdAuth(verifier, session_url="https://auth.example.com/api/v1/session")

@app.get("/orders")
async def orders(principal: Principal = Depends(auth)): ...
"""

from threshold.client.auth import Principal, ThresholdAuth, ThresholdAuthMiddleware
from threshold.client.errors import TokenError
from threshold.client.verifier import TokenVerifier, VerifiedToken

__all__ = [
    "Principal",
    "ThresholdAuth",
    "ThresholdAuthMiddleware",
    "TokenError",
    "TokenVerifier",
    "VerifiedToken",
]
