"""Records for the storage tests, each field set to a value that a lossy round trip would change."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from threshold.core.models import Aal, Amr, SessionRecord, User
from threshold.core.secrets import digest, new_id, new_token
from threshold.oidc.models import Grant, RefreshToken


def user(email: str | None = None, **changes: Any) -> User:
    user_id = new_id()
    address = email or f"{user_id}@example.com"
    record = User(
        id=user_id,
        email=address,
        email_normalized=address.casefold(),
        email_verified=False,
        disabled=False,
        created_at=1_767_225_600.125,
    )
    return replace(record, **changes)


def session(
    user_id: str, token: str | None = None, *, now: float | None = None, **changes: Any
) -> SessionRecord:
    now = time.time() if now is None else now
    record = SessionRecord(
        digest=digest(token or new_token()),
        public_id=new_id(),
        user_id=user_id,
        created_at=now - 0.123456789,
        last_seen_at=now + 0.1,
        idle_expires_at=now + 3600.25,
        absolute_expires_at=now + 7200.5,
        aal=Aal.AAL2,
        amr=(Amr.PASSWORD, Amr.OTP),
        ip="2001:db8::1",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0 \u00e9\u2603",
        device_label="Firefox on Linux",
        auth_time=now - 0.5,
    )
    return replace(record, **changes)


def grant(user_id: str, *, now: float | None = None, **changes: Any) -> Grant:
    now = time.time() if now is None else now
    record = Grant(
        id=new_id(),
        client_id="client-" + new_id()[:8],
        user_id=user_id,
        session_digest=digest(new_token()),
        created_at=now - 0.25,
        expires_at=now + 86400.5,
    )
    return replace(record, **changes)


def refresh_token(family: Grant, *, parent: RefreshToken | None = None, **changes: Any) -> RefreshToken:
    """A live refresh token of `family` (the grant's id), the successor of `parent` when given."""
    record = RefreshToken(
        digest=digest(new_token()),
        family_id=family.id,
        parent_digest=parent.digest if parent else None,
        client_id=family.client_id,
        user_id=family.user_id,
        session_digest=family.session_digest,
        sid=new_id(),
        scope="openid email offline_access",
        auth_time=family.created_at - 10.5,
        acr="aal2",
        amr=("pwd", "otp"),
        created_at=family.created_at + 0.125,
        expires_at=family.expires_at - 0.5,
    )
    return replace(record, **changes)
