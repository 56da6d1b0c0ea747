"""The shipped catalogues against the sources: every text of the pages, mails and people-facing errors is
in every catalogue, translated, with its placeholders and markup intact.

The texts are extracted from the sources as they are now (scripts/translations.py, what
`make translations` runs), so a new text in a template, a mail or an `N_(...)` fails here until every
catalogue has it.
"""

from __future__ import annotations

import re
from functools import cache

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po
from scripts.translations import LOCALE_DIR, SHIPPED, extract

from threshold.i18n import Catalogues

PERCENT = re.compile(r"%\((\w+)\)s")
BRACES = re.compile(r"\{(\w+)\}")
TAG = re.compile(r"</?([a-z]+)\b")


@cache
def sources() -> Catalog:
    return extract()


@cache
def shipped(code: str) -> Catalog:
    with (LOCALE_DIR / code / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=code)


def _forms(message: Message) -> tuple[str, ...]:
    string = message.string
    return tuple(str(form) for form in string) if isinstance(string, tuple | list) else (str(string or ""),)


def _ids(message: Message) -> tuple[str, ...]:
    return (
        tuple(str(part) for part in message.id)
        if isinstance(message.id, tuple | list)
        else (str(message.id),)
    )


def _marks(text: str) -> tuple[set[str], set[str], list[str]]:
    return set(PERCENT.findall(text)), set(BRACES.findall(text)), sorted(TAG.findall(text))


def test_sources_have_texts_to_translate() -> None:
    texts = {
        message.id if isinstance(message.id, str) else message.id[0] for message in sources() if message.id
    }
    assert len(texts) > 500
    # one of each origin: a page, the console, a mail's copy, the mail layout, a domain error
    for text in (
        "Forgot your password?",
        "Signing keys",
        "Reset your password",
        "Or open this link: %(url)s",
        "The email address or password is incorrect.",
    ):
        assert text in texts


@pytest.mark.parametrize("code", SHIPPED)
def test_every_text_is_translated(code: str) -> None:
    catalogue = shipped(code)
    missing = []
    for message in sources():
        if not message.id:
            continue
        found = catalogue.get(message.id, context=message.context)
        if found is None or found.fuzzy or not all(_forms(found)):
            missing.append(_ids(message)[0])
    assert not missing, f"{len(missing)} texts not translated in {code}, e.g. {missing[:5]}"
    plurals = catalogue.num_plurals
    for message in catalogue:
        if message.id and message.pluralizable:
            assert len(_forms(message)) == plurals, message.id


@pytest.mark.parametrize("code", SHIPPED)
def test_translations_keep_placeholders_and_markup(code: str) -> None:
    wrong = []
    for message in shipped(code):
        if not message.id:
            continue
        ids = _ids(message)
        percent, braces, tags = _marks(ids[-1])
        for form in _forms(message):
            got_percent, got_braces, got_tags = _marks(form)
            if message.pluralizable:  # a form may leave the number out ("one minute"), never add a name
                ok = got_percent <= percent | _marks(ids[0])[0] and got_braces == braces
            else:
                ok = got_percent == percent and got_braces == braces
            if not ok or got_tags != tags:
                wrong.append((ids[0], form))
    assert not wrong, wrong[:5]
    assert not [error for error in shipped(code).check() if error[1]]


def test_catalogues_load_and_translate() -> None:
    catalogues = Catalogues()
    assert {"en", "de", "es", "fr", "ar"} <= set(catalogues.languages)
    assert catalogues.get("ar").direction == "rtl"
    assert catalogues.get("de").direction == "ltr"
    assert catalogues.get("de").gettext("Forgot your password?") != "Forgot your password?"
    assert catalogues.get("en").gettext("Forgot your password?") == "Forgot your password?"
