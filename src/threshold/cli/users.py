"""`threshold users ...`: accounts as an operator sees them."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from threshold.core.clock import iso

if TYPE_CHECKING:
    from threshold.services import Services


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise SystemExit("passwords do not match")
    return first


def _user_dict(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "disabled": user.disabled,
        "created_at": iso(user.created_at),
    }


def users_command(args: argparse.Namespace) -> Callable[[Services], Awaitable[int]]:
    from threshold.core.accounts import OPERATOR

    async def work(services: Services) -> int:
        accounts = services.accounts
        if args.action == "create":
            password = read_password(args.password_stdin)
            user = await accounts.create_user(email=args.email, password=password, verified=args.verified)
            print(json.dumps(_user_dict(user)))
            return 0
        if args.action == "list":
            users = await accounts.list_users(limit=args.limit, offset=args.offset)
            if args.json:
                print(json.dumps([_user_dict(u) for u in users], indent=2))
            else:
                for u in users:
                    state = "disabled" if u.disabled else "active"
                    print(f"{u.id}  {u.email}  {state}  {iso(u.created_at)}")
            return 0
        if args.action == "admins":
            for grant in await services.console.grants():
                holder = await services.users.get(grant.user_id)
                email = holder.email if holder else "?"
                print(f"{grant.user_id}  {email}  since {iso(grant.granted_at)}  by {grant.granted_by}")
            return 0
        user = await accounts.find_user(args.user)
        if args.action == "delete":
            done = await services.deletions.by_operator(
                user, by=args.by, immediately=args.now, context=OPERATOR
            )
            if done.erased:
                print(f"deleted {user.email}: its data is erased")
            else:
                print(
                    f"deleted {user.email}: signed out everywhere; its data is erased at {iso(done.erase_at)}"
                )
            return 0
        if args.action == "grant-admin":
            if args.off:
                changed = await services.console.revoke(user, by="cli", context=OPERATOR)
                print(f"{user.email} {'no longer has' if changed else 'did not have'} console access")
            else:
                changed = await services.console.grant(user, by="cli", context=OPERATOR)
                print(f"{user.email} {'now has' if changed else 'already had'} console access")
            return 0
        if args.action == "disable":
            count = await accounts.set_disabled(user, disabled=True)
            print(f"disabled {user.email}; ended {count} session(s)")
        elif args.action == "enable":
            await accounts.set_disabled(user, disabled=False)
            print(f"enabled {user.email}")
        elif args.action == "require-mfa":
            await accounts.set_mfa_required(user, required=not args.off)
            print(f"{'no longer requiring' if args.off else 'requiring'} a second factor for {user.email}")
        elif args.action == "recover":
            recovery = services.recovery
            if args.cancel:
                pending = await recovery.pending_recovery(user)
                for request in pending:
                    await recovery.cancel_recovery(user, request.id, context=OPERATOR)
                print(f"cancelled {len(pending)} recovery request(s) of {user.email}")
            else:
                request = await recovery.request_recovery(
                    user, requested_by=args.by, wait=args.wait, context=OPERATOR
                )
                when = iso(request.execute_after)
                print(f"recovery {request.id}: the factors of {user.email} are reset at {when}")
        else:
            ended = await accounts.revoke_user_sessions(user)
            print(
                f"ended {len(ended.sessions)} session(s) and {ended.refresh_tokens} refresh token(s)"
                f" of {user.email}"
            )
        return 0

    return work
