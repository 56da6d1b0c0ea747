"""Extract the texts of the pages, mails and people-facing errors, and bring every catalogue up to date.

`make translations` runs this module. It writes `src/threshold/locale/messages.pot` from the sources
(Jinja2 templates with the i18n extension; Python strings marked with `N_(...)` or `Phrase(...)`), then
updates each shipped catalogue (`<code>/LC_MESSAGES/messages.po`) against it: new texts arrive empty
for a translator (never guessed), texts gone from the sources are dropped. The English catalogue is
filled with the texts themselves, for operators who reword.

tests/unit/test_translations.py fails when a text in the sources is missing from, or untranslated in,
any shipped catalogue.

Usage: python -m scripts.translations [--check]
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "threshold"
LOCALE_DIR = PACKAGE / "locale"
TEMPLATE = LOCALE_DIR / "messages.pot"
SHIPPED = ("en", "de", "es", "fr", "ar")
SOURCE = "en"

KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
    "N_": None,
    "Phrase": None,
}
METHODS = [
    ("**/templates/**.html", "jinja2"),
    ("**/templates/**.txt", "jinja2"),
    ("**.py", "python"),
]
JINJA = {"extensions": "jinja2.ext.i18n", "trimmed": "true", "newstyle_gettext": "true", "silent": "false"}
OPTIONS = {
    "**/templates/**.html": {**JINJA, "trim_blocks": "true", "lstrip_blocks": "true"},
    "**/templates/**.txt": {**JINJA, "keep_trailing_newline": "true"},
}


def extract() -> Catalog:
    """Every marked text in the package, with where it comes from."""
    catalog = Catalog(
        project="Threshold",
        charset="utf-8",
        creation_date=datetime(2026, 12, 1, tzinfo=UTC),  # fixed: the template only changes with its texts
        fuzzy=False,
    )
    found: Iterator[tuple[str, int, str | tuple[str, ...], list[str], str | None]] = extract_from_dir(
        PACKAGE, method_map=METHODS, options_map=OPTIONS, keywords=KEYWORDS, strip_comment_tags=True
    )
    for filename, lineno, message, comments, context in found:
        catalog.add(
            message, None, [(f"src/threshold/{filename}", lineno)], auto_comments=comments, context=context
        )
    return catalog


def _write(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, sort_output=True, include_previous=False)


def update(template: Catalog) -> dict[str, Catalog]:
    catalogues: dict[str, Catalog] = {}
    for code in SHIPPED:
        path = LOCALE_DIR / code / "LC_MESSAGES" / "messages.po"
        if path.exists():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=code)
        else:
            catalog = Catalog(locale=code, project="Threshold", charset="utf-8", fuzzy=False)
        # a copy each: update() shares the template's entries, and English fills them in
        catalog.update(copy.deepcopy(template), no_fuzzy_matching=True, update_header_comment=False)
        catalog.obsolete.clear()
        if code == SOURCE:
            for message in catalog:
                if message.id and not _translated(message.string):
                    message.string = tuple(message.id) if message.pluralizable else message.id
        catalog.fuzzy = False
        _write(catalog, path)
        catalogues[code] = catalog
    return catalogues


def main(argv: list[str]) -> int:
    template = extract()
    if "--check" in argv:
        print(f"{len(template)} texts in the sources")
        return 0
    _write(template, TEMPLATE)
    for code, catalog in update(template).items():
        missing = sum(1 for message in catalog if message.id and not _translated(message.string))
        print(f"{code}: {len(catalog)} texts, {missing} untranslated")
    return 0


def _translated(string: object) -> bool:
    return all(string) if isinstance(string, tuple | list) else bool(string)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
