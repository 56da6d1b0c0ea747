"""What one end of access reaches is decided in one place (core.revocation, with its applications' side
in oidc.backchannel): no other module ends a person's sessions wholesale or revokes a person's grants.

A new cause goes through `AccessRevoker.end_access`; a module that called the primitives below
directly would end sessions without ending their tokens, or without telling the applications, or
without the audit event. The test reads the source, so such a call fails here before it ships.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import threshold
from threshold.core.revocation import AUDIT_KINDS, Cause

SOURCE = Path(threshold.__file__).parent

ALLOWED: dict[str, set[str]] = {
    # ending a person's sessions: only the one operation
    "end_user_sessions": {"core/revocation.py"},
    "end_org_sessions": {"core/revocation.py"},
    # revoking a person's grants: only the applications' side of that operation
    "revoke_for_user": {"oidc/backchannel.py"},
    "revoke_for_session": {"oidc/backchannel.py"},
    "revoke_for_sessions": {"oidc/backchannel.py"},
    "revoke_for_org": {"oidc/backchannel.py"},
    # the store's wholesale delete: the session service (and the cache that wraps the store)
    "delete_for_user": {"core/sessions.py", "core/session_cache.py"},
}


def _calls() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ALLOWED
            ):
                found.append((node.func.attr, path.relative_to(SOURCE).as_posix(), node.lineno))
    return found


def test_only_the_revocation_operation_ends_sessions_and_grants() -> None:
    calls = _calls()
    assert {name for name, _, _ in calls} >= {"end_user_sessions", "revoke_for_user", "revoke_for_org"}
    strays = [f"{where}:{line} calls {name}" for name, where, line in calls if where not in ALLOWED[name]]
    assert strays == [], "end access through core.revocation.AccessRevoker.end_access: " + "; ".join(strays)


@pytest.mark.parametrize("cause", list(Cause))
def test_every_cause_is_used_somewhere(cause: Cause) -> None:
    """A cause in the enum that no code passes is a cause that was meant to go through the operation and
    does not (or a dead name)."""
    name = f"Cause.{cause.name}"
    users = [
        p
        for p in SOURCE.rglob("*.py")
        if p.name != "revocation.py" or p.parent.name != "core"
        if name in p.read_text(encoding="utf-8")
    ]
    assert users, f"{name} is passed by no module"


def test_audit_kinds_name_causes() -> None:
    assert set(AUDIT_KINDS) <= set(Cause)
