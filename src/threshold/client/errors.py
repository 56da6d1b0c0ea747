"""Typed verification errors. Every one is a TokenError; `reason` is a stable string, `str(error)` says
what is wrong and what to do, and the attributes below carry the values a program may act on."""

from __future__ import annotations

from collections.abc import Iterable


class TokenError(Exception):
    reason = "invalid_token"


class MalformedToken(TokenError):
    """`part` names what could not be read: "token" (size, characters, not three dot-separated parts),
    "header", "payload", "signature" or "claims" (a required claim missing or of the wrong type)."""

    reason = "malformed"

    def __init__(self, message: str, *, part: str = "token") -> None:
        super().__init__(message)
        self.part = part


class ForbiddenHeader(TokenError):
    """jku, x5u, jwk, x5c or crit: key material or rules a token must not bring along."""

    reason = "forbidden_header"


class UnsupportedAlgorithm(TokenError):
    reason = "unsupported_algorithm"


class WrongType(TokenError):
    """`expected` is the `typ` an access token carries (at+jwt); `actual` the token's (None if absent)."""

    reason = "wrong_type"

    def __init__(self, message: str, *, expected: str = "at+jwt", actual: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class KeysNotLoaded(TokenError):
    """`verify()` was called before any key was loaded: it does no I/O, `averify()` fetches the keys."""

    reason = "keys_not_loaded"


class UnknownKey(TokenError):
    """`kid` is the token's key id (None when it has none or it is not a string)."""

    reason = "unknown_key"

    def __init__(self, message: str, *, kid: str | None = None) -> None:
        super().__init__(message)
        self.kid = kid


class InvalidSignature(TokenError):
    reason = "invalid_signature"


class WrongIssuer(TokenError):
    """`expected` is the issuer this verifier trusts; `actual` the token's `iss` (None if absent)."""

    reason = "wrong_issuer"

    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class WrongAudience(TokenError):
    """`expected` are the audiences this verifier accepts; `actual` the ones the token names."""

    reason = "wrong_audience"

    def __init__(self, message: str, *, expected: Iterable[str] = (), actual: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.expected = tuple(expected)
        self.actual = tuple(actual)


class Expired(TokenError):
    reason = "expired"


class NotYetValid(TokenError):
    reason = "not_yet_valid"


class MissingScope(TokenError):
    """`expected` are the scopes required, `actual` the token's, `missing` the required ones it lacks."""

    reason = "insufficient_scope"

    def __init__(self, message: str, *, expected: Iterable[str] = (), actual: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.expected = tuple(expected)
        self.actual = frozenset(actual)
        self.missing = tuple(s for s in self.expected if s not in self.actual)


class Revoked(TokenError):
    """Online mode: the provider says the token is no longer active (RFC 7662): it was revoked, or its
    session, refresh-token family, user or client has ended."""

    reason = "revoked"


class DiscoveryFailed(TokenError):
    """The issuer's metadata or keys could not be fetched, or (online mode) the provider could not say
    whether a token is active (network, status or format): the check failed, not the token."""

    reason = "discovery_failed"
