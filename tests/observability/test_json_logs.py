"""JSON logs from a real `threshold serve`: every line one JSON object, one access line per request with
its request id (and the user when the session or token named one), and nothing secret anywhere: no
password, session cookie, CSRF token, authorization code, PKCE verifier, access, refresh or ID token,
or client secret, through sign-up, sign-in, the code flow, a refresh, userinfo, a logout and an
RP-initiated logout (whose ID token travels in the query string)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.blackbox.conftest import CSRF_COOKIE, Browser
from tests.blackbox.oidc_support import LOGOUT_URI, REDIRECT_URI, HttpRP
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.support import Deployment, Server, make_deployment

UUIDISH_REQUEST_ID = "json-logs.check-1"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with make_deployment(
        tmp_path_factory.mktemp("json-logs"),
        "sqlite",
        THRESHOLD_LOG_FORMAT="json",
        THRESHOLD_LOG_LEVEL="info",
    ) as made:
        yield made


def lines_of(server: Server) -> list[dict[str, Any]]:
    """Every line the server wrote (stdout and stderr), each parsed: a line that is not JSON fails."""
    parsed = []
    for number, line in enumerate(server.output().splitlines(), 1):
        entry = json.loads(line)  # raises on a line that is not one JSON object
        assert isinstance(entry, dict), f"line {number}: {line}"
        assert {"time", "level", "logger", "message"} <= entry.keys(), f"line {number}: {line}"
        parsed.append(entry)
    return parsed


def test_json_lines_carry_the_request_and_the_user_and_no_secret(deployment: Deployment) -> None:
    server = deployment.start()
    secrets: list[str] = [STRONG_PASSWORD]
    with httpx.Client(timeout=30) as http, httpx.Client(timeout=30) as back_channel:
        browser = Browser(http)
        signed_up = browser.signup(server, unique_email("json-logs"))
        assert signed_up.status_code == 201, signed_up.text
        user_id = signed_up.json()["user"]["id"]
        secrets += [browser.session or "", browser.cookies[CSRF_COOKIE]]

        mine = browser.request(server, "GET", "/api/v1/session", headers={"X-Request-Id": UUIDISH_REQUEST_ID})
        assert mine.status_code == 200 and mine.headers["x-request-id"] == UUIDISH_REQUEST_ID
        anonymous = http.get(server.base_url + "/api/v1/session")
        assert anonymous.status_code == 401

        again = Browser(http)
        assert again.login(server, signed_up.json()["user"]["email"]).status_code == 200
        secrets += [again.session or "", again.cookies[CSRF_COOKIE]]

        rp = HttpRP.create(
            deployment,
            back_channel,
            *("--redirect-uri", REDIRECT_URI, "--post-logout-redirect-uri", LOGOUT_URI, "--first-party"),
            *("--grant-type", "authorization_code", "--grant-type", "refresh_token"),
            *("--scope", "openid", "--scope", "email", "--scope", "offline_access"),
        )
        assert rp.secret
        secrets.append(rp.secret)
        tokens = rp.tokens(browser, server)
        secrets += [tokens["_code"], tokens["_verifier"], tokens["access_token"], tokens["refresh_token"]]
        secrets.append(tokens["id_token"])
        refreshed = rp.refresh(server, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
        userinfo = rp.userinfo(server, refreshed.json()["access_token"])
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == user_id

        assert again.post(server, "/api/v1/logout").status_code == 204
        # RP-initiated logout carries an ID token in its query string
        hint = refreshed.json()["id_token"]
        secrets.append(hint)
        query = urlencode({"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_URI, "state": "s1"})
        ended = browser.get(server, f"/oauth2/logout?{query}")
        assert ended.status_code in (200, 303), ended.text[:300]
    server.stop()  # everything written and flushed

    secrets = [s for s in secrets if s]
    assert len(secrets) == 14
    output = server.output()
    for secret in secrets:
        assert secret not in output, f"a secret is in the log: {secret[:6]}..."
    assert STRONG_PASSWORD.split()[0] not in output

    entries = lines_of(server)
    access = [e for e in entries if e["logger"] == "threshold.access"]
    assert access, output[-2000:]
    for entry in access:
        assert {"method", "path", "status", "duration_ms", "request_id", "client_ip"} <= entry.keys(), entry
        assert "?" not in entry["path"] and entry["level"] == "info"
    by_id = {e["request_id"]: e for e in access}
    assert len(by_id) == len(access), "a request id is not unique"

    checked = by_id[UUIDISH_REQUEST_ID]
    assert (checked["method"], checked["path"], checked["status"]) == ("GET", "/api/v1/session", 200)
    assert checked["user_id"] == user_id
    unauthenticated = [e for e in access if e["path"] == "/api/v1/session" and e["status"] == 401]
    assert unauthenticated and all("user_id" not in e for e in unauthenticated)
    exchanges = [e for e in access if e["path"] == "/oauth2/token"]
    assert [e["status"] for e in exchanges] == [200, 200]
    assert all(e.get("user_id") == user_id for e in exchanges)  # the code's, then the refresh token's
    assert [e.get("user_id") for e in access if e["path"] == "/oauth2/userinfo"] == [user_id]
    authorize = [e for e in access if e["path"] == "/oauth2/authorize"]
    assert authorize and all(e["user_id"] == user_id for e in authorize)

    others = {e["logger"] for e in entries} - {"threshold.access"}
    assert "uvicorn.error" in others  # the server's own lines are JSON too
    assert "uvicorn.access" not in others  # it would write the query strings


def test_text_is_the_default(tmp_path: Path) -> None:
    with make_deployment(tmp_path, "sqlite", THRESHOLD_LOG_LEVEL="info") as made:
        server = made.start()
        httpx.get(server.base_url + "/healthz", headers={"X-Request-Id": "text-default-1"}, timeout=10)
        server.stop()
    assert any(
        line.startswith(("INFO", "20")) and "GET /healthz 200 " in line and "rid=text-default-1" in line
        for line in server.output().splitlines()
    ), server.output()[-2000:]


def test_a_record_is_one_line_of_json_whatever_it_holds() -> None:
    import logging

    from threshold.logs import JsonFormatter

    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "odd %s", ("va\nlue\u00e9",), sys.exc_info()
        )
    record.fields = {"request_id": "r1", "status": None, "path": Path("/x"), "message": "not this one"}
    line = JsonFormatter().format(record)
    assert "\n" not in line and line.isascii()
    entry = json.loads(line)
    assert entry["message"] == "odd va\nlue\u00e9" and entry["level"] == "error" and entry["logger"] == "t"
    assert entry["request_id"] == "r1" and entry["path"] == "/x" and "status" not in entry
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("Z")
