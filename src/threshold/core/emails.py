"""Email addresses: validation and the normal form used for uniqueness."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from threshold.core.errors import EmailInvalid

MAX_EMAIL_LENGTH = 254  # RFC 5321 section 4.5.3.1.3 (path) minus the angle brackets
MAX_LOCAL_LENGTH = 64

_SPECIALS = re.compile(r'[ "(),:;<>\[\\\]]')
"""What an unquoted local part may not hold beside non-printable characters: the space and RFC 5322's
specials (a quoted local part is refused)."""


@dataclass(frozen=True, slots=True)
class NormalizedEmail:
    display: str
    """NFKC form as entered, domain lower-cased: what mail is sent to."""
    normalized: str
    """Case-folded display form: the unique key."""


def _valid_domain(domain: str) -> bool:
    if not 1 <= len(domain) <= 253 or domain.startswith(".") or domain.endswith("."):
        return False
    labels = domain.split(".")
    if len(labels) < 2:
        return False
    for label in labels:
        if not 1 <= len(label) <= 63 or label.startswith("-") or label.endswith("-"):
            return False
        if not label.replace("-", "").isalnum():  # letters, digits and inner hyphens only
            return False
    return True


def local_characters_allowed(local: str) -> bool:
    """No whitespace, nothing non-printable and no special of an unquoted local part. Whole-string
    checks, not a loop over characters (this runs at every sign-in): every whitespace character but the
    space is non-printable, so `isprintable` and the specials (with the space) cover them all."""
    return local.isprintable() and _SPECIALS.search(local) is None


def normalize_email(raw: str) -> NormalizedEmail:
    """Validate an address and return its display and unique forms.

    Args:
        raw: the address as typed.

    Returns:
        NormalizedEmail with NFKC applied, surrounding space removed, the domain lower-cased, and a
        case-folded unique form.

    Raises:
        EmailInvalid: the address is not a plausible mailbox (no quoted local parts, no IP literals).
    """
    if len(raw) > 4 * MAX_EMAIL_LENGTH:
        raise EmailInvalid()
    text = unicodedata.normalize("NFKC", raw).strip()
    if len(text) > MAX_EMAIL_LENGTH or text.count("@") != 1:
        raise EmailInvalid()
    local, domain = text.split("@")
    if not 1 <= len(local) <= MAX_LOCAL_LENGTH or not _valid_domain(domain):
        raise EmailInvalid()
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise EmailInvalid()
    if not local_characters_allowed(local):
        raise EmailInvalid()
    display = f"{local}@{domain.lower()}"
    return NormalizedEmail(display=display, normalized=unicodedata.normalize("NFKC", display.casefold()))
