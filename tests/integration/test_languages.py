"""Pages, mails and error texts in the person's language, on both backends.

The choice: `ui_locales` (on the page or on the authorization request it continues), then the picker's
cookie, then Accept-Language, then the operator's default. Every shipped language renders every page
a person reaches by GET with no English sentence left over, and every mail in its words.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po
from lxml import html as lxml_html
from scripts.translations import SHIPPED
from sqlalchemy import select

from tests.api.helpers import browser
from tests.conftest import ISSUER, STRONG_PASSWORD, csrf, login, signup, unique_email
from threshold import i18n
from threshold.adapters.mail.render import COPY, render_mail
from threshold.adapters.sql import schema as t
from threshold.adapters.sql.db import reading
from threshold.core.devices import device_label
from threshold.core.i18n import Phrase
from threshold.core.models import OutgoingMail
from threshold.i18n import Catalogues
from threshold.services import Services
from threshold.settings import ThemeSettings

TRANSLATED = [code for code in SHIPPED if code != "en"]
LANG = re.compile(r'<html lang="([^"]+)" dir="(ltr|rtl)">')

ANONYMOUS_PAGES = [
    "/login",
    "/signup",
    "/reset-password",
    "/reset-password?token=abc",
    "/verify-email?token=abc",
    "/login/email",
    "/nowhere",
]
SIGNED_IN_PAGES = ["/account", "/logout", "/reauthenticate", "/account/passkey-upgrade"]


def _lang(page: httpx.Response) -> tuple[str, str]:
    found = LANG.search(page.text)
    assert found, page.text[:300]
    return found.group(1), found.group(2)


def _sentences(page: httpx.Response) -> set[str]:
    """The page's visible texts of three words or more (and its labels for assistive technology)."""
    tree = lxml_html.fromstring(page.text)
    for hidden in tree.xpath("//script|//style"):
        hidden.drop_tree()
    texts = [" ".join(text.split()) for text in tree.xpath("//body//text()")]
    texts += tree.xpath("//@aria-label|//@title|//@placeholder|//@alt")
    return {text for text in texts if len(text.split()) >= 3}


async def _page(client: httpx.AsyncClient, path: str, language: str) -> httpx.Response:
    return await client.get(path, headers={"accept": "text/html", "accept-language": language})


async def test_the_language_follows_ui_locales_then_the_cookie_then_accept_language(
    client: httpx.AsyncClient,
) -> None:
    assert _lang(await client.get("/login")) == ("en", "ltr")  # the default
    page = await client.get("/login", headers={"accept-language": "fr-CA, de;q=0.9"})
    assert _lang(page) == ("fr", "ltr")
    assert page.headers["content-language"] == "fr"
    assert _lang(await client.get("/login", headers={"accept-language": "pt, de;q=0.5, *;q=0.1"}))[0] == "de"
    assert _lang(await client.get("/login", headers={"accept-language": "ar;q=0, es"}))[0] == "es"

    client.cookies.set("threshold_lang", "ar")
    assert _lang(await client.get("/login", headers={"accept-language": "fr"})) == ("ar", "rtl")
    assert (
        _lang(await client.get("/login?ui_locales=xx%20es-MX", headers={"accept-language": "fr"}))[0] == "es"
    )
    authorize = "/oauth2/authorize?client_id=app&ui_locales=de"
    continuing = await client.get(f"/login?next={quote(authorize, safe='')}")
    assert _lang(continuing)[0] == "de"  # the authorization request's ui_locales, carried in next
    client.cookies.set("threshold_lang", "klingon")
    assert _lang(await client.get("/login"))[0] == "en"


@pytest.mark.parametrize("language", TRANSLATED)
async def test_every_page_is_in_the_language_with_no_english_sentence_left(
    client_factory: Callable[..., Any], language: str
) -> None:
    client: httpx.AsyncClient = await client_factory()
    email = unique_email("lang")
    english: dict[str, set[str]] = {}
    translated: dict[str, httpx.Response] = {}
    for path in ANONYMOUS_PAGES:
        english[path] = _sentences(await _page(client, path, "en"))
        translated[path] = await _page(client, path, language)
    assert (await signup(client, email)).status_code == 201
    for path in SIGNED_IN_PAGES:
        english[path] = _sentences(await _page(client, path, "en"))
        translated[path] = await _page(client, path, language)
    direction = "rtl" if language == "ar" else "ltr"
    for path, page in translated.items():
        assert page.status_code in (200, 404), (path, page.status_code)
        assert _lang(page) == (language, direction), path
        left = {text for text in english[path] & _sentences(page) if email not in text}
        assert not left, f"{path} in {language} still says {sorted(left)[:5]}"


