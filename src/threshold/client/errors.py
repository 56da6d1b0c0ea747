"""Typed verification errors. Every one is a TokenError; `reason` is a stable string."""

from __future__ import annotations


class TokenError(Exception):
    reason = "invalid_token"


class MalformedToken(TokenError):
    reason = "malformed"


class ForbiddenHeader(TokenError):
    """jku, x5u, jwk, x5c or crit: key material or rules a token must not bring along."""

    reason = "forbidden_header"


class UnsupportedAlgorithm(TokenError):
    reason = "unsupported_algorithm"


class WrongType(TokenError):
    reason = "wrong_type"


class UnknownKey(TokenError):
    reason = "unknown_key"


class InvalidSignature(TokenError):
    reason = "invalid_signature"


class WrongIssuer(TokenError):
    reason = "wrong_issuer"


class WrongAudience(TokenError):
    reason = "wrong_audience"


class Expired(TokenError):
    reason = "expired"


class NotYetValid(TokenError):
    reason = "not_yet_valid"


class MissingScope(TokenError):
    reason = "insufficient_scope"


class DiscoveryFailed(TokenError):
    """The issuer's metadata or keys could not be fetched (network or format)."""

    reason = "discovery_failed"
