"""How a refused token is described to the developer who sent it: values quoted and cut short (they
are the sender's input), which part of a token that does not decode is at fault (RFC 7515), and what
to do about a wrong type, an unknown key or a wrong audience (RFC 9068)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from joserfc.util import urlsafe_b64decode

from threshold.client.errors import (
    KeysNotLoaded,
    MalformedToken,
    UnknownKey,
    WrongAudience,
    WrongType,
)

MAX_TOKEN_BYTES = 16384
SEND_AS_ISSUED = "send the access_token exactly as the token endpoint returned it"


def shown(value: object, limit: int = 80) -> str:
    """A value taken from a token, quoted and cut short: it is the sender's input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def listed(values: Iterable[str], limit: int = 5) -> str:
    items = [shown(v) for v in sorted(values)]
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" and {more} more" if more > 0 else "")


def malformed(token: str | bytes) -> MalformedToken:
    """Which part of a token that did not decode is at fault. Called on the error path only."""
    raw = token.encode("utf-8", "replace") if isinstance(token, str) else token
    if not raw.strip():
        return MalformedToken(f"the token is empty: {SEND_AS_ISSUED}")
    if len(raw) > MAX_TOKEN_BYTES:
        return MalformedToken(
            f"the token is {len(raw)} bytes long, more than the {MAX_TOKEN_BYTES} this verifier reads: "
            f"{SEND_AS_ISSUED}"
        )
    if not raw.isascii():
        return MalformedToken(
            f"the token contains non-ASCII characters (a JWS is base64url text only): {SEND_AS_ISSUED}"
        )
    parts = raw.split(b".")
    if len(parts) != 3:
        return MalformedToken(
            f"the token has {len(parts)} dot-separated part{'s' * (len(parts) != 1)} where a JWS access "
            "token has 3 (header.payload.signature): send the access_token from the token response, "
            "not a refresh token, an opaque value or a fragment of a token"
        )
    try:
        header_json = urlsafe_b64decode(parts[0])
    except ValueError:
        return MalformedToken(
            "the header (part 1 of 3) is not base64url (URL-safe alphabet, no padding; RFC 7515 "
            f"section 2): {SEND_AS_ISSUED}",
            part="header",
        )
    try:
        header = json.loads(header_json)
    except ValueError:
        return MalformedToken(
            f"the header (part 1 of 3) is base64url but not JSON: {SEND_AS_ISSUED}", part="header"
        )
    if not isinstance(header, dict):
        return MalformedToken(
            f"the header (part 1 of 3) is JSON but not an object: {SEND_AS_ISSUED}", part="header"
        )
    if "alg" not in header:
        return MalformedToken(
            f"the header (part 1 of 3) has no alg (RFC 7515 section 4.1.1): {SEND_AS_ISSUED}", part="header"
        )
    try:
        urlsafe_b64decode(parts[1])
    except ValueError:
        return MalformedToken(
            f"the payload (part 2 of 3) is not base64url (URL-safe alphabet, no padding): {SEND_AS_ISSUED}",
            part="payload",
        )
    return MalformedToken(f"the token is not a readable compact JWS (RFC 7515 section 7.1): {SEND_AS_ISSUED}")


def wrong_type(typ: object) -> WrongType:
    """RFC 9068 section 2.1: an access token's `typ` is at+jwt; an ID token's is JWT."""
    actual = None if typ is None else str(typ)
    what = "the token has no typ header" if actual is None else f"the token's typ is {shown(typ)}"
    if actual is not None and actual.lower() == "jwt":
        what += " (an ID token's)"
    return WrongType(
        f"{what}, an access token's is 'at+jwt' (RFC 9068 section 2.1): send the access_token "
        "from the token response, not an ID token or another kind of JWT",
        expected="at+jwt",
        actual=actual,
    )


def unknown_key(
    kid: object, *, issuer: str, loaded: bool, held: Iterable[str], refetch_interval: float
) -> KeysNotLoaded | UnknownKey:
    """No key to check the signature with: none loaded yet, no `kid` in the header, or not this one."""
    if not loaded:
        return KeysNotLoaded(
            f"no keys of {issuer} are loaded yet, and verify() does no I/O: use "
            "`await verifier.averify(token)`, which fetches the issuer's JWKS on first use, or call "
            "`await verifier.refresh_keys()` once at startup (or pass jwks= to TokenVerifier) before "
            "verify()"
        )
    if not isinstance(kid, str):
        return UnknownKey(
            f"the token header has no kid naming its signing key: {issuer}'s access tokens always "
            "have one, so this token was not issued by it"
        )
    kids = listed(held) or "none"
    return UnknownKey(
        f"no key with kid {shown(kid)} among the keys of {issuer} this verifier holds ({kids}): "
        "verify() uses only the keys already fetched, averify() refetches the JWKS for an unknown kid "
        f"(at most once every {refetch_interval:g} s); if that does not find it either, the "
        "token was not signed by the issuer",
        kid=kid,
    )


def wrong_audience(claim: object, audiences: set[str], *, accepted: Iterable[str]) -> WrongAudience:
    """RFC 9068 section 4: the token's `aud` names none of the audiences this API accepts."""
    expected = sorted(accepted)
    if claim is None:
        what = "the token has no aud claim"
    elif audiences:
        what = f"the token is for {listed(audiences)}"
    else:
        what = f"the token's aud claim {shown(claim)} names no audience (it holds no string)"
    return WrongAudience(
        f"{what}, this API accepts {' or '.join(repr(a) for a in expected)}: request the token for "
        f"this API (resource={expected[0]} in the token request, RFC 8707), or add the token's "
        "audience to TokenVerifier(audience=...)",
        expected=expected,
        actual=sorted(audiences),
    )