async def test_the_picker_remembers_a_language(client: httpx.AsyncClient) -> None:
    login_page = await client.get("/login")
    assert 'name="lang"' in login_page.text and 'lang="ar"' in login_page.text
    token = await csrf(client)
    chosen = await client.post(
        "/language", data={"csrf_token": token, "lang": "de"}, headers={"referer": f"{ISSUER}/signup?x=1"}
    )
    assert chosen.status_code == 303 and chosen.headers["location"] == "/signup?x=1"
    assert "threshold_lang=de" in chosen.headers["set-cookie"]
    assert "HttpOnly" in chosen.headers["set-cookie"] and "Secure" in chosen.headers["set-cookie"]
    assert _lang(await client.get("/signup"))[0] == "de"

    offsite = await client.post(
        "/language", data={"csrf_token": token, "lang": "fr", "next": "//evil.example/"}
    )
    assert offsite.headers["location"] == "/"
    unknown = await client.post(
        "/language", data={"csrf_token": token, "lang": "xx"}, headers={"accept": "text/html"}
    )
    assert unknown.status_code == 400
    forged = await browser(client).post(
        "/language", data={"lang": "fr"}, headers={"origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    assert "threshold_lang" not in forged.headers.get("set-cookie", "")


async def test_error_texts_for_people_are_translated_and_codes_stay(client: httpx.AsyncClient) -> None:
    email = unique_email("lang")
    await signup(client, email)
    other = browser(client)
    await csrf(other)
    wrong = await other.post(
        "/api/v1/login",
        json={"email": email, "password": "not the password at all"},
        headers={"accept-language": "de"},
    )
    assert wrong.status_code == 401
    body = wrong.json()
    assert body["code"] == "invalid_credentials"
    assert body["detail"] == Catalogues().get("de").gettext("The email address or password is incorrect.")
    assert body["detail"] != "The email address or password is incorrect."
    assert wrong.headers["content-language"] == "de"

    form = await other.post(
        "/login",
        data={"csrf_token": other.headers["X-CSRF-Token"], "email": email, "password": "wrong wrong wrong"},
        headers={"accept-language": "fr"},
    )
    assert Catalogues().get("fr").gettext("The email address or password is incorrect.") in unescape(
        form.text
    )


async def test_mail_is_written_in_the_language_of_the_request(client: httpx.AsyncClient) -> None:
    email = unique_email("lang")
    await signup(client, email)
    other = browser(client)
    await csrf(other)
    asked = await other.post(
        "/api/v1/password/reset/request", json={"email": email}, headers={"accept-language": "es"}
    )
    assert asked.status_code in (200, 202, 204), asked.text
    subjects = await _subjects(client.services, email, "reset_password")  # type: ignore[attr-defined]
    spanish = Catalogues().get("es").gettext("Reset your password")
    assert subjects and all(subject.startswith(spanish) for subject in subjects), subjects


@pytest.mark.parametrize("language", SHIPPED)
def test_every_mail_renders_in_each_language(language: str) -> None:
    catalogues = Catalogues()
    theme = ThemeSettings()
    values = {
        key: "VALUE"
        for key in (
            "link",
            "account",
            "reset",
            "minutes",
            "ip",
            "when",
            "device",
            "org",
            "inviter",
            "role",
            "days",
        )
    } | {"new_email": "new@example.com", "erase_at": "2026-12-08T10:00:00Z", "code": "123456"}
    for kind in COPY:
        mail = OutgoingMail(kind=kind, to="person@example.com", context=values)
        rendered = render_mail(mail, theme, catalogues.get(language))
        english = render_mail(mail, theme, catalogues.get("en"))
        assert f'lang="{language}"' in rendered.html
        assert ('dir="rtl"' in rendered.html) == (language == "ar")
        assert "{" not in rendered.text and "%(" not in rendered.text, (kind, rendered.text)
        if kind == "notice_account_deletion":  # the date as a person of that language reads it
            erase_at = catalogues.get(language).moment(datetime(2026, 12, 8, 10, tzinfo=UTC))
            assert erase_at in rendered.text and "2026-12-08T" not in rendered.text
        if language != "en":
            assert rendered.subject != english.subject, (kind, language)
            assert rendered.text != english.text


@pytest.mark.parametrize(
    "user_agent", ["", "SomethingElse/1.0", "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Firefox/140.0"]
)
def test_the_device_in_a_new_device_mail_is_in_its_language(user_agent: str) -> None:
    german = Catalogues().get("de")
    label = device_label(user_agent)  # what core.email.notices hands the mail
    mail = OutgoingMail(
        kind="notice_new_device",
        to="person@example.com",
        context={
            "device": label,
            "when": "2026-12-01T10:00:00Z",
            "ip": "203.0.113.9",
            "account": "https://x/account",
        },
    )
    rendered = render_mail(mail, ThemeSettings(), german)
    assert german.gettext(label) in rendered.text
    assert str(label) not in rendered.text  # the English label is not left over


def _catalogue(directory: Path, code: str, entries: dict[str, str]) -> None:
    """An operator's catalogue, `<dir>/<code>/LC_MESSAGES/messages.po`, written with Babel."""
    catalog = Catalog(locale=code)
    for message, translation in entries.items():
        catalog.add(message, translation)
    folder = directory / code / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "messages.po").open("wb") as handle:
        write_po(handle, catalog)


async def test_an_operator_adds_a_language_and_rewords_one(
    client_factory: Callable[..., Any], tmp_path: Path
) -> None:
    _catalogue(tmp_path, "pt_BR", {"Forgot your password?": "Esqueceu sua senha?"})
    _catalogue(tmp_path, "en", {"Forgot your password?": "Lost your password?"})
    client: httpx.AsyncClient = await client_factory(i18n={"catalog_dir": tmp_path})
    page = await client.get("/login", headers={"accept-language": "pt-BR"})
    assert _lang(page)[0] == "pt-BR"
    assert "Esqueceu sua senha?" in page.text
    assert "Create an account" in page.text  # what the operator's catalogue leaves out stays English
    assert '<option value="pt_BR" lang="pt-BR"' in page.text
    reworded = await client.get("/login")
    assert "Lost your password?" in reworded.text and "Create an account" in reworded.text
    german = await client.get("/login", headers={"accept-language": "de"})
    assert Catalogues().get("de").gettext("Forgot your password?") in german.text


async def test_login_still_works_after_choosing_arabic(client: httpx.AsyncClient) -> None:
    email = unique_email("lang")
    await signup(client, email)
    other = browser(client)
    other.cookies.set("threshold_lang", "ar")
    assert (await login(other, email, STRONG_PASSWORD)).status_code == 200
    account = await other.get("/account")
    assert _lang(account) == ("ar", "rtl")
    assert Catalogues().get("ar").gettext("Sign out") in account.text or "تسجيل" in account.text


async def _subjects(services: Services, email: str, kind: str) -> list[str]:
    """The subjects of the mail of `kind` queued to `email` (waiting for work queued in the background)."""
    for _ in range(100):
        async with reading(services.engine) as conn:
            found = list(
                (
                    await conn.execute(
                        select(t.mail_queue.c.subject).where(
                            t.mail_queue.c.to_address == email, t.mail_queue.c.kind == kind
                        )
                    )
                ).scalars()
            )
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


async def test_a_form_continuing_an_authorization_mails_in_its_ui_locales(
    client_factory: Callable[..., Any],
) -> None:
    """The form carries the authorization in its `next`: its ui_locales choose the mail's language too,
    ahead of the browser's Accept-Language."""
    client: httpx.AsyncClient = await client_factory(email={"login_enabled": True})
    email = unique_email("lang")
    await signup(client, email)
    other = browser(client)
    token = await csrf(other)
    target = "/oauth2/authorize?client_id=app&ui_locales=de"
    page = await other.post(
        "/login/email",
        data={"csrf_token": token, "email": email, "next": target},
        headers={"accept-language": "fr", "origin": ISSUER},
    )
    assert page.status_code == 200 and _lang(page)[0] == "de"
    german = Catalogues().get("de").gettext("Your sign-in link")
    subjects = await _subjects(client.services, email, "email_login")  # type: ignore[attr-defined]
    assert subjects and all(subject.startswith(german) for subject in subjects), subjects


async def test_the_picker_survives_a_referer_that_is_not_a_url(client: httpx.AsyncClient) -> None:
    token = await csrf(client)
    chosen = await client.post(
        "/language", data={"csrf_token": token, "lang": "es"}, headers={"referer": "https://["}
    )
    assert chosen.status_code == 303 and chosen.headers["location"] == "/"


def test_a_slip_in_an_operators_catalogue_costs_no_page_or_mail(tmp_path: Path) -> None:
    """A translation whose placeholders do not fit, and a language without locale data: the source
    text, and English dates, instead of an error."""
    _catalogue(
        tmp_path,
        "de",
        {"{browser} on {system}": "{browser} unter {systm}", "Sign in to {product}": "Anmelden bei {produkt"},
    )
    _catalogue(tmp_path, "tlh", {"Forgot your password?": "nuqDaq ghItlh?"})
    catalogues = Catalogues(extra_dir=tmp_path)
    german = catalogues.get("de")
    assert (
        german.gettext(Phrase("{browser} on {system}", browser="Firefox", system="Linux"))
        == "Firefox on Linux"
    )
    mail = OutgoingMail(
        kind="email_login", to="p@example.com", context={"link": "x", "minutes": "15", "ip": "x"}
    )
    rendered = render_mail(mail, ThemeSettings(), german)
    assert "Sign in to Threshold" in rendered.text  # the slip's source text; the rest stays German
    klingon = catalogues.get("tlh")
    assert klingon.gettext("Forgot your password?") == "nuqDaq ghItlh?"
    assert klingon.moment(datetime(2026, 12, 8, 10, tzinfo=UTC)) == "8 Dec 2026, 10:00 UTC"
    assert german.gettext("") == ""  # never the catalogue's header


def test_a_language_is_compiled_on_its_first_lookup_and_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process pays for the languages its people use: a command-line run for none."""
    read: list[str] = []

    def counted(handle: Any, **kwargs: Any) -> Any:
        read.append(str(kwargs.get("locale")))
        return read_po(handle, **kwargs)

    monkeypatch.setattr(i18n, "read_po", counted)
    catalogues = Catalogues()
    assert read == [] and "de" in catalogues.languages
    german = catalogues.get("de")
    assert german.gettext("Forgot your password?") != "Forgot your password?"
    german.gettext("Sign out")
    assert read == ["de"]
