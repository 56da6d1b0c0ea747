"""Row mapping and statements shared by the SQLAlchemy repositories and their asyncpg fast paths.

A row is read by column name (`row["email"]`), which a SQLAlchemy `RowMapping` and an asyncpg `Record`
both allow. A statement is SQLAlchemy Core with named bind parameters. A repository reads a single row
through `Statements` (db.py): on SQLAlchemy (`EngineStatements`) or on asyncpg (pg_fast.FastPool, which
compiles the very same statement once).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import bindparam, select, update

from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import Columns
from threshold.core.models import PasswordCredential, User
from threshold.oidc.models import AuthorizationCode, Grant, RefreshToken

# --- Users ------------------------------------------------------------------------------------------

USER_BY_ID = select(t.users).where(t.users.c.id == bindparam("user_id"))
USER_BY_EMAIL = select(t.users).where(t.users.c.email_normalized == bindparam("email_normalized"))
PASSWORD_OF_USER = select(t.password_credentials).where(
    t.password_credentials.c.user_id == bindparam("user_id")
)
USER_WITH_PASSWORD = (
    select(
        t.users,
        t.password_credentials.c.hash.label("password_hash"),
        t.password_credentials.c.updated_at.label("password_updated_at"),
    )
    .select_from(t.users.outerjoin(t.password_credentials))
    .where(t.users.c.email_normalized == bindparam("email_normalized"))
)
"""An account and its password (NULLs when it has none): the first read of a password sign-in."""


def user_of(row: Columns) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        email_normalized=row["email_normalized"],
        email_verified=bool(row["email_verified"]),
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        mfa_required=bool(row["mfa_required"]),
        passkey_prompt_snoozed_until=row["passkey_prompt_snoozed_until"],
        credential_epoch=int(row["credential_epoch"]),
    )


def password_of(row: Columns) -> PasswordCredential:
    return PasswordCredential(user_id=row["user_id"], hash=row["hash"], updated_at=row["updated_at"])


def user_with_password(row: Columns) -> tuple[User, PasswordCredential | None]:
    """A row of USER_WITH_PASSWORD."""
    user = user_of(row)
    if row["password_hash"] is None:
        return user, None
    return user, PasswordCredential(
        user_id=user.id, hash=row["password_hash"], updated_at=row["password_updated_at"]
    )


# --- Codes, refresh tokens and grants ---------------------------------------------------------------

_T = TypeVar("_T", AuthorizationCode, RefreshToken)

REFRESH_TOKEN = select(t.refresh_tokens).where(t.refresh_tokens.c.digest == bindparam("digest"))
GRANT = select(t.oauth_grants).where(t.oauth_grants.c.id == bindparam("grant_id"))
CLAIM_PARENT = (
    update(t.refresh_tokens)
    .where(
        t.refresh_tokens.c.digest == bindparam("claimed_digest"),
        t.refresh_tokens.c.used_at.is_(None),
        t.refresh_tokens.c.revoked_at.is_(None),
    )
    .values(used_at=bindparam("now"), successor=bindparam("sealed"))
)
"""Mark a refresh token used, only if it is still unused and unrevoked (the first use wins)."""

REFRESH_TOKEN_SET_LATER = ("used_at", "revoked_at", "successor")
NEW_REFRESH_TOKEN_COLUMNS = [f.name for f in fields(RefreshToken) if f.name not in REFRESH_TOKEN_SET_LATER]
GRANT_COLUMNS = [f.name for f in fields(Grant)]


def record_values(record: AuthorizationCode | RefreshToken) -> dict[str, Any]:
    """Column values of a code or refresh-token record (`amr` is stored comma-separated)."""
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    values["amr"] = ",".join(record.amr)
    return values


def new_refresh_token_values(token: RefreshToken) -> dict[str, Any]:
    """The columns a refresh token is stored with (its use, revocation and successor come later)."""
    values = record_values(token)
    return {name: values[name] for name in NEW_REFRESH_TOKEN_COLUMNS}


def record_of(cls: type[_T], row: Columns) -> _T:
    """A code or refresh-token record of its row."""
    values = {f.name: row[f.name] for f in fields(cls)}
    values["amr"] = tuple(a for a in values["amr"].split(",") if a)
    return cls(**values)


def grant_of(row: Columns) -> Grant:
    return Grant(**{name: row[name] for name in GRANT_COLUMNS})


def grant_values(grant: Grant) -> dict[str, Any]:
    return {name: getattr(grant, name) for name in GRANT_COLUMNS}
