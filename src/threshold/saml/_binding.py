"""The HTTP-POST and HTTP-Redirect bindings (SAML bindings 3.4 and 3.5): encodings only.

HTTP-Redirect carries a DEFLATE-compressed (RFC 1951, raw: no zlib header), base64, URL-encoded
message in `SAMLRequest` / `SAMLResponse`; HTTP-POST carries the plain message base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from urllib.parse import urlencode

from threshold.saml._xml import MAX_DOCUMENT_BYTES
from threshold.saml.errors import Reason, reject

_WHITESPACE = str.maketrans("", "", " \t\r\n")


def decode_base64(value: str, *, what: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """Strict base64 (line breaks tolerated: some IdPs wrap the form value), capped before decoding."""
    compact = value.translate(_WHITESPACE)
    if len(compact) > (limit // 3 + 1) * 4:
        reject(Reason.MALFORMED, f"The {what} is larger than {limit // 1024} KiB, so it was not read.")
    try:
        return base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        reject(Reason.MALFORMED, f"The {what} is not valid base64.")


def encode_post(document: bytes) -> str:
    return base64.b64encode(document).decode("ascii")


def deflate_encode(document: bytes) -> str:
    """SAML bindings 3.4.4.1: DEFLATE (raw), then base64; URL-encoding is left to the query builder."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(document) + compressor.flush()).decode("ascii")


def inflate_decode(value: str, *, what: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """Undo `deflate_encode`, refusing anything that inflates beyond `limit` (a DEFLATE bomb)."""
    compressed = decode_base64(value, what=what, limit=limit)
    inflater = zlib.decompressobj(-15)
    try:
        document = inflater.decompress(compressed, limit + 1)
    except zlib.error:
        reject(
            Reason.MALFORMED, f"The {what} is not DEFLATE-compressed as the HTTP-Redirect binding requires."
        )
    if len(document) > limit or inflater.unconsumed_tail:
        reject(Reason.MALFORMED, f"The {what} inflates to more than {limit // 1024} KiB, so it was not read.")
    return document


def redirect_url(location: str, parameters: list[tuple[str, str]]) -> str:
    """`location` with the parameters appended to whatever query it already has."""
    glue = "&" if "?" in location else "?"
    return location + glue + urlencode(parameters)
