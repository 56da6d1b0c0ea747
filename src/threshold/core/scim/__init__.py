"""SCIM 2.0 provisioning (RFC 7643/7644) as the domain sees it: an organization's bearer tokens, the
resources its identity provider provisions, and what they mean for Threshold accounts. The protocol
itself is scim2-server's (threshold.scim); the storage is adapters/sql/scim_repos.py."""
