"""A desktop app signs in through the system browser and a loopback redirect on a port of the operating
system's choosing (RFC 8252), as the README shows it: Authlib's OAuth2Session as a public client (PKCE,
no secret), a one-shot HTTP listener on 127.0.0.1:0, and Chromium as the person's browser."""

from __future__ import annotations

import http.server
import json
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session

from tests.conftest import STRONG_PASSWORD
from tests.e2e.conftest import Server
from tests.e2e.mfa_fixtures import localhost_server
from tests.e2e.walks import new_person, sign_in_with_password
from tests.support import run_cli


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with localhost_server(tmp_path_factory.mktemp("native-app")) as server:
        yield server


class _Callback(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.answer = self.path  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"Signed in: close this tab.")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_desktop_app_signs_in_through_the_system_browser_on_a_random_loopback_port(
    browser: Any, provider: Server, shoot: Any
) -> None:
    created = run_cli(
        *("clients", "create", "--name", "Desktop app", "--public", "--first-party"),
        *("--redirect-uri", "http://127.0.0.1/callback", "--json"),
        env=provider.env,
    )
    assert created.returncode == 0, created.stderr
    client_id = json.loads(created.stdout)["client_id"]
    email = new_person(provider.env, "desktop")

    listener = http.server.HTTPServer(("127.0.0.1", 0), _Callback)  # the operating system picks the port
    base = f"http://127.0.0.1:{listener.server_port}"
    waiting = threading.Thread(target=listener.handle_request, daemon=True)
    waiting.start()
    oauth = OAuth2Session(
        client_id,
        redirect_uri=f"{base}/callback",
        scope="openid email offline_access",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = secrets.token_urlsafe(64)
    url, state = oauth.create_authorization_url(f"{provider.url}/oauth2/authorize", code_verifier=verifier)

    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)  # what webbrowser.open(url) does
        page.wait_for_url(re.compile(rf"^{re.escape(provider.url)}/login\?"))
        sign_in_with_password(page, email, STRONG_PASSWORD, back_to=base)
        assert "Signed in" in page.content()
        shoot(page, "desktop-callback")
    finally:
        context.close()
    waiting.join(timeout=10)
    listener.server_close()
    answer: str = listener.answer  # type: ignore[attr-defined]
    assert answer.startswith("/callback?") and f"state={state}" in answer
    tokens = oauth.fetch_token(
        f"{provider.url}/oauth2/token", authorization_response=base + answer, code_verifier=verifier
    )
    assert tokens["token_type"].lower() == "bearer" and tokens["refresh_token"] and tokens["id_token"]
    refreshed = oauth.refresh_token(f"{provider.url}/oauth2/token", refresh_token=tokens["refresh_token"])
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # rotated
