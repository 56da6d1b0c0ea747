"""/admin/v1: the operator API behind a client-credentials token with the threshold:admin scope."""
