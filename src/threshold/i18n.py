"""The message catalogues: the languages Threshold's pages and mails are offered in.

Shipped catalogues live in `threshold/locale/<code>/LC_MESSAGES/messages.po` (`make translations`
extracts the texts and updates them). An operator adds a language, or rewords a shipped one, by putting
a catalogue in the same layout under `THRESHOLD_I18N__CATALOG_DIR`: its translations come first and the
shipped ones fill what it leaves out. A language's `.po` files are compiled in memory the first time a
text is looked up in it (a process pays for the languages its people use: a command, usually none);
`.mo` files are read as they are.

English is the language the texts are written in; its catalogue exists so that an operator can reword.
"""

from __future__ import annotations

import gettext
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from io import BytesIO
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from threshold.core.i18n import Phrase

log = logging.getLogger(__name__)

DOMAIN = "messages"
SHIPPED_DIR = Path(__file__).parent / "locale"
SOURCE_LANGUAGE = "en"


@dataclass(frozen=True, eq=False, slots=True)
class Language:
    """One offered language. Compared by identity: the template environments are cached per language."""

    code: str
    """As in the catalogue directory's name, e.g. `de` or `pt_BR`."""
    tag: str
    """BCP 47, for `<html lang>` and Content-Language: `pt-BR`."""
    name: str
    """The language's own name for itself, for the picker: `Deutsch`, `العربية`."""
    direction: str
    """`ltr` or `rtl`, for `<html dir>`."""
    translations: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        """`message` in this language; a `Phrase` translated first, filled in after."""
        if not message:
            return message  # gettext("") is the catalogue's header
        if isinstance(message, Phrase):
            return fill(self.translations.gettext(message.template), message.template, message.values)
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def moment(self, moment: datetime) -> str:
        """An instant for a person, in UTC, in this language: "30 Nov 2026, 14:05 UTC" in English,
        "30.11.2026, 14:05 UTC" in German (the pages' dates without JavaScript, and the mails')."""
        moment = moment.astimezone(UTC)
        english = f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}, {moment:%H:%M} UTC"
        if normalise(self.code).partition("_")[0] == SOURCE_LANGUAGE:
            return english
        try:
            date = format_date(moment, "medium", locale=self.code)
            clock = format_skeleton("Hm", moment, tzinfo=UTC, locale=self.code)
            pattern = str(get_datetime_format("medium", locale=self.code))
        except (ValueError, UnknownLocaleError):  # an operator's language without locale data
            return english
        return pattern.replace("{1}", date).replace("{0}", clock) + " UTC"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

ENGLISH = Language(
    code=SOURCE_LANGUAGE,
    tag=SOURCE_LANGUAGE,
    name="English",
    direction="ltr",
    translations=gettext.NullTranslations(),
)
"""The texts as written: what a template renders with when no language was chosen."""


def fill(translated: str, source: str, values: Mapping[str, object]) -> str:
    """A translated `{name}` template filled in; the source text's when the translation's placeholders
    do not fit the values (a slip in an operator's catalogue never costs a page or a mail)."""
    try:
        return translated.format(**values)
    except (KeyError, IndexError, ValueError):
        log.warning("a translation does not fit its values: %r", source[:80])
        return source.format(**values)


def parse_instant(value: str) -> datetime | None:
    """An ISO 8601 instant, in UTC (taken as UTC when it names no offset), or None when `value` is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _compiled(path: Path) -> Translations:
    if path.suffix == ".mo":
        with path.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=path.parent.parent.name)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


class _OnFirstUse(gettext.NullTranslations):
    """A language's catalogues (the operator's first, the shipped one as its fallback), compiled on the
    first lookup. Compiling twice when two threads look up at once is harmless: both get the same texts."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._paths = paths
        self._chain: gettext.NullTranslations | None = None

    def loaded(self) -> gettext.NullTranslations:
        if self._chain is None:
            chain = [_compiled(path) for path in self._paths]
            for fallback in chain[1:]:
                chain[0].add_fallback(fallback)
            self._chain = chain[0]
        return self._chain

    def gettext(self, message: str) -> str:
        return self.loaded().gettext(message)

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return self.loaded().ngettext(msgid1, msgid2, n)

    def pgettext(self, context: str, message: str) -> str:
        return self.loaded().pgettext(context, message)

    def npgettext(self, context: str, msgid1: str, msgid2: str, n: int) -> str:
        return self.loaded().npgettext(context, msgid1, msgid2, n)


def _catalogues_in(directory: Path) -> dict[str, Path]:
    """`<code>/LC_MESSAGES/messages.po` (or `.mo`, preferred when both are there) per language code."""
    found: dict[str, Path] = {}
    if not directory.is_dir():
        return found
    for child in sorted(directory.iterdir()):
        folder = child / "LC_MESSAGES"
        for suffix in (".po", ".mo"):
            candidate = folder / f"{DOMAIN}{suffix}"
            if candidate.is_file():
                found[child.name] = candidate
    return found


def _describe(code: str) -> tuple[str, str]:
    try:
        locale = Locale.parse(code)
    except (ValueError, UnknownLocaleError):
        return code, "ltr"
    name = locale.get_display_name(locale) or code
    return name[:1].upper() + name[1:], locale.text_direction


def normalise(tag: str) -> str:
    """`de-at` and `de_AT` both read `de_AT`; the form catalogue directories use."""
    language, _, region = tag.strip().replace("-", "_").partition("_")
    return f"{language.lower()}_{region.upper()}" if region else language.lower()


@cache
def load_catalogues(default: str = SOURCE_LANGUAGE, extra_dir: Path | None = None) -> Catalogues:
    """The catalogues for these settings, loaded once per process: every app built with the same
    settings shares its languages, and with them the template environments cached per language."""
    return Catalogues(default=default, extra_dir=extra_dir)


class Catalogues:
    """Every offered language, loaded once; `choose` picks from a person's preferences."""

    def __init__(self, *, default: str = SOURCE_LANGUAGE, extra_dir: Path | None = None) -> None:
        paths: dict[str, list[Path]] = {}
        for code, path in _catalogues_in(SHIPPED_DIR).items():
            paths.setdefault(code, []).append(path)
        if extra_dir is not None:
            for code, path in _catalogues_in(extra_dir).items():
                paths.setdefault(code, []).insert(0, path)  # the operator's words first
        paths.setdefault(SOURCE_LANGUAGE, [])
        self.languages: dict[str, Language] = {}
        for code in sorted(paths):
            translations = _OnFirstUse(paths[code]) if paths[code] else gettext.NullTranslations()
            name, direction = _describe(code)
            self.languages[normalise(code)] = Language(
                code=code,
                tag=code.replace("_", "-"),
                name=name,
                direction=direction,
                translations=translations,
            )
        chosen = self.choose([default])
        if chosen is None:
            raise ValueError(f"no catalogue for the default language {default!r}")
        self.default = chosen

    def get(self, code: str | None) -> Language:
        """The language with this code, or the default."""
        if code:
            found = self.languages.get(normalise(code))
            if found is not None:
                return found
        return self.default

    def choose(self, preferred: Iterable[str]) -> Language | None:
        """The first offered language among `preferred` (best first): `de-AT` matches `de_AT`, else
        `de`; None when none is offered."""
        for tag in preferred:
            key = normalise(tag)
            if not key or key == "*":
                continue
            found = self.languages.get(key) or self.languages.get(key.partition("_")[0])
            if found is not None:
                return found
        return None
