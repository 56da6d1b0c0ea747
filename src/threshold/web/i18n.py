"""Which language a request is answered in: the ONE place the order of preference lives.

1. OIDC `ui_locales` (space-separated, best first), on the page's own query or on the authorization
   request the page continues (its `next`);
2. the language picker's cookie `threshold_lang`;
3. `Accept-Language`, by quality;
4. the operator's default (`THRESHOLD_I18N__DEFAULT_LANGUAGE`).

The choice is kept on the request, and in `core.i18n.REQUEST_LANGUAGE` for the mail the request queues.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from threshold.core.i18n import REQUEST_LANGUAGE
from threshold.i18n import Catalogues, Language

LANGUAGE_COOKIE = "threshold_lang"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
_MAX_HEADER = 512


def accept_language(header: str) -> list[str]:
    """The tags of an Accept-Language header, best first (RFC 9110 section 12.5.4); `q=0` excluded."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:_MAX_HEADER].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip().lower()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if tag and 0 < quality <= 1:
            ranked.append((-quality, index, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def ui_locales(request: Request, next_target: str | None) -> list[str]:
    """The `ui_locales` of this request, or of the authorization request its `next` continues."""
    own = request.query_params.get("ui_locales")
    if own:
        return own[:_MAX_HEADER].split()
    target = next_target if next_target is not None else request.query_params.get("next")
    if target and target.startswith("/oauth2/authorize?"):
        for key, value in parse_qsl(urlsplit(target).query):
            if key == "ui_locales":
                return value[:_MAX_HEADER].split()
    return []


def request_language(request: Request, *, next_target: str | None = None) -> Language:
    """The language this request is answered in (see the module's docstring), chosen once per request."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    chosen: Language | None = state.get("language")
    if chosen is not None and next_target is None:
        return chosen
    catalogues: Catalogues = request.app.state.services.catalogues
    chosen = (
        catalogues.choose(ui_locales(request, next_target))
        or catalogues.choose([request.cookies.get(LANGUAGE_COOKIE, "")[:20]])
        or catalogues.choose(accept_language(request.headers.get("accept-language", "")))
        or catalogues.default
    )
    state["language"] = chosen
    REQUEST_LANGUAGE.set(chosen.code)
    return chosen


def remember_language(response: Response, language: Language) -> None:
    """The picker's cookie: not a secret, read by the server only."""
    response.set_cookie(
        LANGUAGE_COOKIE,
        language.code,
        max_age=LANGUAGE_COOKIE_AGE,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )
