"""Fixtures of the account-rights suite: the second-factor suite's fake clock and app builder."""

from __future__ import annotations

from tests.api.conftest import clocked_client_factory
from tests.mfa.conftest import app, app_factory, authenticator, clock

__all__ = ["app", "app_factory", "authenticator", "clock", "clocked_client_factory"]
