"""SCIM 2.0 (RFC 7643/7644) at `{issuer}/scim/v2`: scim2-server's protocol over Threshold's own storage.

- `storage`: an organization's Users and Groups (scim2-server's AsyncScimStorage over SQL), and what
  they mean for accounts, memberships and roles (core.scim.accounts);
- `app`: the ASGI application: bearer token -> organization, base URLs from the issuer, SCIM errors;
- `wiring`: builds both from the process's Services.
"""
