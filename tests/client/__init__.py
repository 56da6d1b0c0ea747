"""threshold.client: the token verifier, the FastAPI dependency and the ASGI middleware applications use."""
