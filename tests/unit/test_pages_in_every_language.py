"""Every template of the hosted pages and the console, rendered in each shipped language: the page
says its language and direction, and no English sentence of three words or more is left in what a
person reads (visible text and the labels assistive technology reads).

Rendered straight from the templates with a lenient context (every variable not given is empty), so
each page's unconditional text is checked; tests/integration/test_languages.py renders pages through
their routes with real data.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jinja2 import ChainableUndefined, Environment
from lxml import html as lxml_html
from scripts.translations import SHIPPED

from threshold.i18n import Catalogues, Language
from threshold.settings import ThemeSettings
from threshold.web import pages
from threshold.web.pages.render import environment

TEMPLATE_DIR = Path(pages.__file__).parent / "templates"
TEMPLATES = sorted(str(path.relative_to(TEMPLATE_DIR)) for path in TEMPLATE_DIR.rglob("*.html"))


@cache
def catalogues() -> Catalogues:
    return Catalogues()


def _lenient(language: Language) -> Environment:
    return environment(language).overlay(undefined=ChainableUndefined)


def _render(language: Language, template: str) -> str:
    context: dict[str, Any] = {
        "lang": language.tag,
        "text_dir": language.direction,
        "language": language.code,
        "languages": [(offered.code, offered.name) for offered in catalogues().languages.values()],
        "theme": ThemeSettings(),
        "csrf_token": "token",
        "nonce": "nonce",
        "path": "/",
        "next": "/account",
        # the counts of the plural forms (a plural needs a number)
        "deletion_grace_days": 7,
        "min_length": 15,
        "factors": {"recovery_codes_left": 2},
        "params": {},  # the hidden fields of the consent and logout forms
        "member_count": 0,
    }
    return _lenient(language).get_template(template).render(**context)


def _words(text: str) -> list[str]:
    """The words of a text, without the product's name and marks like "·" (a title's "Clients ·
    Threshold" is one word that French spells the same)."""
    return [word for word in text.split() if any(c.isalpha() for c in word) and word != "Threshold"]


def _sentences(page: str) -> set[str]:
    """Texts of three words or more; commands and values shown as `<code>` stay as they are."""
    tree = lxml_html.fromstring(page)
    for literal in tree.xpath("//script|//style|//code"):
        literal.drop_tree()
    texts = [" ".join(text.split()) for text in tree.xpath("//text()")]
    texts += tree.xpath("//@aria-label|//@title|//@placeholder|//@alt")
    return {text for text in texts if len(_words(text)) >= 3}


def test_every_template_is_found() -> None:
    assert len(TEMPLATES) > 30
    assert "account.html" in TEMPLATES and "console/user.html" in TEMPLATES


@pytest.mark.parametrize("code", [code for code in SHIPPED if code != "en"])
def test_every_template_in_the_language_leaves_no_english_sentence(code: str) -> None:
    language = catalogues().get(code)
    english = catalogues().get("en")
    left: dict[str, set[str]] = {}
    for template in TEMPLATES:
        page = _render(language, template)
        if template.startswith(("base", "console/layout")) or "<html" in page:
            assert f'lang="{language.tag}" dir="{language.direction}"' in page, template
        same = _sentences(_render(english, template)) & _sentences(page)
        if same:
            left[template] = same
    assert not left, left
