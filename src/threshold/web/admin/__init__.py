"""/admin/v1: operator API, authenticated by an admin client's client-credentials token."""
