"""Template rendering with the theme, the CSP nonce and the CSRF token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, partial
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from threshold.i18n import ENGLISH, Language, parse_instant
from threshold.oidc.errors import OAuthError
from threshold.settings import Settings
from threshold.web.i18n import request_language
from threshold.web.security import allow_form_redirect, csp_nonce, csrf_token_for, set_csrf_cookie

AUTHORIZE_PATH = "/oauth2/authorize"


def when(instant: str | None, language: Language = ENGLISH) -> Markup:
    """The `when` filter: an ISO 8601 instant as `<time>`, its text in UTC in the page's language
    (Language.moment: "30 Nov 2026, 14:05 UTC" in English, "30.11.2026, 14:05 UTC" in German).

    The ISO value stays machine-readable in `datetime` and visible on hover in `title`; static/times.js
    rewrites the text into the reader's own time zone, in the page's language, when scripts run.
    """
    if not instant:
        return Markup("")
    moment = parse_instant(instant)
    if moment is None:
        return escape(instant)
    machine = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    text = language.moment(moment)
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(machine, text)


@cache
def environment(language: Language = ENGLISH) -> Environment:
    """The pages' templates in `language` (English, the texts' own, by default); one per language."""
    env = Environment(
        loader=PackageLoader("threshold.web.pages", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(language.translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = partial(when, language=language)
    env.filters["t"] = language.gettext  # a text from Python (a Phrase)
    return env


TRANSLATED_CONTEXT = ("error", "message", "notice")
"""Context values that carry a text from Python (an error's words, a notice): translated when a
catalogue has them (texts marked with core.i18n.N_), shown as they are otherwise."""


@dataclass(frozen=True, slots=True)
class PageApplication:
    """The application a page works for: its name and logo are shown, and the page's forms may end
    in a redirect to `return_uri` (a registered redirect or post-logout redirect URI)."""

    name: str
    logo_uri: str | None
    return_uri: str


async def application_for(request: Request, target: str) -> PageApplication | None:
    """The application behind a `next` path that continues an authorization, if it is one.

    The client and its redirect URI pass the authorization endpoint's own checks (the client exists,
    the redirect URI is registered for it exactly), so a forged `next` widens nothing.
    """
    path, _, query = target.partition("?")
    if path != AUTHORIZE_PATH or not query:
        return None
    params = dict(parse_qsl(query, keep_blank_values=True))
    try:
        client, redirect_uri = await request.app.state.services.provider.authorization_client(params)
    except OAuthError:
        return None
    return PageApplication(name=client.name, logo_uri=client.logo_uri, return_uri=redirect_uri)


async def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    application: PageApplication | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page. One whose `next` continues an authorization names the application (`application`)
    and lets its forms redirect there (see security.allow_form_redirect)."""
    services = request.app.state.services
    settings: Settings = services.settings
    target = context.get("next")
    if application is None and isinstance(target, str):
        application = await application_for(request, target)
    if application is not None:
        allow_form_redirect(request, application.return_uri)
    csrf, is_new = csrf_token_for(request)
    language = request_language(request, next_target=target if isinstance(target, str) else None)
    for key in TRANSLATED_CONTEXT:
        value = context.get(key)
        if isinstance(value, str) and value and not isinstance(value, Markup):
            context[key] = language.gettext(value)
    html = (
        environment(language)
        .get_template(template)
        .render(
            lang=language.tag,
            text_dir=language.direction,
            language=language.code,
            languages=[(offered.code, offered.name) for offered in services.catalogues.languages.values()],
            theme=settings.theme,
            nonce=csp_nonce(request.scope),
            csrf_token=csrf,
            path=request.url.path,
            application=application,
            email_login=settings.email.login_enabled,
            social=[(f"social-{s.id}", s.name) for s in settings.sso.social],
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.headers["Content-Language"] = language.tag
    if is_new:
        set_csrf_cookie(response, csrf)
    return response


async def error_page(
    request: Request, status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    return await render(
        request, "error.html", status=status, headers=headers, status_code=status, message=message
    )
