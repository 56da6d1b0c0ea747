"""The hosted pages' `when` filter: an ISO instant as a readable, single `<time>` element."""

from __future__ import annotations

from datetime import UTC, datetime

from threshold.core.clock import iso
from threshold.web.pages.render import environment, when


def test_an_instant_reads_in_utc_with_the_iso_value_kept() -> None:
    assert str(when("2026-11-30T14:05:09Z")) == (
        '<time datetime="2026-11-30T14:05:09Z" title="2026-11-30T14:05:09Z">30 Nov 2026, 14:05 UTC</time>'
    )


def test_single_digit_days_and_what_the_routes_pass() -> None:
    stamp = datetime(2027, 3, 1, 9, 7, 59, tzinfo=UTC).timestamp()
    assert ">1 Mar 2027, 09:07 UTC<" in str(when(iso(stamp)))


def test_an_offset_is_shown_in_utc_and_normalised_in_datetime() -> None:
    html = str(when("2026-12-01T01:05:00+11:00"))
    assert 'datetime="2026-11-30T14:05:00Z"' in html
    assert ">30 Nov 2026, 14:05 UTC<" in html


def test_a_naive_value_is_taken_as_utc() -> None:
    assert ">30 Nov 2026, 14:05 UTC<" in str(when("2026-11-30T14:05:00"))


def test_nothing_renders_nothing() -> None:
    assert str(when(None)) == ""
    assert str(when("")) == ""


def test_a_value_that_is_not_a_time_is_escaped_not_trusted() -> None:
    html = str(when('"><script>alert(1)</script>'))
    assert "<script>" not in html and "<time" not in html
    assert "&lt;script&gt;" in html


def test_the_page_environment_registers_it_without_double_escaping() -> None:
    html = environment().from_string("<p>at {{ t|when }}</p>").render(t="2026-11-30T14:05:09Z")
    assert html == (
        '<p>at <time datetime="2026-11-30T14:05:09Z" title="2026-11-30T14:05:09Z">'
        "30 Nov 2026, 14:05 UTC</time></p>"
    )
