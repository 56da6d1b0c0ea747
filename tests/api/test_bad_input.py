"""Malformed, oversized and mistyped requests get a 4xx problem with a stable code, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import PROBLEM, assert_problem
from tests.conftest import STRONG_PASSWORD, csrf, signup, unique_email

SECRET = "do-not-echo-this-secret-pw"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("invalid-json", b'{"email": "a@example.com", "password": ', "application/json"),
    ("not-utf8", b'{"email": "\xff\xfe", "password": "x"}', "application/json"),
    ("array", _json([{"email": "a@example.com", "password": SECRET}]), "application/json"),
    ("string", _json("a@example.com"), "application/json"),
    ("null", b"null", "application/json"),
    ("empty", b"", "application/json"),
    ("email-number", _json({"email": 123, "password": SECRET}), "application/json"),
    ("password-null", _json({"email": "a@example.com", "password": None}), "application/json"),
    ("password-object", _json({"email": "a@example.com", "password": {"$ne": ""}}), "application/json"),
    ("missing-password", _json({"email": "a@example.com"}), "application/json"),
    ("missing-both", _json({}), "application/json"),
    ("email-5000", _json({"email": "a" * 5000, "password": SECRET}), "application/json"),
    ("password-5000", _json({"email": "a@example.com", "password": SECRET + "p" * 5000}), "application/json"),
    ("empty-strings", _json({"email": "", "password": ""}), "application/json"),
    ("nul-bytes", _json({"email": "a\x00@example.com", "password": SECRET + "\x00"}), "application/json"),
    ("text-plain", _json({"email": "a@example.com", "password": SECRET}), "text/plain"),
    ("form", f"email=a%40example.com&password={SECRET}".encode(), "application/x-www-form-urlencoded"),
    ("deep-nesting", b"[" * 5000 + b"]" * 5000, "application/json"),
]


@pytest.mark.parametrize("path", ["/api/v1/login", "/api/v1/signup"])
@pytest.mark.parametrize(
    ("body", "content_type"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_credentials_bodies(
    client: httpx.AsyncClient, path: str, body: bytes, content_type: str
) -> None:
    await csrf(client)
    response = await client.post(path, content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    expected = {"invalid_request", "email_invalid", "password_too_long", "unsupported_media_type"}
    if path == "/api/v1/login":  # an unusable address is just a failed sign-in there
        expected.add("invalid_credentials")
    assert problem["code"] in expected
    assert problem["status"] == response.status_code
    assert SECRET not in response.text


async def test_validation_problem_names_the_fields_but_not_the_values(client: httpx.AsyncClient) -> None:
    await csrf(client)
    response = await client.post("/api/v1/signup", json={"email": 123, "password": SECRET * 2})
    problem = assert_problem(response, 400, "invalid_request")
    assert problem["type"] == "urn:threshold:error:invalid_request"
    locations = [error["location"] for error in problem["errors"]]
    assert ["body", "email"] in locations
    assert SECRET not in response.text


@pytest.mark.parametrize("field", ["email", "password"])
@pytest.mark.parametrize("path", ["/api/v1/login", "/api/v1/signup"])
async def test_a_5000_character_field_is_a_400(client: httpx.AsyncClient, path: str, field: str) -> None:
    await csrf(client)
    body = {"email": "a@example.com", "password": SECRET, field: SECRET + "x" * 5000}
    response = await client.post(path, json=body)
    problem = assert_problem(response, 400, "invalid_request")
    assert [error["location"] for error in problem["errors"]] == [["body", field]]
    assert SECRET not in response.text


async def test_invalid_email_on_signup(client: httpx.AsyncClient) -> None:
    await csrf(client)
    for email in ("not-an-address", "a@b", "two@@example.com", '"quoted"@example.com', "a@[127.0.0.1]"):
        response = await client.post("/api/v1/signup", json={"email": email, "password": STRONG_PASSWORD})
        assert_problem(response, 400, "email_invalid")


async def test_malformed_email_on_login_is_just_invalid_credentials(client: httpx.AsyncClient) -> None:
    await csrf(client)
    response = await client.post("/api/v1/login", json={"email": "no at sign", "password": SECRET})
    assert_problem(response, 401, "invalid_credentials")


async def test_a_megabyte_email(client: httpx.AsyncClient) -> None:
    await csrf(client)
    response = await client.post(
        "/api/v1/signup", json={"email": "a" * (1024 * 1024) + "@example.com", "password": SECRET}
    )
    assert response.status_code in (400, 413)
    assert_problem(
        response,
        response.status_code,
        "payload_too_large" if response.status_code == 413 else "invalid_request",
    )
    assert SECRET not in response.text


async def test_two_megabytes_with_declared_length(client: httpx.AsyncClient) -> None:
    await csrf(client)
    body = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'", "password": "x"}'
    response = await client.post("/api/v1/login", content=body, headers={"content-type": "application/json"})
    assert_problem(response, 413, "payload_too_large")


async def test_two_megabytes_streamed_without_length(client: httpx.AsyncClient) -> None:
    await csrf(client)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "'
        for _ in range(32):
            yield b"a" * 65536
        yield b'", "password": "x"}'

    response = await client.post(
        "/api/v1/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


async def test_a_lying_content_length(client: httpx.AsyncClient) -> None:
    await csrf(client)
    response = await client.post(
        "/api/v1/login", content=b"{}", headers={"content-type": "application/json", "content-length": "abc"}
    )
    assert 400 <= response.status_code < 500


async def test_oversized_body_to_signed_in_endpoint(client: httpx.AsyncClient) -> None:
    await signup(client, unique_email())
    await csrf(client)
    response = await client.post(
        "/api/v1/password/change",
        json={"current_password": STRONG_PASSWORD, "new_password": "n" * (1024 * 1024)},
    )
    assert_problem(response, 413, "payload_too_large")
    assert (await client.get("/api/v1/session")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": 1, "new_password": "x"},
        {"current_password": STRONG_PASSWORD},
        {"current_password": STRONG_PASSWORD, "new_password": ["a"]},
        [],
    ],
)
async def test_bad_password_change_bodies(client: httpx.AsyncClient, body: Any) -> None:
    await signup(client, unique_email())
    await csrf(client)
    response = await client.post("/api/v1/password/change", json=body)
    assert_problem(response, 400, "invalid_request")
    assert STRONG_PASSWORD not in response.text


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v1/sessions/a/b", "/api/v2/session", "/.well-known/nothing-here"]
)
async def test_unknown_path(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/login"),
        ("PUT", "/api/v1/signup"),
        ("DELETE", "/api/v1/session"),
        ("POST", "/api/v1/session"),
        ("PATCH", "/api/v1/logout"),
        ("GET", "/api/v1/sessions/revoke-others"),
    ],
)
async def test_wrong_method(client: httpx.AsyncClient, method: str, path: str) -> None:
    await csrf(client)
    response = await client.request(method, path)
    assert_problem(response, 405, "method_not_allowed")
    assert "allow" in response.headers


async def test_weird_query_and_headers_are_harmless(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/session?%ff=%00&x=" + "y" * 5000,
        headers={"x-forwarded-for": "1.2.3.4, garbage", "accept": "*/*;q=abc"},
    )
    assert_problem(response, 401, "not_authenticated")
