"""How a session is laid out in Redis: its key, its value, its user's index and its device.

Every byte of a session is paid for once per session, a million times over, so the value is binary:

    byte 0    0x80 | aal2 << 6 | auth_time << 4 | last_seen << 2 | idle_expires   (2-bit time modes)
    byte 1    extras << 6 | ip kind << 4 | user id packed << 3 | public id packed << 2 | absolute mode
    2..10     the device reference: 9 bytes of SHA-256 of the (device label, user agent) pair
    then      idle expiry, last seen                          <- rewritten by a touch
    then      auth time, amr count, one byte per amr          <- rewritten by a step-up
    then      created (8 bytes), absolute expiry, public id, user id, ip, extras

A time is exact in all three of its modes: 0 it equals `created` and takes no byte, 1 it is
`created + n / 2**22` with n in 6 signed bytes (every double from 2004 to 2038 is a multiple of
2**-22, so the difference of two is, and 2**47 ticks are 388 days), 2 its 8 IEEE-754 bytes. A fresh
session (last seen and auth time = created) is 69 bytes, one touched since 75 (IPv4 address).

Identifiers of 32 hex digits are their 16 bytes (anything else: a length and the text); an address
whose text `inet_ntop` gives back is its 4 or 16 bytes. The device label and the user agent repeat
across sessions, so each distinct pair is one `{prefix}ua:<reference>` key the value points at.

The key is `{prefix}s:` and the 32 bytes of the SHA-256 digest of the token: the whole digest, so
finding a session by its key compares all 256 bits, as before. `{prefix}us:` and the user id's 16
bytes is a hash of the user's session keys (the same 32 bytes; listpack-encoded up to
hash-max-listpack-entries sessions), which revoke-all walks. Keys and values are bytes, so whatever
reads them asks the client not to decode them.

The previous version wrote text: the key `{prefix}s:` and the digest in base64, the value
`<agent ref>|<last seen>|<idle>|<auth time>|<aal>|<amr>|<created>|<absolute>|<public id>|<user id>|
<ip>|[~extras|]<device label>` (times and ids in base64), the index `{prefix}us:` and the user id in
base64, the user agent alone at `{prefix}ua:<12 characters>`. Those sessions are read, touched,
stepped up, listed and revoked where they are until they expire (within the absolute lifetime of the
upgrade): the first byte of a value tells the two apart (0x80 and above never starts the text). The
`legacy_*` names here are that format.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct

from threshold.core.models import Aal, Amr, SessionRecord

FORMAT = 0x80
"""Set in the first byte of every binary value; the text values start with base64 or '|'."""

ELIDED, TICKS, DOUBLE = 0, 1, 2
"""How a time is stored: equal to `created`, as 2**-22 s ticks from it (6 bytes), or as a double."""
WIDTH = {ELIDED: 0, TICKS: 6, DOUBLE: 8}
TICKS_PER_SECOND = 4194304.0  # 2**22
MAX_TICKS = 2**47

AAL2 = 0x40
TOUCHED_BITS = 0x0F
"""Bits of byte 0 a touch rewrites (the modes of idle expiry and last seen)."""
STEP_UP_BITS = 0x70
"""Bits of byte 0 a step-up rewrites (the mode of auth time and the aal)."""

PUBLIC_PACKED, USER_PACKED, EXTRAS = 0x04, 0x08, 0x40
TEXT_IP, IPV4, IPV6 = 0, 1, 2
REF_BYTES = 9

# Stored codes: append only (a code names the same method forever). A test holds every Amr to one.
AMR_CODES: tuple[Amr, ...] = (
    Amr.PASSWORD,
    Amr.OTP,
    Amr.HARDWARE_KEY,
    Amr.SOFTWARE_KEY,
    Amr.USER_PRESENCE,
    Amr.EMAIL,
    Amr.MFA,
)
_AMR_CODE = {amr: code for code, amr in enumerate(AMR_CODES)}

_DOUBLE = struct.Struct(">d")


# --- Keys ---------------------------------------------------------------------------------------


def session_key_part(digest: str) -> bytes:
    """The 32 bytes of a SHA-256 hex digest; anything else (never a real session) as '=' and the
    text, the form the previous version also used for it."""
    if len(digest) == 64:
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            pass
        else:
            if raw.hex() == digest:
                return raw
    return b"=" + digest.encode()


def digest_of(field: bytes) -> str:
    """The digest behind a key part of the user's index, in either format. A key part of 32 bytes is
    a digest's bytes: the previous version's are 43 base64 characters, or '=' and a text digest, which
    only a caller passing something other than a SHA-256 hex digest could have written."""
    if len(field) == 32:
        return field.hex()
    return legacy_long(field.decode())


def user_key_part(user_id: str) -> bytes:
    """A 32-hex-digit user id as its 16 bytes; anything else as '=' and the text (as before)."""
    packed = _packed_id(user_id)
    return packed if packed is not None else b"=" + user_id.encode()


def _packed_id(value: str) -> bytes | None:
    if len(value) == 32:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            return None
        if raw.hex() == value:
            return raw
    return None


# --- Device: the (label, user agent) pair stored once ---------------------------------------------


def device(label: str, user_agent: str) -> tuple[bytes, bytes]:
    """The reference and the stored value of a device label and user agent."""
    label_bytes = label.encode()
    value = b"%d:" % len(label_bytes) + label_bytes + user_agent.encode()
    return hashlib.sha256(value).digest()[:REF_BYTES], value


def _undevice(value: bytes) -> tuple[str, str]:
    if not value:
        return "", ""  # the pair outlives its sessions; only an eviction could have taken it
    colon = value.index(b":")
    end = colon + 1 + int(value[:colon])
    return value[colon + 1 : end].decode(), value[end:].decode()


# --- Times ----------------------------------------------------------------------------------------


def _time(at: float, created: float) -> tuple[int, bytes]:
    """The mode and bytes of a time; decoding gives back the same double, bit for bit."""
    if _DOUBLE.pack(at) == _DOUBLE.pack(created):
        return ELIDED, b""
    ticks = (at - created) * TICKS_PER_SECOND
    if ticks.is_integer() and -MAX_TICKS <= ticks < MAX_TICKS:
        n = int(ticks)
        if _DOUBLE.pack(created + n / TICKS_PER_SECOND) == _DOUBLE.pack(at):
            return TICKS, n.to_bytes(6, "big", signed=True)
    return DOUBLE, _DOUBLE.pack(at)


def _untime(mode: int, data: bytes, created: float) -> float:
    if mode == ELIDED:
        return created
    if mode == TICKS:
        return created + int.from_bytes(data, "big", signed=True) / TICKS_PER_SECOND
    value: float = _DOUBLE.unpack(data)[0]
    return value


def touched(created: float, *, last_seen_at: float, idle_expires_at: float) -> tuple[int, bytes]:
    """Byte 0's touched bits and the section a touch writes."""
    idle_mode, idle = _time(idle_expires_at, created)
    seen_mode, seen = _time(last_seen_at, created)
    return seen_mode << 2 | idle_mode, idle + seen


