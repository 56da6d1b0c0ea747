"""Enterprise and social sign-in: connections to upstream identity providers (OIDC, SAML), the
identities they assert, home-realm discovery, and the linking rules that keep SSO from taking over
an account."""
