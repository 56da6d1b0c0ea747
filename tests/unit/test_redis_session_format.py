"""The binary layout of a Redis session: every field comes back bit for bit, whatever its value, and a
session as issued fits the 80-byte allocation before and after its first touch."""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import replace
from typing import Any

import pytest

from threshold.adapters.redis import _session_format as fmt
from threshold.core.models import Aal, Amr, SessionRecord
from threshold.core.secrets import digest, new_id, new_token

NOW = 1_767_225_600.7654321
DAY = 86400.0


def issued(**changes: Any) -> SessionRecord:
    """A session as SessionService issues it: last seen and auth time are the creation time."""
    record = SessionRecord(
        digest=digest(new_token()),
        public_id=new_id(),
        user_id=new_id(),
        created_at=NOW,
        last_seen_at=NOW,
        idle_expires_at=NOW + 7 * DAY,
        absolute_expires_at=NOW + 30 * DAY,
        aal=Aal.AAL1,
        amr=(Amr.PASSWORD,),
        ip="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        device_label="Firefox on Linux",
        auth_time=NOW,
    )
    return replace(record, **changes)


def _bits(record: SessionRecord) -> tuple[object, ...]:
    """The record with each float as its 8 bytes: NaN equals itself, -0.0 differs from 0.0."""
    return tuple(struct.pack(">d", v) if isinstance(v, float) else v for v in dataclasses.astuple(record))


def round_trip(record: SessionRecord) -> SessionRecord:
    value, ref, device = fmt.encode(record)
    assert value[0] & fmt.FORMAT
    assert value[2 : 2 + fmt.REF_BYTES] == ref == fmt.device(record.device_label, record.user_agent)[0]
    return fmt.decode(record.digest, value, device)


def assert_round_trips(record: SessionRecord) -> None:
    assert _bits(round_trip(record)) == _bits(record)


def test_a_session_as_issued_is_69_bytes_and_75_once_touched() -> None:
    record = issued()
    value, _, _ = fmt.encode(record)
    assert len(value) == 69
    touched = replace(record, last_seen_at=NOW + 3600.25, idle_expires_at=NOW + 3600.25 + 7 * DAY)
    assert len(fmt.encode(touched)[0]) == 75
    # 76 bytes and the 4 of the string's header fill the 80-byte allocation
    assert_round_trips(record)
    assert_round_trips(touched)


def test_times_a_clock_gives_are_stored_as_ticks_from_creation() -> None:
    for later in (0.001, 61.5, 7 * DAY, 30 * DAY, 365 * DAY, -3600.0):
        mode, data = fmt._time(NOW + later, NOW)
        assert (mode, len(data)) == (fmt.TICKS, 6), later
    assert fmt._time(NOW, NOW) == (fmt.ELIDED, b"")
    assert fmt._time(NOW + 400 * DAY, NOW)[0] == fmt.DOUBLE  # beyond 2**47 ticks (388 days)


EDGE_TIMES = (
    0.0,
    -0.0,
    1.0,
    -5.5,
    5e-324,  # the smallest subnormal
    1000.25,  # a fake clock's small numbers
    1e300,
    float("inf"),
    float("-inf"),
    float("nan"),
    NOW,
    NOW + 2**-22,
    NOW + 1e-9,  # the nearest double differs from NOW by one tick, or is NOW
    NOW - 30 * DAY,
    NOW + 2**47 / 2**22 - 1,
    NOW + 2**47 / 2**22 + 1,
    2.0**31 - 0.5,
    2.0**31 + 0.5,  # the next binade (year 2038): ticks of 2**-21
    2.0**30 - 0.25,
)


@pytest.mark.parametrize("created", [NOW, 0.0, 1000.25, 2.0**31 + 0.5, float("nan")])
def test_every_time_round_trips_bit_for_bit(created: float) -> None:
    for field in ("last_seen_at", "idle_expires_at", "absolute_expires_at", "auth_time"):
        for at in EDGE_TIMES:
            assert_round_trips(issued(created_at=created, **{field: at}))
    assert_round_trips(
        issued(
            created_at=created,
            last_seen_at=-0.0,
            idle_expires_at=float("nan"),
            absolute_expires_at=NOW + 12.5,
            auth_time=float("inf"),
        )
    )


@pytest.mark.parametrize(
    "identifier",
    ["", "x", "u" + new_id(), new_id().upper(), new_id()[:31], "é☃" * 40, "a" * 200, "b" * 20_000],
    ids=["empty", "short", "33-chars", "upper-hex", "31-hex", "non-ascii", "200-chars", "20000-chars"],
)
def test_identifiers_that_are_not_32_lowercase_hex_digits_are_kept_as_text(identifier: str) -> None:
    assert_round_trips(issued(public_id=identifier))
    assert_round_trips(issued(user_id=identifier))
    assert_round_trips(issued(public_id=identifier, user_id=identifier, ip=identifier))


