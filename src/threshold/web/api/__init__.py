"""The first-party JSON API (/api/v1)."""