def stepped_up(*, auth_time: float, aal: Aal, amr: tuple[Amr, ...]) -> tuple[int, bytes]:
    """Byte 0's step-up bits and the section a step-up writes (the auth time as a double: the
    script that writes it does not know `created`)."""
    return (AAL2 if aal is Aal.AAL2 else 0) | DOUBLE << 4, _DOUBLE.pack(auth_time) + _methods(amr)


def _methods(amr: tuple[Amr, ...]) -> bytes:
    if len(amr) > 255:
        raise ValueError("more than 255 authentication methods")
    return bytes((len(amr), *(_AMR_CODE[a] for a in amr)))


# --- Variable-length parts -------------------------------------------------------------------------


def _text(value: str) -> bytes:
    data = value.encode()
    length = len(data)
    head = bytearray()
    while True:  # LEB128: seven bits a byte, lowest first
        if length < 0x80:
            head.append(length)
            return bytes(head) + data
        head.append(length & 0x7F | 0x80)
        length >>= 7


def _untext(value: bytes, pos: int) -> tuple[str, int]:
    length = shift = 0
    while True:
        byte = value[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value[pos : pos + length].decode(), pos + length
        shift += 7


def _address(ip: str) -> tuple[int, bytes]:
    for kind, family in ((IPV4, socket.AF_INET), (IPV6, socket.AF_INET6)):
        try:
            packed = socket.inet_pton(family, ip)
        except (OSError, ValueError):
            continue
        if socket.inet_ntop(family, packed) == ip:
            return kind, packed
    return TEXT_IP, _text(ip)


def _extras(record: SessionRecord) -> str | None:
    """Organization, connection and upstream assurance, as the previous version wrote them."""
    if not (record.org_id or record.connection_id or record.upstream_acr or record.upstream_amr):
        return None
    return ";".join(
        (
            record.org_id or "",
            record.connection_id or "",
            _clean(record.upstream_acr or ""),
            ",".join(_clean(a) for a in record.upstream_amr if _clean(a)),
        )
    )


def _clean(value: str) -> str:
    return "".join(ch for ch in value if ch not in "|;, ")[:200]


def _unextras(text: str) -> tuple[str | None, str | None, str | None, tuple[str, ...]]:
    org, connection, acr, amr = [*text.split(";"), "", "", "", ""][:4]
    return org or None, connection or None, acr or None, tuple(a for a in amr.split(",") if a)


# --- The value --------------------------------------------------------------------------------------


def encode(record: SessionRecord) -> tuple[bytes, bytes, bytes]:
    """The session's value, its device reference and the device's stored value."""
    created = record.created_at
    touch_bits, touch = touched(
        created, last_seen_at=record.last_seen_at, idle_expires_at=record.idle_expires_at
    )
    auth_mode, auth = _time(record.auth_time, created)
    absolute_mode, absolute = _time(record.absolute_expires_at, created)
    public, user = _packed_id(record.public_id), _packed_id(record.user_id)
    ip_kind, ip = _address(record.ip)
    extras = _extras(record)
    first = FORMAT | (AAL2 if record.aal is Aal.AAL2 else 0) | auth_mode << 4 | touch_bits
    second = (
        (EXTRAS if extras is not None else 0)
        | ip_kind << 4
        | (USER_PACKED if user is not None else 0)
        | (PUBLIC_PACKED if public is not None else 0)
        | absolute_mode
    )
    ref, device_value = device(record.device_label, record.user_agent)
    value = b"".join(
        (
            bytes((first, second)),
            ref,
            touch,
            auth,
            _methods(record.amr),
            _DOUBLE.pack(created),
            absolute,
            public if public is not None else _text(record.public_id),
            user if user is not None else _text(record.user_id),
            ip,
            extras.encode() if extras is not None else b"",
        )
    )
    return value, ref, device_value


def decode(digest: str, value: bytes, device_value: bytes) -> SessionRecord:
    """A session from its value and its device's, in either format."""
    if not value[0] & FORMAT:
        return legacy_decode(digest, value.decode(), device_value.decode())
    first, second = value[0], value[1]
    pos = 2 + REF_BYTES
    modes = (first & 3, first >> 2 & 3, first >> 4 & 3)
    times = []
    for mode in modes:
        end = pos + WIDTH[mode]
        times.append((mode, value[pos:end]))
        pos = end
    count = value[pos]
    amr = tuple(AMR_CODES[code] for code in value[pos + 1 : pos + 1 + count])
    pos += 1 + count
    created: float = _DOUBLE.unpack_from(value, pos)[0]
    pos += 8
    absolute_mode = second & 3
    absolute = value[pos : pos + WIDTH[absolute_mode]]
    pos += WIDTH[absolute_mode]
    if second & PUBLIC_PACKED:
        public_id, pos = value[pos : pos + 16].hex(), pos + 16
    else:
        public_id, pos = _untext(value, pos)
    if second & USER_PACKED:
        user_id, pos = value[pos : pos + 16].hex(), pos + 16
    else:
        user_id, pos = _untext(value, pos)
    ip_kind = second >> 4 & 3
    if ip_kind == IPV4:
        ip, pos = socket.inet_ntop(socket.AF_INET, value[pos : pos + 4]), pos + 4
    elif ip_kind == IPV6:
        ip, pos = socket.inet_ntop(socket.AF_INET6, value[pos : pos + 16]), pos + 16
    else:
        ip, pos = _untext(value, pos)
    org_id, connection_id, upstream_acr, upstream_amr = (
        _unextras(value[pos:].decode()) if second & EXTRAS else (None, None, None, ())
    )
    label, user_agent = _undevice(device_value)
    (idle_mode, idle), (seen_mode, seen), (auth_mode, auth) = times
    return SessionRecord(
        digest=digest,
        public_id=public_id,
        user_id=user_id,
        created_at=created,
        last_seen_at=_untime(seen_mode, seen, created),
        idle_expires_at=_untime(idle_mode, idle, created),
        absolute_expires_at=_untime(absolute_mode, absolute, created),
        auth_time=_untime(auth_mode, auth, created),
        aal=Aal.AAL2 if first & AAL2 else Aal.AAL1,
        amr=amr,
        ip=ip,
        user_agent=user_agent,
        device_label=label,
        org_id=org_id,
        connection_id=connection_id,
        upstream_acr=upstream_acr,
        upstream_amr=upstream_amr,
    )


# --- The previous version's text format (read, touched, stepped up; never written) ------------------


def legacy_short(digest: str) -> str:
    """The previous key part: the hex SHA-256 digest in URL-safe base64 (43 characters)."""
    if len(digest) == 64:
        try:
            return base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode()
        except ValueError:
            pass
    return "=" + digest


def legacy_long(short: str) -> str:
    return short[1:] if short.startswith("=") else base64.urlsafe_b64decode(short + "=").hex()


def legacy_id(value: str) -> str:
    """The previous user index part: a 32-hex-digit id as 22 base64 characters, else '=' and it."""
    if len(value) == 32:
        try:
            return base64.urlsafe_b64encode(bytes.fromhex(value)).rstrip(b"=").decode()
        except ValueError:
            pass
    return "=" + value


def _legacy_unid(value: str) -> str:
    return value[1:] if value.startswith("=") else base64.urlsafe_b64decode(value + "==").hex()


def legacy_time(at: float) -> str:
    """A time as the previous format writes it: its 8 IEEE-754 bytes in base64."""
    return base64.urlsafe_b64encode(_DOUBLE.pack(at)).rstrip(b"=").decode()


def _legacy_untime(text: str) -> float:
    value: float = _DOUBLE.unpack(base64.urlsafe_b64decode(text + "="))[0]
    return value


_LEGACY_EXTRAS = "~"


def legacy_decode(digest: str, value: str, user_agent: str) -> SessionRecord:
    (_, last_seen, idle, auth_time, aal, amr, created_at, absolute, public_id, user_id, ip, label) = (
        value.split("|", 11)
    )
    org_id = connection_id = upstream_acr = None
    upstream_amr: tuple[str, ...] = ()
    if label.startswith(_LEGACY_EXTRAS):
        extras, _, label = label.partition("|")
        org_id, connection_id, upstream_acr, upstream_amr = _unextras(extras[len(_LEGACY_EXTRAS) :])
    return SessionRecord(
        org_id=org_id,
        connection_id=connection_id,
        upstream_acr=upstream_acr,
        upstream_amr=upstream_amr,
        digest=digest,
        public_id=_legacy_unid(public_id),
        user_id=_legacy_unid(user_id),
        created_at=_legacy_untime(created_at),
        last_seen_at=_legacy_untime(last_seen),
        idle_expires_at=_legacy_untime(idle),
        absolute_expires_at=_legacy_untime(absolute),
        auth_time=_legacy_untime(auth_time),
        aal=Aal(aal),
        amr=tuple(Amr(value) for value in amr.split(",") if value),
        ip=ip,
        user_agent=user_agent,
        device_label=label,
    )
