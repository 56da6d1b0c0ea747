"""Steps a person takes on Threshold's hosted pages, shared by the browser tests that walk an application's
sign-in (the application sends the tab to Threshold; these finish there and follow it back)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from tests.conftest import STRONG_PASSWORD
from tests.support import run_cli

STEP_SECONDS = 20.0


def decline_passkey_offers_until(page: Any, prefix: str, *, timeout: float = STEP_SECONDS) -> None:
    """Follow the tab until its URL starts with `prefix`, answering "Not now" to each passkey offer on the
    way (Threshold's after a password sign-in, or an IdP's that is a Threshold too)."""
    deadline = time.monotonic() + timeout
    while not page.url.startswith(prefix):
        offer = page.get_by_role("button", name="Not now")
        if offer.count():
            offer.click()
        assert time.monotonic() < deadline, f"the tab stopped at {page.url}, not {prefix}..."
        page.wait_for_timeout(100)
    page.wait_for_load_state()


def sign_in_with_password(page: Any, email: str, password: str, *, back_to: str) -> None:
    """On a hosted sign-in page: the address and password, then on until `back_to`."""
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    decline_passkey_offers_until(page, back_to)


def new_person(env: Mapping[str, str], tag: str) -> str:
    """An account made by the operator (`threshold users create --verified`), with STRONG_PASSWORD."""
    email = f"{tag}.{os.getpid()}.{time.monotonic_ns()}@example.com"
    made = run_cli(
        *("users", "create", "--email", email, "--password-stdin", "--verified"),
        stdin=STRONG_PASSWORD + "\n",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    return email


def sign_up_from_sign_in_page(page: Any, email: str, password: str, *, going_to: str = "") -> None:
    """On Threshold's sign-in page (wherever it was sent from): "Create an account", whose page keeps
    where the person was going (`going_to`, a pattern of that `next`), then the address and password.
    The tab goes on to that place afterwards."""
    page.get_by_role("link", name="Create an account").click()
    page.wait_for_url(re.compile(r".*/signup\?next=" + going_to))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()


def register_web_client(
    env: Mapping[str, str],
    name: str,
    url: str,
    *,
    callback: str,
    backchannel: str,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A first-party confidential client for an application at `url` (`threshold clients create`): its
    callback, `/` after logout, and its back-channel logout endpoint."""
    created = run_cli(
        *("clients", "create", "--name", name, "--first-party", *extra),
        *("--redirect-uri", f"{url}{callback}", "--post-logout-redirect-uri", f"{url}/"),
        *("--backchannel-logout-uri", f"{url}{backchannel}", "--json"),
        env=env,
    )
    assert created.returncode == 0, created.stderr
    client: dict[str, Any] = json.loads(created.stdout)
    return client
