"""Redirects back to a client: parameters added to its registered URI, errors with `state` and `iss`.

RFC 6749 section 4.1.2 (the code), section 4.1.2.1 (an error, with the request's `state`), RFC 9207
(`iss`, so the client can tell which issuer answered), OIDC RP-Initiated Logout 1.0 section 3 (`state`
after logout).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from threshold.oidc.authorize import RedirectableError


def add_query(url: str, params: Mapping[str, str | None]) -> str:
    """`url` with `params` added to its query (a None value is left out), keeping any query it had:
    RFC 6749 section 3.1.2 "MUST retain the query component when adding additional query parameters"."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


def error_redirect(error: RedirectableError, *, issuer: str) -> str:
    """RFC 6749 section 4.1.2.1 with RFC 9207 section 2: the error at the client's redirect URI."""
    return add_query(
        error.redirect_uri,
        {
            "error": error.error.code,
            "error_description": error.error.detail,
            "state": error.state,
            "iss": issuer,
        },
    )
