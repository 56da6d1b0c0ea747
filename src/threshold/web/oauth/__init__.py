"""OAuth 2.0 / OpenID Connect endpoint glue: parse HTTP, call threshold.oidc, render."""
