"""The console's audit log: filters, keyset pages, and exports (a recent second factor, and audited)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

import httpx

from tests.api.helpers import FakeClock
from tests.console.conftest import WINDOW
from tests.console.helpers import ConsoleUser, events_of, new_person, services_of
from threshold.core.console import PAGE_SIZE
from threshold.core.models import AuditKind, RequestContext

ROW = re.compile(r"<tr>\s*<td>(.*?)</td>\s*<td>([a-z_]+)</td>", re.S)


async def record(
    app: httpx.AsyncClient, kind: AuditKind, user_id: str | None, ip: str, **detail: str
) -> None:
    context = RequestContext(ip=ip, user_agent='=HYPERLINK("https://evil.example")')
    await services_of(app).auditor.record(kind, user_id=user_id, context=context, **detail)


def kinds_on(page: str) -> list[str]:
    return [kind for _, kind in ROW.findall(page)]


async def test_filters_by_account_event_address_and_time(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    await record(app, AuditKind.LOGIN_FAILED, person.user_id, "198.51.100.9")
    clock.advance(3 * 86400)
    await record(app, AuditKind.LOGIN_FAILED, person.user_id, "198.51.100.10")
    by_user = await operator.get("/admin/audit", user=person.account.email)
    assert set(kinds_on(by_user.text)) == {"signup", "login_failed"}
    by_kind = await operator.get("/admin/audit", user=person.user_id, event="login_failed")
    assert kinds_on(by_kind.text) == ["login_failed", "login_failed"]
    by_ip = await operator.get("/admin/audit", ip="198.51.100.9")
    assert kinds_on(by_ip.text) == ["login_failed"]
    today = datetime.fromtimestamp(clock.now(), UTC).date().isoformat()
    since_today = await operator.get("/admin/audit", user=person.user_id, since=today)
    assert kinds_on(since_today.text) == ["login_failed"]
    until_before = await operator.get("/admin/audit", user=person.user_id, until="2000-01-01")
    assert kinds_on(until_before.text) == []
    unknown = await operator.get("/admin/audit", event="no_such_event")
    assert unknown.status_code == 400 and "Unknown event" in unknown.text


async def test_pages_are_keyset_pages_with_nothing_lost_or_repeated(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    for n in range(PAGE_SIZE * 2 + 5):
        if n % 40 == 0:
            clock.advance(1)  # many events share an instant: the id breaks the tie
        await record(app, AuditKind.LOGIN_FAILED, person.user_id, "198.51.100.1", n=str(n))
    seen: list[str] = []
    url = f"/admin/audit?user={person.user_id}&event=login_failed"
    while url:
        page = await operator.browser.get(url, headers={"accept": "text/html"})
        assert page.status_code == 200
        seen += re.findall(r"<td>n=(\d+)</td>", page.text)
        older = re.search(r'<a href="([^"]+)">Older</a>', page.text)
        url = older.group(1).replace("&amp;", "&") if older else ""
    assert seen == [str(n) for n in reversed(range(PAGE_SIZE * 2 + 5))]


async def test_an_export_needs_a_recent_second_factor_and_is_audited(
    app: httpx.AsyncClient, clock: FakeClock, operator: ConsoleUser
) -> None:
    person = await new_person(app, clock)
    await record(app, AuditKind.LOGIN_FAILED, person.user_id, "198.51.100.7", note="-2+3")
    clock.advance(WINDOW + 1)
    stale = await operator.get("/admin/audit/export", user=person.user_id, format="csv")
    assert stale.status_code == 303 and stale.headers["location"].startswith("/reauthenticate?")
    assert "%2Fadmin%2Faudit%2Fexport%3F" in stale.headers["location"]
    assert await events_of(app, kind="audit_exported") == []
    await operator.step_up()
    exported = await operator.get("/admin/audit/export", user=person.user_id, format="csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["cache-control"] == "no-store"
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["kind"] for r in rows} == {"signup", "login_failed"}
    failed = next(r for r in rows if r["kind"] == "login_failed")
    assert failed["user_agent"].startswith("'=HYPERLINK")  # no formula reaches a spreadsheet
    assert json.loads(failed["detail"]) == {"note": "-2+3"}
    as_json = await operator.get("/admin/audit/export", user=person.user_id, format="json")
    lines = [json.loads(line) for line in as_json.text.splitlines()]
    assert {line["kind"] for line in lines} == {"signup", "login_failed"}
    assert next(line for line in lines if line["kind"] == "login_failed")["detail"] == {"note": "-2+3"}
    exports = await events_of(app, kind="audit_exported")
    assert len(exports) == 2
    for event in exports:
        assert event.detail["actor"] == f"console:{operator.user_id}"
        assert event.detail["user"] == person.user_id
    assert (await operator.get("/admin/audit/export", format="xml")).status_code == 400
