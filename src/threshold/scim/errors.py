"""What the web layer and the SCIM application both name, without importing scim2-server."""

from __future__ import annotations


class ScimBodyTooLarge(Exception):
    """Raised by the `receive` the web layer gives when a streamed body passes its limit."""
