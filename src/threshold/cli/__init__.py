"""The `threshold` command: init, serve, migrate, users, clients, keys, orgs, config-reference."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from threshold.adapters.kek import KeyFileError
from threshold.cli.clients import clients_command, keys_command
from threshold.cli.init import PROFILES, init_command
from threshold.cli.orgs import add_orgs_parser, orgs_command
from threshold.cli.users import users_command
from threshold.core.errors import ThresholdError
from threshold.logs import CLI_TEXT_FORMAT, configure_logging
from threshold.oidc.models import ACCESS_TOKEN_DEFAULT_ALG, ID_TOKEN_DEFAULT_ALG, SIGNING_ALGORITHMS
from threshold.settings import ConfigurationError, Settings, load_settings

if TYPE_CHECKING:
    from threshold.services import Services

# The service itself (threshold.services and all it pulls in) is imported only by the commands that
# use it: every `serve --workers N` worker process imports this module before it can answer uvicorn's
# health check (multiprocessing's spawn re-imports the `threshold` script), so it must stay light.

from threshold.cli.exits import EXIT_CONFIG, EXIT_FAILED

# With --workers N, uvicorn's supervisor pings each worker every half second and kills (then replaces)
# one that has not answered within this many seconds. A worker answers only once its process has
# imported this module, which took more than uvicorn's default of 5 s on a busy host: workers were
# killed while starting (a replacement after a crash, or the first ones), again and again. The wait
# is also how long a worker killed while a ping is on its way goes unnoticed (the pipe stays open in
# the supervisor), so it is kept short; the answer comes from a thread, not the event loop.
WORKER_HEALTHCHECK_TIMEOUT = 10
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threshold", description="Threshold authentication service.")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file (env vars take precedence)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8400)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    commands.add_parser("migrate", help="create or upgrade the database schema")
    commands.add_parser("config-reference", help="print the configuration reference (Markdown)")
    init = commands.add_parser(
        "init", help="write a commented configuration file for one architecture, and print what comes next"
    )
    init.add_argument("--profile", required=True, choices=list(PROFILES))
    init.add_argument("--output", default="threshold.toml", help="the file to write (default threshold.toml)")
    init.add_argument("--issuer", default="http://localhost:8400", help="Threshold's public URL")
    init.add_argument(
        "--app-url", default="http://localhost:3000", help="the application's (or API's) URL, for its clients"
    )
    init.add_argument("--force", action="store_true", help="replace the file if it exists")

    users = commands.add_parser("users", help="manage accounts").add_subparsers(dest="action", required=True)
    create = users.add_parser(
        "create", help="create an account (the password is read from a prompt or stdin)"
    )
    create.add_argument("--email", required=True)
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.add_argument(
        "--verified", action="store_true", help="the operator vouches for the address (no verification mail)"
    )
    listing = users.add_parser("list", help="list accounts")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    for name, text in (
        ("disable", "disable an account and end all its sessions"),
        ("enable", "re-enable a disabled account"),
        ("revoke-sessions", "end every session of an account, on every process"),
    ):
        action = users.add_parser(name, help=text)
        action.add_argument("user", metavar="EMAIL_OR_ID")
    require = users.add_parser("require-mfa", help="require a second factor for an account (--off to lift)")
    require.add_argument("user", metavar="EMAIL_OR_ID")
    require.add_argument("--off", action="store_true")
    recover = users.add_parser(
        "recover",
        help="operator-approved recovery: reset the account's passkeys, authenticator app and recovery codes "
        "after a waiting period (the user sees it and can cancel)",
    )
    recover.add_argument("user", metavar="EMAIL_OR_ID")
    recover.add_argument(
        "--wait", type=int, help="seconds before the reset (default: THRESHOLD_MFA__RECOVERY_WAIT)"
    )
    recover.add_argument("--by", default="operator (CLI)", help="who approved it (shown to the user)")
    recover.add_argument("--cancel", action="store_true", help="cancel the account's pending recoveries")
    grant = users.add_parser(
        "grant-admin",
        help="give an account access to the operators' console at /admin/ (--off takes it back); "
        "it signs in there with a second factor or a passkey",
    )
    grant.add_argument("user", metavar="EMAIL_OR_ID")
    grant.add_argument("--off", action="store_true", help="take console access back")
    users.add_parser("admins", help="list the accounts with console access")
    delete = users.add_parser(
        "delete",
        help="delete an account: locked and signed out everywhere now, its data erased after "
        "THRESHOLD_ACCOUNT__DELETION_GRACE (signing in before then can keep it), or at once with --now; "
        "refused for the last account with console access",
    )
    delete.add_argument("user", metavar="EMAIL_OR_ID")
    delete.add_argument("--now", action="store_true", help="erase at once, without a grace period")
    delete.add_argument("--by", default="operator (CLI)", help="who asked for it (kept in the audit log)")
    clients = commands.add_parser("clients", help="manage OAuth/OIDC clients").add_subparsers(
        dest="action", required=True
    )
    create_client = clients.add_parser("create", help="register a client (prints the secret once)")
    create_client.add_argument("--name", required=True)
    create_client.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris")
    create_client.add_argument(
        "--post-logout-redirect-uri", action="append", default=[], dest="post_logout_redirect_uris"
    )
    create_client.add_argument(
        "--public", action="store_true", help="a public client (SPA, native app): no secret"
    )
    create_client.add_argument("--first-party", action="store_true", help="skip the consent page")
    create_client.add_argument(
        "--grant-type",
        action="append",
        default=[],
        dest="grant_types",
        choices=["authorization_code", "refresh_token", "client_credentials"],
    )
    create_client.add_argument("--scope", action="append", default=[], dest="scopes")
    create_client.add_argument(
        "--auth-method",
        dest="auth_method",
        choices=["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
    )
    create_client.add_argument("--jwks-file", help="the client's public JWK set (for private_key_jwt)")
    create_client.add_argument(
        "--signing-alg",
        default=ACCESS_TOKEN_DEFAULT_ALG,
        choices=SIGNING_ALGORITHMS,
        help="the access tokens' algorithm (default Ed25519)",
    )
    create_client.add_argument(
        "--id-token-alg",
        default=ID_TOKEN_DEFAULT_ALG,
        choices=SIGNING_ALGORITHMS,
        help="the ID tokens' algorithm, id_token_signed_response_alg (default RS256: all RPs verify it)",
    )
    create_client.add_argument(
        "--logo-uri", help="an https URL of the application's logo, shown on sign-in pages"
    )
    create_client.add_argument(
        "--backchannel-logout-uri",
        help="where logout tokens are posted when a person's session ends (https, or http on loopback)",
    )
    create_client.add_argument(
        "--deletion-event-uri",
        help="where a security event token (RISC account-purged) is posted when a person who used this "
        "client has their account erased (https, or http on loopback)",
    )
    create_client.add_argument(
        "--backchannel-logout-session-required",
        action="store_true",
        help="the application needs sid in logout tokens (always sent)",
    )
    create_client.add_argument("--access-token-lifetime", type=int, help="seconds (30..900)")
    create_client.add_argument("--json", action="store_true")
    list_clients = clients.add_parser("list", help="list clients")
    list_clients.add_argument("--json", action="store_true")
    delete_client = clients.add_parser(
        "delete", help="delete a client; its refresh and access tokens stop working at once"
    )
    delete_client.add_argument("client_id")
    update_client = clients.add_parser(
        "update",
        help="change a client under the rules of registration (a new secret is printed once)",
        description="Change a registered client. A list of URIs is either replaced (--redirect-uri, "
        "--post-logout-redirect-uri, repeated) or edited (--add-..., --remove-...), not both.",
    )
    update_client.add_argument("client_id")
    update_client.add_argument("--name")
    for option, dest in (
        ("redirect-uri", "redirect_uris"),
        ("post-logout-redirect-uri", "post_logout_redirect_uris"),
    ):
        update_client.add_argument(
            f"--{option}", action="append", dest=dest, metavar="URI", help="replace the list (repeat)"
        )
        update_client.add_argument(
            f"--add-{option}", action="append", default=[], dest=f"add_{dest}", metavar="URI"
        )
        update_client.add_argument(
            f"--remove-{option}", action="append", default=[], dest=f"remove_{dest}", metavar="URI"
        )
    update_client.add_argument("--id-token-alg", choices=SIGNING_ALGORITHMS)
    update_client.add_argument("--logo-uri", help="an https URL; '' removes the logo")
    update_client.add_argument("--backchannel-logout-uri", help="'' removes it")
    update_client.add_argument("--deletion-event-uri", help="'' removes it")
    update_client.add_argument(
        "--backchannel-logout-session-required", action=argparse.BooleanOptionalAction, default=None
    )
    update_client.add_argument(
        "--rotate-secret",
        action="store_true",
        help="issue a new secret (printed once); the old one stops working at once",
    )
    update_client.add_argument(
        "--first-party",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="skip the consent page (--no-first-party: ask for consent again)",
    )
    update_client.add_argument("--json", action="store_true")

    keys = commands.add_parser("keys", help="manage signing keys").add_subparsers(
        dest="action", required=True
    )
    list_keys = keys.add_parser("list", help="list signing keys and their states")
    list_keys.add_argument("--json", action="store_true")
    rotate = keys.add_parser("rotate", help="promote the published next key, retire the active one")
    rotate.add_argument("--alg", choices=SIGNING_ALGORITHMS)
    add_orgs_parser(commands)
    return parser


class NotReady(Exception):
    """The service cannot run as set up (an unmigrated database): one line for the operator, no traceback."""


async def _require_schema(settings: Settings) -> None:
    """Stop unless the database is at this release's schema: every command but `migrate` needs it.

    Checked before anything is built, so that nothing (no key file, no database file) is created first.
    """
    from threshold.adapters.sql.db import create_engine
    from threshold.adapters.sql.migrate import SchemaNotCurrent, check_schema

    engine = create_engine(settings.effective_database_url, pool_size=1)
    try:
        await check_schema(engine)
    except SchemaNotCurrent as exc:
        raise NotReady(exc.advice) from None
    finally:
        await engine.dispose()


def _run(settings: Settings, work: Callable[[Services], Awaitable[int]], *, needs_schema: bool = True) -> int:
    async def main() -> int:
        if needs_schema:
            await _require_schema(settings)
        from threshold.services import build_services

        services = build_services(settings)
        if needs_schema:  # a revocation made here is acknowledged by every server before it returns
            services.start_invalidation_listener()
        try:
            return await work(services)
        finally:
            await services.close()

    return asyncio.run(main())


async def _migrate(services: Services) -> int:
    from threshold.adapters.sql.migrate import current_revision, upgrade

    before = await current_revision(services.engine)
    await upgrade(services.engine)
    after = await current_revision(services.engine)
    print(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    return 0


def _share_hashing_cores(settings: Settings, *, workers: int) -> None:
    """Several workers share the cores for password hashing: each computes as many hashes at once as
    its share of them (at least one), unless THRESHOLD_ARGON2__MAX_CONCURRENT says otherwise. Four
    hashes on two cores (two workers with a thread per core each) run slower in all than two: every
    hash reads and writes 19 MiB or more, and they evict each other from the cache (measured: two
    workers, sign-in 38/s with two hashing threads each, 46/s with one)."""
    from threshold.core.passwords import usable_cpus

    if workers > 1 and settings.argon2.max_concurrent == 0:
        os.environ["THRESHOLD_ARGON2__MAX_CONCURRENT"] = str(max(1, usable_cpus() // workers))


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from threshold.adapters.kek import load_or_create_kek
    from threshold.logs import uvicorn_log_config
    from threshold.web.protocol import CoalescingHttpToolsProtocol

    metrics = settings.metrics_address
    if metrics is not None and metrics[1] == args.port:
        print("threshold: THRESHOLD_METRICS_LISTEN: use another port than --port", file=sys.stderr)
        return EXIT_CONFIG
    asyncio.run(_require_schema(settings))  # one line here, not a traceback from every worker
    load_or_create_kek(settings.data_dir, settings.key_encryption_key)  # fail here, not in a worker
    _share_hashing_cores(settings, workers=args.workers)
    config = uvicorn.Config(
        "threshold.web.app:app_from_environment",
        factory=True,
        http=CoalescingHttpToolsProtocol,  # each response in one write (web.protocol)
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=uvicorn_log_config(settings),
        log_level=settings.log_level,
        proxy_headers=False,  # X-Forwarded-For is read only from Settings.trusted_proxies
        server_header=False,
        access_log=False,  # threshold.access logs each request, without the query string
        timeout_graceful_shutdown=10,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT,
    )
    # What uvicorn.run does, with the metrics address as a second socket of the same workers (the app
    # tells the two apart by the port a request came in on: web.metrics.MetricsAddressMiddleware).
    with _metrics_directory(workers=args.workers):
        sockets = [config.bind_socket()]
        try:
            if metrics is not None:
                sockets.append(_metrics_socket(*metrics))
            if args.workers > 1:
                Multiprocess(config, sockets=sockets).run()
                return 0
            server = uvicorn.Server(config)
            server.run(sockets=sockets)
        except KeyboardInterrupt:
            return 0
        finally:
            for sock in sockets:
                sock.close()
    return 0 if server.started else EXIT_FAILED


@contextmanager
def _metrics_directory(*, workers: int) -> Iterator[None]:
    """Several workers keep their metrics in files that /metrics adds up (prometheus_client's
    multiprocess mode): in a directory of this run's own, made before the workers start and removed
    after they stop. One worker keeps them in memory."""
    os.environ.pop(MULTIPROCESS_DIR, None)  # a directory left from elsewhere would add up stale files
    if workers <= 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="threshold-metrics-")  # private: mode 0700
    os.environ[MULTIPROCESS_DIR] = directory  # the workers inherit it
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_DIR, None)
        shutil.rmtree(directory, ignore_errors=True)


def _metrics_socket(host: str, port: int) -> socket.socket:
    """The listening socket of Settings.metrics_listen, shared by every worker like the main one."""
    try:
        sock = socket.create_server((host, port), family=_family(host), reuse_port=False)
    except OSError as exc:
        raise NotReady(f"THRESHOLD_METRICS_LISTEN={host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def config_reference() -> str:
    """Markdown reference of every setting, generated from the Settings schema."""
    lines = ["| environment variable | default | description |", "| --- | --- | --- |"]

    def walk(model: Any, prefix: str) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation, f"{prefix}{name.upper()}__")
                continue
            default = info.get_default(call_default_factory=True)
            shown = "" if default is None else f"`{default}`"
            lines.append(f"| `{prefix}{name.upper()}` | {shown} | {info.description or ''} |")

    walk(Settings, "THRESHOLD_")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "config-reference":
        print(config_reference())
        return
    if args.command == "init":
        raise SystemExit(
            init_command(
                args.profile, output=args.output, issuer=args.issuer, app=args.app_url, force=args.force
            )
        )
    try:
        settings = load_settings(args.config)
    except ConfigurationError as exc:
        print(f"threshold: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    configure_logging(settings, text_format=CLI_TEXT_FORMAT)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin at import
    try:
        if args.command == "serve":
            code = _serve(args, settings)
        elif args.command == "migrate":
            code = _run(settings, _migrate, needs_schema=False)
        elif args.command == "clients":
            code = _run(settings, clients_command(args))
        elif args.command == "keys":
            code = _run(settings, keys_command(args))
        elif args.command == "orgs":
            code = _run(settings, orgs_command(args))
        else:
            code = _run(settings, users_command(args))
    except KeyFileError as exc:
        print(f"threshold: key-encryption key: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    except NotReady as exc:
        print(f"threshold: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    except ThresholdError as exc:
        print(f"threshold: {exc.code}: {exc.detail}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None
    raise SystemExit(code)
