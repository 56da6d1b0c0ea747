"""Organizations: members with roles, and the domains an organization verifiably controls."""
