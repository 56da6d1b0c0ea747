"""Hardened XML in and out: namespaces, a parser that never loads a DTD, text and time values.

Every document from outside goes through `parse_untrusted`, which refuses a DOCTYPE before and after
parsing (no internal subset, no entity, no external reference is ever processed) and caps the size.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lxml import etree

from threshold.saml.errors import Reason, reject

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"

BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
CM_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

MAX_DOCUMENT_BYTES = 256 * 1024

_DTD_MARKERS = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")


def tag(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def _parser() -> etree.XMLParser:
    # A parser per document: lxml parsers are not meant to be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def parse_untrusted(
    data: bytes,
    *,
    what: str,
    malformed: Reason = Reason.MALFORMED,
    dtd: Reason = Reason.DTD_FORBIDDEN,
    limit: int = MAX_DOCUMENT_BYTES,
) -> etree._Element:
    """Parse a document from outside; refuse a DOCTYPE outright, oversized input and non-XML."""
    if len(data) > limit:
        reject(malformed, f"The {what} is larger than {limit // 1024} KiB, so it was not read.")
    if any(marker in data for marker in _DTD_MARKERS):
        reject(dtd, f"The {what} contains a DOCTYPE declaration; SAML messages never need one.")
    try:
        root = etree.fromstring(data, parser=_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        reject(malformed, f"The {what} is not well-formed XML ({_first_line(exc)}).")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        reject(dtd, f"The {what} contains a DOCTYPE declaration; SAML messages never need one.")
    if any(True for _ in root.iter(etree.Entity)):
        reject(dtd, f"The {what} refers to an XML entity; SAML messages never need one.")
    return root


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or ["unreadable"])[0][:160]


def text_of(element: etree._Element) -> str:
    """All the text of an element, joined: `.text` would stop at the first comment or child."""
    return "".join(element.itertext()).strip()


def plain_text(element: etree._Element, *, what: str) -> str:
    """The text of a leaf element that must hold nothing but text (NameID, SessionIndex...).

    A comment, processing instruction or child element inside is refused: it is how a value signed as
    `admin@acme.test<!---->.evil.test` gets read as `admin@acme.test` by a careless parser.
    """
    if len(element):
        reject(Reason.MALFORMED, f"The {what} contains markup (a comment or an element) inside its text.")
    value = text_of(element)
    if not value:
        reject(Reason.MALFORMED, f"The {what} is empty.")
    return value


def child(element: etree._Element, namespace: str, local: str) -> etree._Element | None:
    return element.find(tag(namespace, local))


def children(element: etree._Element, namespace: str, local: str) -> list[etree._Element]:
    return list(element.iterchildren(tag(namespace, local)))


def only_child(element: etree._Element, namespace: str, local: str, *, what: str) -> etree._Element:
    found = children(element, namespace, local)
    if len(found) != 1:
        reject(Reason.MALFORMED, f"The {what} must contain exactly one {local} element, not {len(found)}.")
    return found[0]


# xs:dateTime as SAML uses it (SAML core 1.3.3: UTC); fractional seconds of any length.
_DATETIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?",
    re.ASCII,
)


def parse_instant(value: str | None, *, what: str) -> float:
    if value is None:
        reject(Reason.MALFORMED, f"The {what} is missing.")
    match = _DATETIME.fullmatch(value.strip())
    if match is None:
        reject(Reason.MALFORMED, f"The {what} is not a date and time: {value[:40]!r}.")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
        if zone and zone != "Z":
            offset = datetime.fromisoformat(f"2000-01-01T00:00:00{zone}").utcoffset()
            assert offset is not None
            moment -= offset
    except ValueError:
        reject(Reason.MALFORMED, f"The {what} is not a valid date and time: {value[:40]!r}.")
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


def format_instant(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def serialize(element: etree._Element) -> bytes:
    document: bytes = etree.tostring(element, xml_declaration=True, encoding="UTF-8")
    return document
