"""`uvicorn --factory tests.blackbox.routed_app:from_environment`: the service as `threshold serve` runs
it, but with every request going through the router (no fast lane), so that a test can drive the routed
endpoints of a real server too."""

from __future__ import annotations

from fastapi import FastAPI

from threshold.settings import load_settings
from threshold.web.app import create_app


def from_environment() -> FastAPI:
    return create_app(load_settings(), fast_lane=False)
