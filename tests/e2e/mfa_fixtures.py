"""Helpers for the passkey and MFA browser suite: a `threshold serve` on a localhost issuer, and the
Chrome DevTools virtual authenticator.

WebAuthn refuses IP-address origins, so these servers use the issuer http://localhost:<port> (they
still bind 127.0.0.1) and the pages are opened at that origin; Chromium treats localhost as a secure
context, so the __Host- cookies work there as they do on HTTPS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import Server

AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@contextmanager
def localhost_server(data: Path, **settings: str) -> Iterator[Server]:
    """Migrate and start `threshold serve` with THRESHOLD_ISSUER=http://localhost:<port>."""
    port = free_port()
    url = f"http://localhost:{port}"
    env = {**os.environ, "THRESHOLD_DATA_DIR": str(data), "THRESHOLD_ISSUER": url, **settings}
    env.pop("THRESHOLD_CONFIG", None)
    cli = [sys.executable, "-m", "threshold"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    log = (data / "server.log").open("wb")
    process = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not become ready: " + (data / "server.log").read_text())
        yield Server(url=url, env=env, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


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
