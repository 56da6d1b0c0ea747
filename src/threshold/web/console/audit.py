"""The console's audit log: filters (account, event, address, time), keyset pages newest first, and an
export of what the filters select as CSV or JSON lines.

An export is a bulk read of personal data (addresses, user agents): it needs the same recent second
factor as a change, and is itself an audit event naming the operator. CSV cells that a spreadsheet would
run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first) are prefixed with `'`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from threshold.core.clock import iso
from threshold.core.console import PAGE_SIZE, AuditQuery
from threshold.core.errors import Forbidden, InvalidRequest, UserNotFound
from threshold.core.i18n import N_
from threshold.core.models import AuditKind
from threshold.web.console.access import Operator, fresh, page, read
from threshold.web.console.users import event_row
from threshold.web.deps import get_services

router = APIRouter(prefix="/admin", include_in_schema=False)

EXPORT_BATCH = 1000
EXPORT_MAX = 100_000
COLUMNS = ("id", "at", "kind", "user_id", "ip", "user_agent", "detail")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _instant(text: str, *, end: bool) -> float | None:
    """A date (YYYY-MM-DD: its start, or with `end` the next day's start) or a date and time, in UTC."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(N_("Give times as YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC).")) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    return seconds + 86400 if end and len(text) == 10 else seconds


async def _query(request: Request) -> tuple[AuditQuery, dict[str, str]]:
    """The filters of the request's query string, and the same as the form shows them."""
    params = request.query_params
    shown = {name: params.get(name, "").strip()[:320] for name in ("user", "event", "ip", "since", "until")}
    user_id = None
    if shown["user"]:
        try:
            user_id = (await get_services(request).accounts.find_user(shown["user"])).id
        except UserNotFound:
            user_id = shown["user"][:64]  # an account deleted since still has its events
    kind = None
    if shown["event"]:
        try:
            kind = AuditKind(shown["event"])
        except ValueError:
            raise InvalidRequest(N_("Unknown event.")) from None
    before = None
    cursor = params.get("before", "")
    if cursor:
        at, _, event_id = cursor.partition(":")
        try:
            before = (float(at), int(event_id))
        except ValueError:
            before = None
        if before is None or not math.isfinite(before[0]) or not 0 <= before[1] < 2**63:
            raise InvalidRequest(N_("The page position is not valid."))
    query = AuditQuery(
        user_id=user_id,
        kind=kind,
        ip=shown["ip"][:64] or None,
        since=_instant(shown["since"], end=False),
        until=_instant(shown["until"], end=True),
        before=before,
    )
    return query, shown


@router.get("/audit")
async def audit(request: Request) -> Response:
    async def work(operator: Operator) -> Response:
        services = get_services(request)
        problem: str | None = None
        try:
            query, shown = await _query(request)
        except InvalidRequest as error:
            query, shown, problem = AuditQuery(), {}, error.page_detail
        found = list(await services.console.audit_page(query))
        more = len(found) > PAGE_SIZE
        rows = found[:PAGE_SIZE]
        filters = {k: v for k, v in shown.items() if v}
        next_page = None
        if more and rows[-1].id is not None:
            next_page = "/admin/audit?" + urlencode({**filters, "before": f"{rows[-1].at!r}:{rows[-1].id}"})
        return await page(
            request,
            "console/audit.html",
            operator,
            section="audit",
            filters=shown,
            kinds=sorted(k.value for k in AuditKind),
            events=[event_row(e) for e in rows],
            next_page=next_page,
            paged=query.before is not None,
            export_query=urlencode(filters),
            error=problem,
            status=400 if problem else 200,
        )

    return await read(request, work)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _record(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": iso(event.at),
        "kind": event.kind.value,
        "user_id": event.user_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "detail": event.detail,
    }


@router.get("/audit/export")
async def export(request: Request, format: str = "csv") -> Response:
    async def work(operator: Operator) -> Response:
        services = get_services(request)
        if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            raise Forbidden()  # a link on another site: nothing is downloaded, nothing recorded
        if format not in ("csv", "json"):
            raise InvalidRequest(N_("The export format is csv or json."))
        query, _ = await _query(request)
        await fresh(request, operator)
        await services.console.exported(query, fmt=format, context=operator.context)

        async def events() -> AsyncIterator[dict[str, Any]]:
            position, sent = query, 0
            while sent < EXPORT_MAX:
                batch = await services.console.audit_page(
                    position, limit=min(EXPORT_BATCH, EXPORT_MAX - sent)
                )
                for event in batch:
                    yield _record(event)
                sent += len(batch)
                if len(batch) < EXPORT_BATCH or batch[-1].id is None:
                    return
                position = replace(position, before=(batch[-1].at, batch[-1].id))

        async def csv_lines() -> AsyncIterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(COLUMNS)
            async for record in events():
                detail = json.dumps(record["detail"], sort_keys=True)
                writer.writerow([_cell(record[c]) if c != "detail" else _cell(detail) for c in COLUMNS])
                if buffer.tell() > 64 * 1024:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        async def json_lines() -> AsyncIterator[str]:
            async for record in events():
                yield json.dumps(record, sort_keys=True) + "\n"

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        filename = f"threshold-audit-{stamp}.{'csv' if format == 'csv' else 'jsonl'}"
        media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
        return StreamingResponse(
            csv_lines() if format == "csv" else json_lines(),
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    return await read(request, work)
