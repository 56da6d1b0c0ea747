"""Whatever an operator's browser sends, the console answers 4xx with its reason, never 5xx."""

from __future__ import annotations

import httpx
import pytest

from tests.console.helpers import HTML, ConsoleUser

BAD_READS = [
    ("/admin/users", {"q": "a\x00b"}),
    ("/admin/users", {"after": "\x00"}),
    ("/admin/audit", {"ip": "1.2.3.4\x00"}),
    ("/admin/audit", {"user": "x\x00y"}),
    ("/admin/audit", {"before": "1:99999999999999999999"}),
    ("/admin/audit", {"before": "nan:1"}),
    ("/admin/audit", {"since": "yesterday"}),
    ("/admin/audit/export", {"before": "1:-99999999999999999999", "format": "csv"}),
    ("/admin/users/x%00y", {}),
    ("/admin/orgs/x%00y", {}),
    ("/admin/clients/x%00y", {}),
]


@pytest.mark.parametrize(("path", "params"), BAD_READS)
async def test_bad_reads_are_refused_plainly(
    operator: ConsoleUser, path: str, params: dict[str, str]
) -> None:
    response = await operator.browser.get(path, params=params, headers=HTML)
    assert 400 <= response.status_code < 500, (path, params, response.status_code, response.text[:300])


@pytest.mark.parametrize(
    "path", ["/admin/users/x%00y/disable", "/admin/orgs/x%00y/domains", "/admin/clients/x%00y/delete"]
)
async def test_bad_posts_are_refused_plainly(operator: ConsoleUser, path: str) -> None:
    response = await operator.post(path, {"domain": "a\x00.example", "name": "n\x00"})
    assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:300])


async def test_htmx_restoring_history_gets_the_whole_page(operator: ConsoleUser) -> None:
    """Back after a search: htmx asks again for the page (HX-History-Restore-Request) and swaps it into
    <body>, so it must be the whole page, not the results alone."""
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    response = await operator.browser.get("/admin/users", params={"q": "operator"}, headers=headers)
    assert "<nav" in response.text and 'id="user-search"' in response.text


async def test_the_console_answers_json_clients_as_pages(
    app: httpx.AsyncClient, operator: ConsoleUser
) -> None:
    """Not an API: an unknown page is the error page, whatever the Accept header."""
    response = await operator.browser.get("/admin/users/nobody-here")
    assert response.status_code == 404
