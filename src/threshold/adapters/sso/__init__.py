"""Protocol adapters of upstream sign-in: OIDC over HTTP (Authlib) and SAML (threshold.saml)."""
