"""Console figures: how long a page of the operators' console takes on a large installation.

A fresh PostgreSQL database gets `--users` accounts (100,000 by default) and `--events` audit events,
written in bulk; then an operator's aal2 session asks for each kind of page `--samples` times through the
whole application (every middleware, the session check, the template) in this process, and the latency
of each is reported. Lists are keyset pages, so a page far down the list should cost what the first does.
Not a test: it reports figures into bench/results/console-*.json and .md.

    .venv/bin/python bench/console.py [--users 100000] [--events 200000] [--samples 30]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from bench.run import save_results  # noqa: E402
from tests.support import create_pg_database, drop_pg_database  # noqa: E402

from threshold.core.accounts import OPERATOR  # noqa: E402
from threshold.core.console import AuditQuery  # noqa: E402
from threshold.core.models import Aal, Amr, AuditKind, RequestContext  # noqa: E402
from threshold.services import build_services  # noqa: E402
from threshold.settings import Settings  # noqa: E402

ISSUER = "https://console.bench.example"
SESSION_COOKIE = "__Host-threshold_session"
BATCH = 5000
KINDS = [AuditKind.LOGIN_SUCCEEDED, AuditKind.LOGIN_FAILED, AuditKind.LOGOUT, AuditKind.PASSWORD_CHANGED]


async def fill(services: Any, users: int, events: int) -> list[str]:
    """`users` accounts (user.000000@bench.example ...) and `events` audit events, in bulk."""
    from threshold.adapters.sql import schema as t

    now = time.time()
    ids: list[str] = []
    async with services.engine.begin() as conn:
        for start in range(0, users, BATCH):
            rows = []
            for n in range(start, min(users, start + BATCH)):
                user_id = secrets.token_hex(16)
                ids.append(user_id)
                email = f"user.{n:06d}@bench.example"
                rows.append(
                    {
                        "id": user_id,
                        "email": email,
                        "email_normalized": email,
                        "email_verified": True,
                        "disabled": False,
                        "created_at": now - (users - n),
                        "mfa_required": False,
                        "credential_epoch": 0,
                    }
                )
            await conn.execute(t.users.insert(), rows)
        for start in range(0, events, BATCH):
            rows = [
                {
                    "at": now - (events - n) * 0.5,
                    "kind": KINDS[n % len(KINDS)].value,
                    "user_id": ids[n % len(ids)],
                    "ip": f"198.51.{n % 250}.{n % 200}",
                    "user_agent": "bench",
                    "detail": "{}",
                }
                for n in range(start, min(events, start + BATCH))
            ]
            await conn.execute(t.audit_events.insert(), rows)
        await conn.exec_driver_sql("ANALYZE users")
        await conn.exec_driver_sql("ANALYZE audit_events")
    return ids


def figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from threshold.web.app import create_app

    settings = Settings(
        issuer=ISSUER, database_url=url, key_encryption_key=secrets.token_urlsafe(32), access_log=False
    )
    services = build_services(settings)
    try:
        from threshold.adapters.sql.migrate import upgrade

        await upgrade(services.engine)
        started = time.monotonic()
        ids = await fill(services, args.users, args.events)
        filled = time.monotonic() - started
        operator = await services.accounts.create_user(
            email="operator@bench.example", password="bench marks are not tests 2026", verified=True
        )
        await services.console.grant(operator, by="bench", context=OPERATOR)
        issued = await services.sessions.issue_session(
            user_id=operator.id,
            aal=Aal.AAL2,
            amr=[Amr.PASSWORD, Amr.OTP],
            context=RequestContext(ip="127.0.0.1", user_agent="bench"),
        )
        app = create_app(settings, services=services)
        await services.provider.keys.ensure_keys()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ISSUER, headers={"accept": "text/html"}
        )
        client.cookies.set(SESSION_COOKIE, issued.token, domain="console.bench.example", path="/")
        last = f"user.{args.users - 60:06d}@bench.example"
        oldest = await services.console.audit_page(
            AuditQuery(before=(time.time() - (args.events - 80) * 0.5, 0)), limit=1
        )
        cursor = f"{oldest[0].at!r}:{oldest[0].id}" if oldest else ""
        pages = {
            "users: first page": ("/admin/users", {}),
            f"users: a page near the end (after {last})": ("/admin/users", {"after": last}),
            "users: address prefix search (user.05...)": ("/admin/users", {"q": "user.05"}),
            "users: search by id": ("/admin/users", {"q": ids[len(ids) // 2]}),
            "user: detail page": (f"/admin/users/{ids[len(ids) // 3]}", {}),
            "audit log: newest page": ("/admin/audit", {}),
            "audit log: one event kind": ("/admin/audit", {"event": "password_changed"}),
            "audit log: one account": ("/admin/audit", {"user": ids[7]}),
            "audit log: a page near the oldest": ("/admin/audit", {"before": cursor}),
        }
        results: dict[str, Any] = {
            "users": args.users,
            "events": args.events,
            "fill_seconds": round(filled, 1),
            "pages": {},
        }
        for name, (path, params) in pages.items():
            samples = []
            for _ in range(args.samples + 3):
                begun = time.perf_counter()
                response = await client.get(path, params=params)
                samples.append(time.perf_counter() - begun)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
            results["pages"][name] = figures(samples[3:])  # the first few warm the caches
            print(name, results["pages"][name], flush=True)
        await client.aclose()
        return results
    finally:
        await services.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    url = create_pg_database("bench")
    try:
        results = asyncio.run(measure(args, url))
    finally:
        drop_pg_database(url)
    lines = [
        f"# Console pages (PostgreSQL, {args.users:,} accounts, {args.events:,} audit events; "
        f"{args.samples} requests each, in process)",
        "",
        "| page | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- |",
    ]
    for name, f in results["pages"].items():
        lines.append(f"| {name} | {f['p50_ms']} | {f['p99_ms']} | {f['max_ms']} |")
    save_results("console", results, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
