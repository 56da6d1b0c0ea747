"""panva's openid-client (v6, from the npm registry) as the relying party, run under Node.

tests/interop/node/driver.mjs discovers the issuer, builds the authorization URL (PKCE S256, nonce,
state), and after the browser step done here lets openid-client redeem the code (it validates state,
iss, the PKCE verifier, the ID token's signature, iss, aud, exp, nonce and at_hash), fetch userinfo,
refresh, and replay the rotated refresh token. Install its packages with `npm ci --prefix tests/interop/node`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import REDIRECT_URI, SCOPE, Provider, User, authorize_in_browser
from tests.support import need

NODE_DIR = Path(__file__).parent / "node"
DRIVER = NODE_DIR / "driver.mjs"
DRIVER_TIMEOUT = 30


@pytest.fixture(scope="module")
def node() -> str:
    executable = shutil.which("node")
    if executable is None:
        need("Node", "no `node` on PATH (Debian: apt-get install nodejs npm)")
    assert executable is not None
    version = subprocess.run([executable, "--version"], capture_output=True, text=True, check=True).stdout
    if int(version.strip().lstrip("v").split(".")[0]) < 20:
        need("Node", f"openid-client 6 needs Node >= 20, found {version.strip()}")
    if not (NODE_DIR / "node_modules" / "openid-client" / "package.json").is_file():
        need("openid-client", f"npm packages not installed: run `npm ci --prefix {NODE_DIR}`")
    return executable


def run_driver(node: str, provider: Provider, user: User, options: dict[str, Any]) -> dict[str, Any]:
    """Phase 1 in Node, the browser step here, phase 2 in Node; the driver's JSON summary."""
    with subprocess.Popen(
        [node, str(DRIVER), json.dumps(options)],
        cwd=NODE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        watchdog = threading.Timer(DRIVER_TIMEOUT, process.kill)  # a hung driver fails, never hangs
        watchdog.start()
        try:
            first = json.loads(process.stdout.readline() or "{}")
            if "authorization_url" not in first:
                _, stderr = process.communicate("")
                raise AssertionError(f"driver failed before the browser step: {first} {stderr}")
            callback = authorize_in_browser(provider, user, first["authorization_url"])
            stdout, stderr = process.communicate(callback + "\n")
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
    lines = stdout.strip().splitlines()
    assert process.returncode == 0 and lines, f"driver exited {process.returncode}: {stdout} {stderr}"
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary


@pytest.mark.parametrize(
    ("signing_alg", "auth_method"),
    [
        ("Ed25519", "client_secret_post"),
        ("RS256", "client_secret_basic"),
        ("Ed25519", "none"),
    ],
)
def test_code_pkce_userinfo_refresh(
    node: str, provider: Provider, user: User, signing_alg: str, auth_method: str
) -> None:
    client = provider.register_client(signing_alg=signing_alg, auth_method=auth_method)
    summary = run_driver(
        node,
        provider,
        user,
        {
            "issuer": provider.issuer,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "auth_method": auth_method,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "alg": signing_alg,
        },
    )

    assert summary["issuer"] == provider.issuer
    # openid-client accepted the ID token (signature with the JWKS key, iss, aud, exp, nonce, at_hash).
    assert summary["id_token_alg"] == signing_alg
    claims = summary["id_token_claims"]
    assert claims["iss"] == provider.issuer
    assert claims["aud"] in (client.client_id, [client.client_id])
    assert claims["nonce"]
    assert claims["at_hash"]
    assert claims["sid"]
    assert summary["token_type"].lower() == "bearer"
    assert set(summary["scope"].split()) == set(SCOPE.split())
    assert 0 < summary["expires_in"] <= 900

    assert summary["userinfo"]["sub"] == claims["sub"]
    assert summary["userinfo"]["email"] == user.email

    refreshed = summary["refreshed"]
    assert refreshed["refresh_token"]
    assert refreshed["refresh_token"] != summary["refresh_token"]
    assert refreshed["userinfo"]["sub"] == claims["sub"]
    if refreshed["id_token_claims"] is not None:  # OIDC Core 12.2: same iss, sub, aud, auth_time
        assert refreshed["id_token_alg"] == signing_alg
        for name in ("iss", "sub", "aud", "auth_time"):
            assert refreshed["id_token_claims"][name] == claims[name], name

    reuse = summary["reuse_error"]
    assert reuse is not None, "the rotated refresh token was accepted again"
    assert reuse["error"] == "invalid_grant", reuse
