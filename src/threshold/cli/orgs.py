"""`threshold orgs ...`: organizations, their members and their domains."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threshold.services import Services

ROLES = ("owner", "admin", "member")


def add_orgs_parser(commands: Any) -> None:
    orgs = commands.add_parser("orgs", help="manage organizations").add_subparsers(
        dest="action", required=True
    )
    create = orgs.add_parser("create", help="create an organization")
    create.add_argument("--name", required=True)
    create.add_argument("--slug", help="short name in URLs (default: from the name)")
    create.add_argument("--json", action="store_true")
    listing = orgs.add_parser("list", help="list organizations")
    listing.add_argument("--json", action="store_true")

    members = orgs.add_parser("members", help="members and their roles").add_subparsers(
        dest="members_action", required=True
    )
    add = members.add_parser("add", help="add an account to the organization (or change its role)")
    add.add_argument("org", metavar="ORG", help="id or slug")
    add.add_argument("email")
    add.add_argument("--role", choices=ROLES, default="member")
    add.add_argument("--json", action="store_true")
    remove = members.add_parser("remove", help="remove an account from the organization")
    remove.add_argument("org", metavar="ORG")
    remove.add_argument("email")
    remove.add_argument("--json", action="store_true")
    list_members = members.add_parser("list", help="list the organization's members")
    list_members.add_argument("org", metavar="ORG")
    list_members.add_argument("--json", action="store_true")

    invite = orgs.add_parser("invite", help="email an invitation (single use, 7 days, this address only)")
    invite.add_argument("org", metavar="ORG")
    invite.add_argument("email")
    invite.add_argument("--role", choices=ROLES, default="member")
    invite.add_argument("--json", action="store_true")

    domains = orgs.add_parser("domains", help="domains the organization controls").add_subparsers(
        dest="domains_action", required=True
    )
    add_domain = domains.add_parser("add", help="claim a domain; prints the DNS TXT record to publish")
    add_domain.add_argument("org", metavar="ORG")
    add_domain.add_argument("domain")
    add_domain.add_argument("--json", action="store_true")
    verify = domains.add_parser("verify", help="verify a claimed domain by its DNS TXT record")
    verify.add_argument("org", metavar="ORG")
    verify.add_argument("domain")
    verify.add_argument("--trust", action="store_true", help="assert it as the operator instead of DNS")
    verify.add_argument("--json", action="store_true")
    list_domains = domains.add_parser("list", help="list the organization's domains")
    list_domains.add_argument("org", metavar="ORG")
    list_domains.add_argument("--json", action="store_true")

    connections = orgs.add_parser(
        "connections", help="the organization's identity providers (OIDC or SAML)"
    ).add_subparsers(dest="connections_action", required=True)
    add_connection = connections.add_parser(
        "add", help="connect an identity provider; prints the URLs to register at the IdP"
    )
    add_connection.add_argument("org", metavar="ORG")
    add_connection.add_argument("--type", choices=("oidc", "saml"), required=True)
    add_connection.add_argument("--name", default="", help="shown to people (default: the organization's)")
    add_connection.add_argument(
        "--issuer", help="OIDC: the exact issuer URL (Entra multi-tenant: {tenantid})"
    )
    add_connection.add_argument("--client-id", help="OIDC: the client id the IdP issued")
    add_connection.add_argument(
        "--client-secret", help="OIDC: its secret, sealed at rest (--client-secret=S if it starts with '-')"
    )
    add_connection.add_argument(
        "--client-secret-stdin", action="store_true", help="OIDC: read the secret from standard input"
    )
    add_connection.add_argument("--scope", action="append", default=[], help="OIDC: extra scope (repeatable)")
    add_connection.add_argument("--metadata-file", help="SAML: the IdP's metadata XML")
    add_connection.add_argument(
        "--metadata-url", help="SAML: where the IdP publishes its metadata (read now)"
    )
    add_connection.add_argument("--email-claim", default="", help="claim or attribute with the address")
    add_connection.add_argument("--name-claim", default="", help="claim or attribute with the name")
    add_connection.add_argument("--groups-claim", default="", help="claim or attribute with the groups")
    add_connection.add_argument(
        "--allow-idp-initiated", action="store_true", help="SAML: accept sign-ins started at the IdP"
    )
    add_connection.add_argument(
        "--require-sso", action="store_true", help="addresses at the verified domains sign in only here"
    )
    add_connection.add_argument(
        "--break-glass",
        action="append",
        default=[],
        metavar="EMAIL",
        help="an owner who may still sign in another way under --require-sso (repeatable; audited)",
    )
    add_connection.add_argument(
        "--require-idp-mfa", action="store_true", help="refuse sign-ins without MFA at the IdP"
    )
    add_connection.add_argument(
        "--require-local-mfa", action="store_true", help="ask for a local second factor after the IdP"
    )
    add_connection.add_argument("--default-role", choices=ROLES, default="member")
    add_connection.add_argument(
        "--role-group", action="append", default=[], metavar="GROUP=ROLE", help="map an IdP group to a role"
    )
    add_connection.add_argument("--json", action="store_true")
    list_connections = connections.add_parser("list", help="list the organization's connections")
    list_connections.add_argument("org", metavar="ORG")
    list_connections.add_argument("--json", action="store_true")
    remove_connection = connections.add_parser(
        "remove", help="remove a connection (and its linked identities)"
    )
    remove_connection.add_argument("org", metavar="ORG")
    remove_connection.add_argument("connection")
    remove_connection.add_argument("--json", action="store_true")

    scim_token = orgs.add_parser(
        "scim-token", help="make a SCIM bearer token for the organization's IdP (printed once)"
    )
    scim_token.add_argument("org", metavar="ORG")
    scim_token.add_argument("--name", default="", help="what it is for (e.g. Entra ID)")
    scim_token.add_argument("--json", action="store_true")
    scim_tokens = orgs.add_parser("scim-tokens", help="the organization's SCIM tokens").add_subparsers(
        dest="scim_tokens_action", required=True
    )
    list_scim = scim_tokens.add_parser("list", help="list the tokens (never their secrets)")
    list_scim.add_argument("org", metavar="ORG")
    list_scim.add_argument("--json", action="store_true")
    revoke_scim = scim_tokens.add_parser("revoke", help="revoke a token")
    revoke_scim.add_argument("org", metavar="ORG")
    revoke_scim.add_argument("token_id", metavar="TOKEN_ID")
    revoke_scim.add_argument("--json", action="store_true")


def _print(args: argparse.Namespace, body: Any, text: str) -> None:
    print(json.dumps(body, indent=2) if args.json else text)


def orgs_command(args: argparse.Namespace) -> Callable[[Services], Awaitable[int]]:
    from threshold.core.accounts import OPERATOR
    from threshold.core.orgs.service import (
        domain_summary,
        invitation_summary,
        membership_summary,
        org_summary,
    )

    async def work(services: Services) -> int:
        orgs = services.orgs
        if args.action == "create":
            org = await orgs.create(name=args.name, slug=args.slug, context=OPERATOR)
            _print(args, org_summary(org), f"organization {org.slug} ({org.id}): {org.name}")
            return 0
        if args.action == "list":
            found = await orgs.list_orgs()
            _print(
                args, [org_summary(o) for o in found], "\n".join(f"{o.id}  {o.slug}  {o.name}" for o in found)
            )
            return 0
        org = await orgs.find(args.org)
        if args.action == "invite":
            invitation = await orgs.invite(
                org, email=args.email, role=args.role, invited_by="the operator", context=OPERATOR
            )
            _print(
                args,
                invitation_summary(invitation, args.email),
                f"invited {args.email} to {org.slug} as {invitation.role.value}",
            )
            return 0
        if args.action == "members":
            if args.members_action == "add":
                membership = await orgs.add_member(org, email=args.email, role=args.role, context=OPERATOR)
                _print(
                    args,
                    membership_summary(membership, args.email),
                    f"{args.email} is {membership.role} of {org.slug}",
                )
            elif args.members_action == "remove":
                user = await orgs.remove_member(org, email=args.email, context=OPERATOR)
                _print(
                    args,
                    {"org_id": org.id, "user_id": user.id, "removed": True},
                    f"removed {user.email} from {org.slug}",
                )
            else:
                rows = [
                    {"user_id": u.id, "email": u.email, "role": m.role.value}
                    for m, u in await orgs.members(org)
                ]
                _print(args, rows, "\n".join(f"{r['user_id']}  {r['email']}  {r['role']}" for r in rows))
            return 0
        if args.action == "connections":
            return await _connections(args, services, org)
        if args.action in ("scim-token", "scim-tokens"):
            return await _scim_tokens(args, services, org)
        if args.domains_action == "add":
            claim = await orgs.add_domain(org, args.domain, context=OPERATOR)
            _print(
                args,
                domain_summary(claim),
                f"publish a TXT record at {claim.txt_name} with the value {claim.txt_value}, then run "
                f"`threshold orgs domains verify {org.slug} {claim.domain}`",
            )
        elif args.domains_action == "verify":
            claim = await orgs.verify_domain(org, args.domain, trust=args.trust, context=OPERATOR)
            _print(args, domain_summary(claim), f"{claim.domain} is verified for {org.slug}")
        else:
            claims = [domain_summary(d) for d in await orgs.domains(org)]
            _print(
                args,
                claims,
                "\n".join(f"{c['domain']}  {'verified' if c['verified'] else 'pending'}" for c in claims),
            )
        return 0

    return work


async def _connections(args: argparse.Namespace, services: Services, org: Any) -> int:
    import asyncio
    import sys
    from pathlib import Path

    from threshold.adapters.sso.saml import fetch_metadata
    from threshold.core.accounts import OPERATOR
    from threshold.core.errors import InvalidRequest
    from threshold.core.sso.connections import ConnectionSpec

    connections = services.sso.connections
    if args.connections_action == "list":
        rows = [connections.summary(c) for c in await connections.of_org(org)]
        _print(args, rows, "\n".join(f"{r['id']}  {r['type']}  {r['name']}" for r in rows))
        return 0
    if args.connections_action == "remove":
        await connections.remove(org, args.connection, context=OPERATOR)
        _print(args, {"id": args.connection, "removed": True}, f"removed connection {args.connection}")
        return 0
    groups: dict[str, str] = {}
    for pair in args.role_group:
        group, _, role = pair.partition("=")
        if not group or role not in ROLES:
            raise InvalidRequest("--role-group takes GROUP=ROLE with a role of owner, admin or member.")
        groups[group] = role
    metadata = None
    if args.type == "oidc":
        if args.client_secret_stdin:
            args.client_secret = (await asyncio.to_thread(sys.stdin.readline)).strip()
    elif bool(args.metadata_file) == bool(args.metadata_url):
        raise InvalidRequest("A SAML connection needs --metadata-file or --metadata-url.")
    elif args.metadata_url:
        metadata = await fetch_metadata(args.metadata_url, seconds=services.settings.sso.http_timeout)
    else:
        try:
            metadata = await asyncio.to_thread(Path(args.metadata_file).read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidRequest(f"The metadata file cannot be read: {error}") from None
    spec = ConnectionSpec(
        type=args.type,
        name=args.name,
        issuer=args.issuer,
        client_id=args.client_id,
        client_secret=args.client_secret,
        scopes=args.scope,
        metadata_xml=metadata,
        allow_idp_initiated=args.allow_idp_initiated,
        email_claim=args.email_claim,
        name_claim=args.name_claim,
        groups_claim=args.groups_claim,
        require_sso=args.require_sso,
        break_glass=args.break_glass,
        require_idp_mfa=args.require_idp_mfa,
        require_local_mfa=args.require_local_mfa,
        default_role=args.default_role,
        role_groups=groups,
    )
    connection = await connections.add(org, spec, context=OPERATOR)
    body = connections.summary(connection)
    if connection.saml is not None:
        text = (
            f"connection {connection.id} (saml). At the IdP, register:\n"
            f"  entity id (audience): {body['entity_id']}\n  ACS URL: {body['acs_url']}\n"
            f"  metadata: {body['metadata_url']}"
        )
    else:
        text = (
            f"connection {connection.id} (oidc). At the IdP, register the redirect URI {body['redirect_uri']}"
            f" and the back-channel logout URI {body['backchannel_logout_uri']}"
        )
    _print(args, body, text)
    return 0


async def _scim_tokens(args: argparse.Namespace, services: Services, org: Any) -> int:
    from threshold.core.accounts import OPERATOR
    from threshold.core.scim.tokens import scim_token_summary
    from threshold.scim.wiring import scim_tokens

    tokens = scim_tokens(services)
    if args.action == "scim-token":
        issued = await tokens.create(org, name=args.name, context=OPERATOR)
        body = {"token": issued.token, "base_url": tokens.base_url, **scim_token_summary(issued.record)}
        _print(
            args,
            body,
            f"SCIM base URL: {tokens.base_url}\nbearer token (shown once): {issued.token}\n"
            f"token id (to revoke it): {issued.record.id}",
        )
        return 0
    if args.scim_tokens_action == "list":
        rows = [scim_token_summary(t) for t in await tokens.list_tokens(org)]
        _print(
            args,
            rows,
            "\n".join(f"{r['id']}  {'revoked' if r['revoked'] else 'live'}  {r['name']}" for r in rows),
        )
        return 0
    await tokens.revoke(org, args.token_id, context=OPERATOR)
    _print(args, {"id": args.token_id, "revoked": True}, f"revoked SCIM token {args.token_id}")
    return 0
