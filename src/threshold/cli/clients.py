"""`threshold clients ...` and `threshold keys ...`: OAuth/OIDC clients and signing keys."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from threshold.cli.exits import EXIT_FAILED

if TYPE_CHECKING:
    from threshold.oidc.provider import Provider
    from threshold.services import Services


def clients_command(args: argparse.Namespace) -> Callable[[Services], Awaitable[int]]:
    jwks_file = getattr(args, "jwks_file", None)
    jwks = json.loads(Path(jwks_file).read_text(encoding="utf-8")) if jwks_file else None

    from threshold.oidc.models import client_summary as client_dict

    async def work(services: Services) -> int:
        provider = services.provider
        if args.action == "create":
            issued = await provider.create_client(
                name=args.name,
                redirect_uris=args.redirect_uris,
                post_logout_redirect_uris=args.post_logout_redirect_uris,
                public=args.public,
                first_party=args.first_party,
                grant_types=args.grant_types,
                scopes=args.scopes,
                token_endpoint_auth_method=args.auth_method,
                jwks=jwks,
                access_token_lifetime=args.access_token_lifetime,
                signing_alg=args.signing_alg,
                id_token_alg=args.id_token_alg,
                logo_uri=args.logo_uri,
                backchannel_logout_uri=args.backchannel_logout_uri,
                backchannel_logout_session_required=args.backchannel_logout_session_required,
                deletion_event_uri=args.deletion_event_uri,
            )
            body = client_dict(issued.client, issued.secret)
            if args.json:
                print(json.dumps(body, indent=2))
            else:
                print(f"client_id:     {issued.client.client_id}")
                if issued.secret:
                    print(f"client_secret: {issued.secret}   (shown once; store it now)")
            return 0
        if args.action == "list":
            clients = await provider.list_clients()
            if args.json:
                print(json.dumps([client_dict(c) for c in clients], indent=2))
            else:
                for c in clients:
                    kind = "public" if c.public else "confidential"
                    print(f"{c.client_id}  {c.name}  {kind}  {','.join(g.value for g in c.grant_types)}")
            return 0
        if args.action == "update":
            return await _update_client(provider, args)
        if not await provider.delete_client(args.client_id):
            print(f"threshold: no client {args.client_id}", file=sys.stderr)
            return EXIT_FAILED
        print(f"deleted client {args.client_id}")
        return 0

    return work


async def _update_client(provider: Provider, args: argparse.Namespace) -> int:
    from threshold.core.accounts import OPERATOR
    from threshold.oidc.models import client_summary as client_dict

    updated = await provider.update_client(
        args.client_id,
        name=args.name,
        redirect_uris=args.redirect_uris,
        add_redirect_uris=args.add_redirect_uris,
        remove_redirect_uris=args.remove_redirect_uris,
        post_logout_redirect_uris=args.post_logout_redirect_uris,
        add_post_logout_redirect_uris=args.add_post_logout_redirect_uris,
        remove_post_logout_redirect_uris=args.remove_post_logout_redirect_uris,
        first_party=args.first_party,
        id_token_alg=args.id_token_alg,
        logo_uri=args.logo_uri,
        backchannel_logout_uri=args.backchannel_logout_uri,
        backchannel_logout_session_required=args.backchannel_logout_session_required,
        deletion_event_uri=args.deletion_event_uri,
        rotate_secret=args.rotate_secret,
        context=OPERATOR,
    )
    if updated is None:
        print(f"threshold: no client {args.client_id}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(client_dict(updated.client, updated.secret), indent=2))
        return 0
    print(f"updated client {updated.client.client_id}")
    if updated.secret:
        print(f"client_secret: {updated.secret}   (shown once; store it now; the old one no longer works)")
    return 0


def keys_command(args: argparse.Namespace) -> Callable[[Services], Awaitable[int]]:
    from threshold.core.accounts import OPERATOR
    from threshold.oidc.models import key_summary

    async def work(services: Services) -> int:
        ring = services.provider.keys
        await ring.ensure_keys()
        if args.action == "rotate":
            promoted = await services.provider.rotate_keys(args.alg, context=OPERATOR)
            print("active now: " + (", ".join(promoted) or "unchanged (another process rotated)"))
            return 0
        keys = await ring.keys()
        rows = [key_summary(k) for k in keys]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(f"{row['kid']}  {row['alg']}  {row['state']}  created {row['created_at']}")
        return 0

    return work
