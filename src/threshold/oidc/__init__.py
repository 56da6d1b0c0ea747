"""OAuth 2.0 and OpenID Connect protocol logic (RFC 6749, 7636, 7009, 7662, 9068, 9207; OIDC Core).

One spec rule per small function; JOSE through joserfc; no web imports.
"""
