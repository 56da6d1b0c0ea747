"""Fixtures of the observability suite: the OIDC suite's provider in-process (on a fake clock)."""

from __future__ import annotations

from tests.oidc.conftest import op_factory, pooled_rsa_keys

__all__ = ["op_factory", "pooled_rsa_keys"]  # registered here so the suite shares the OIDC suite's OP
