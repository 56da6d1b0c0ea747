"""Helpers for the passkey and MFA browser suite: a `threshold serve` on a localhost issuer, and the
Chrome DevTools virtual authenticator.

WebAuthn refuses IP-address origins, so these servers use the issuer http://localhost:<port> (they
still bind 127.0.0.1) and the pages are opened at that origin; Chromium treats localhost as a secure
context, so the __Host- cookies work there as they do on HTTPS.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import Server, make_deployment

AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@contextmanager
def localhost_server(directory: Path, **settings: str) -> Iterator[Server]:
    """Migrate and start `threshold serve` (SQLite) with THRESHOLD_ISSUER=http://localhost:<port>."""
    with make_deployment(directory, "sqlite", THRESHOLD_LOG_LEVEL="info", **settings) as deployment:
        yield deployment.start(issuer=lambda port: f"http://localhost:{port}")


class Authenticator:
    """A virtual platform authenticator (resident keys, user verification) attached to one page.

    Authenticators belong to the tab they were added on and survive its navigations, so each test keeps
    one page per user and runs every ceremony there.
    """

    def __init__(self, context: Any, page: Any) -> None:
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable")
        self.id = self._add()

    def _add(self) -> str:
        added = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
        return str(added["authenticatorId"])

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})
        return list(answer["credentials"])

    def replace(self) -> None:
        """Swap in a fresh, empty authenticator: a second device."""
        self.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.id})
        self.id = self._add()


def session_info(page: Any) -> dict[str, Any]:
    """GET /api/v1/session from the page, with the browser's own cookie."""
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const response = await fetch("/api/v1/session", {credentials: "same-origin"});
            return {status: response.status, body: await response.json()};
        }"""
    )
    return result
