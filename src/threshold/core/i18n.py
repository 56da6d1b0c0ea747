"""Texts for people in their language: the marker that puts a Python string in the catalogues, and the
language of the request being served (mail queued on its behalf is written in it).

Which language a request gets is decided in the web layer (threshold.web.i18n); the catalogues are
loaded in threshold.i18n. The domain only marks its texts and carries the choice along.
"""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_LANGUAGE: ContextVar[str | None] = ContextVar("threshold_request_language", default=None)
"""The language code chosen for the request being served; None outside a request (the default then)."""


def N_(message: str) -> str:
    """Marks `message` for extraction into the catalogues; it is translated where it is shown."""
    return message


class Phrase(str):
    """A text with values in it: reads as the source text filled in, and keeps the template (the
    catalogue's entry, `{name}` placeholders) and the values, so that it is translated before it is
    filled in."""

    template: str
    values: dict[str, object]

    def __new__(cls, template: str, **values: object) -> Phrase:
        phrase = super().__new__(cls, template.format(**values))
        phrase.template = template
        phrase.values = values
        return phrase
