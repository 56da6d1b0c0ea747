"""Exit codes of the `threshold` command."""

EXIT_CONFIG = 2
"""The configuration (settings, key file, schema) is not usable."""
EXIT_FAILED = 1
"""The command ran and failed (e.g. no such client)."""
