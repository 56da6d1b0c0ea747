"""normalize_email: what counts as an address, and the form that makes it unique."""

from __future__ import annotations

import unicodedata

import pytest

from threshold.core.emails import local_characters_allowed, normalize_email
from threshold.core.errors import EmailInvalid


def fullwidth(text: str) -> str:
    """The fullwidth forms (U+FF01..U+FF5E) of printable ASCII, as typed on some CJK keyboards."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def test_trims_whitespace_and_lowercases_the_domain_only_for_display() -> None:
    address = normalize_email("  Alice.Smith@Example.COM \n")
    assert address.display == "Alice.Smith@example.com"
    assert address.normalized == "alice.smith@example.com"


def test_differently_cased_addresses_share_one_normalized_form() -> None:
    forms = {
        normalize_email(raw).normalized for raw in ("BOB@example.com", "bob@EXAMPLE.com", "Bob@Example.Com")
    }
    assert forms == {"bob@example.com"}


def test_case_folding_is_full_unicode_folding_not_lower() -> None:
    # str.lower() keeps "ß"; casefold() turns it into "ss", as "STRASSE" folds too.
    assert (
        normalize_email("STRASSE@example.com").normalized == normalize_email("straße@example.com").normalized
    )
    assert normalize_email("straße@example.com").display == "straße@example.com"


def test_fullwidth_characters_are_nfkc_normalized() -> None:
    address = normalize_email(fullwidth("alice@example.com"))
    assert address.display == "alice@example.com"
    assert address.normalized == "alice@example.com"


def test_composed_and_decomposed_accents_are_the_same_address() -> None:
    assert normalize_email("jose\u0301@example.com") == normalize_email("jos\u00e9@example.com")


def test_international_addresses_are_accepted() -> None:
    assert normalize_email("用户@例え.jp").normalized == "用户@例え.jp"
    assert normalize_email("Ünal@MÜNCHEN.de").display == "Ünal@münchen.de"


def test_longest_allowed_address_is_accepted() -> None:
    domain = ".".join(["b" * 63, "c" * 63, "d" * 63, "e"])
    address = "a" * 60 + "@" + domain
    assert len(address) == 254
    assert normalize_email(address).display == address


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("alice.example.com", id="no-at"),
        pytest.param("alice@bob@example.com", id="two-at"),
        pytest.param("alice" + fullwidth("@") + "bob@example.com", id="fullwidth-second-at"),
        pytest.param("@example.com", id="empty-local"),
        pytest.param("alice@", id="empty-domain"),
        pytest.param("alice@localhost", id="domain-without-dot"),
        pytest.param("alice@example.", id="domain-trailing-dot"),
        pytest.param("alice@.example.com", id="domain-leading-dot"),
        pytest.param("alice@example..com", id="domain-consecutive-dots"),
        pytest.param("alice@-example.com", id="label-leading-hyphen"),
        pytest.param("alice@exa_mple.com", id="underscore-in-domain"),
        pytest.param("alice@[127.0.0.1]", id="ip-literal"),
        pytest.param("al..ice@example.com", id="local-consecutive-dots"),
        pytest.param(".alice@example.com", id="local-leading-dot"),
        pytest.param("alice.@example.com", id="local-trailing-dot"),
        pytest.param('"alice"@example.com', id="quoted-local"),
        pytest.param('"al ice"@example.com', id="quoted-local-with-space"),
        pytest.param("al ice@example.com", id="space-in-local"),
        pytest.param("ali\x00ce@example.com", id="nul"),
        pytest.param("alice\r\n@example.com", id="crlf"),
        pytest.param("ali\x7fce@example.com", id="del"),
        pytest.param("ali\u200bce@example.com", id="zero-width-space"),
        pytest.param("exam\x00ple@exam\x01ple.com", id="control-in-domain"),
        pytest.param("alice(comment)@example.com", id="comment"),
        pytest.param("a<b>@example.com", id="angle-brackets"),
        pytest.param("a" * 65 + "@example.com", id="local-over-64"),
        pytest.param("a" * 60 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 63, "ee"]), id="over-254"),
        pytest.param("alice@" + "b" * 64 + ".com", id="label-over-63"),
        pytest.param("a" * 5000 + "@example.com", id="huge"),
    ],
)
def test_rejects_implausible_addresses(raw: str) -> None:
    with pytest.raises(EmailInvalid):
        normalize_email(raw)


def test_rejection_is_a_stable_public_error() -> None:
    with pytest.raises(EmailInvalid) as caught:
        normalize_email("nope")
    assert caught.value.code == "email_invalid"


def test_local_part_check_matches_the_per_character_rule_for_every_code_point() -> None:
    """Parity: the whole-string check of a local part refuses exactly the characters the rule names
    (whitespace, non-printable, the specials), for every code point, alone and inside a word."""
    for point in range(0x110000):
        ch = chr(point)
        rule = not (ch.isspace() or not ch.isprintable() or ch in '"(),:;<>[\\]')
        assert local_characters_allowed(ch) is rule, hex(point)
        assert local_characters_allowed(f"a{ch}b") is rule, hex(point)


def test_domain_label_check_matches_the_per_character_rule_for_every_code_point() -> None:
    """Parity: a domain label's whole-string check (letters, digits, inner hyphens) against the rule
    per character, for every code point that NFKC leaves as it is, inside a label."""
    for point in range(0x110000):
        ch = chr(point)
        label = f"a{ch}b"
        if ch in ".@" or unicodedata.normalize("NFKC", label) != label:
            continue  # a separator, or a character NFKC turns into another before any check
        try:
            normalize_email(f"x@{label}.example")
        except EmailInvalid:
            accepted = False
        else:
            accepted = True
        assert accepted is (ch.isalnum() or ch == "-"), hex(point)