@pytest.mark.parametrize(
    ("ip", "packed"),
    [
        ("203.0.113.7", 4),
        ("0.0.0.0", 4),
        ("2001:db8::1", 16),
        ("::", 16),
        ("::ffff:192.0.2.1", 16),
        ("2001:DB8::1", 0),  # kept as written
        ("2001:db8:0:0:0:0:0:1", 0),
        ("fe80::1%eth0", 0),
        ("01.2.3.4", 0),
        ("203.0.113.7 ", 0),
        ("testclient", 0),
        ("", 0),
        ("é", 0),
        ("1" * 300, 0),
    ],
)
def test_addresses_are_packed_only_when_they_read_back_the_same(ip: str, packed: int) -> None:
    record = issued(ip=ip)
    assert_round_trips(record)
    without = len(fmt.encode(issued(ip="x"))[0]) - len(fmt._text("x"))
    assert len(fmt.encode(record)[0]) == without + (packed or len(fmt._text(ip)))


@pytest.mark.parametrize(
    "amr",
    [(), (Amr.PASSWORD,), tuple(Amr), tuple(reversed(list(Amr))), (Amr.OTP, Amr.OTP, Amr.PASSWORD)],
)
@pytest.mark.parametrize("aal", list(Aal))
def test_assurance_round_trips_in_order(amr: tuple[Amr, ...], aal: Aal) -> None:
    assert_round_trips(issued(aal=aal, amr=amr))


def test_every_authentication_method_has_a_stored_code() -> None:
    assert sorted(fmt.AMR_CODES) == sorted(Amr)
    assert len(set(fmt.AMR_CODES)) == len(fmt.AMR_CODES)
    assert fmt.AMR_CODES[:7] == ("pwd", "otp", "hwk", "swk", "user", "email", "mfa")  # append only


@pytest.mark.parametrize(
    ("label", "user_agent"),
    [("", ""), ("Unknown device", ""), ("", "curl/8.5"), ("Firefox | on Linux", "Mozilla | x"),
     ("12:ab", "3:c"), ("é☃", "Mozilla/5.0 \u00e9\u2603"), ("L" * 300, "U" * 512)],
)  # fmt: skip
def test_device_label_and_user_agent_round_trip_through_the_shared_pair(label: str, user_agent: str) -> None:
    assert_round_trips(issued(device_label=label, user_agent=user_agent))


def test_a_device_reference_names_one_label_and_user_agent() -> None:
    refs = {
        fmt.device(label, agent)[0]
        for label, agent in [("a", "1:b"), ("a1", ":b"), ("a1:", "b"), ("", "a1:b"), ("a1:b", "")]
    }
    assert len(refs) == 5


def test_organization_connection_and_upstream_assurance_round_trip() -> None:
    sso = issued(
        org_id=new_id(),
        connection_id="conn-" + new_id(),
        upstream_acr="urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        upstream_amr=("pwd", "mfa"),
    )
    assert_round_trips(sso)
    assert_round_trips(replace(issued(), org_id=new_id()))
    assert_round_trips(replace(issued(), upstream_amr=("hwk",)))
    # as the previous format (and the SQL columns' 200 characters): separators dropped, 200 kept
    cleaned = round_trip(issued(upstream_acr="a;b c" + "x" * 300, upstream_amr=("p,w", ";", "otp")))
    assert (cleaned.upstream_acr, cleaned.upstream_amr) == ("abc" + "x" * 197, ("pw", "otp"))


def test_a_binary_value_never_starts_as_the_previous_text_format() -> None:
    # The text started with the base64 device reference or '|'; every binary value has the high bit.
    for record in (issued(), issued(aal=Aal.AAL2, amr=()), issued(ip="x", user_id="y", org_id="o")):
        assert fmt.encode(record)[0][0] >= 0x80


def test_key_parts_are_the_whole_digest() -> None:
    token_digest = digest(new_token())
    assert fmt.session_key_part(token_digest) == bytes.fromhex(token_digest)
    assert fmt.digest_of(fmt.session_key_part(token_digest)) == token_digest
    assert fmt.digest_of(fmt.legacy_short(token_digest).encode()) == token_digest
    for other in ("d", token_digest.upper(), token_digest[:63] + "g"):
        assert fmt.session_key_part(other) == b"=" + other.encode()
        assert fmt.digest_of(fmt.session_key_part(other)) == other
    user_id = new_id()
    assert fmt.user_key_part(user_id) == bytes.fromhex(user_id)
    assert fmt.user_key_part("x") == b"=x"
