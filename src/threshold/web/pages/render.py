"""Template rendering with the theme, the CSP nonce and the CSRF token."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from threshold.settings import Settings
from threshold.web.security import csrf_token_for, set_csrf_cookie


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("threshold.web.pages", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    settings: Settings = request.app.state.services.settings
    csrf, is_new = csrf_token_for(request)
    html = (
        environment()
        .get_template(template)
        .render(
            theme=settings.theme,
            nonce=request.scope.get("state", {}).get("csp_nonce", ""),
            csrf_token=csrf,
            path=request.url.path,
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status, headers=headers)
    if is_new:
        set_csrf_cookie(response, csrf)
    return response


def error_page(
    request: Request, status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    return render(request, "error.html", status=status, headers=headers, status_code=status, message=message)
