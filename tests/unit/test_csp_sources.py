"""The CSP source a form's redirect may reach: the registered redirect URI's origin, or its scheme."""

from __future__ import annotations

import pytest

from threshold.web.security import csp_source, page_csp


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("https://app.example.com/callback?x=1", "https://app.example.com"),
        ("https://App.Example.COM:8443/cb", "https://app.example.com:8443"),
        ("http://localhost:5173/callback", "http://localhost:5173"),
        ("http://127.0.0.1:9/cb", "http://127.0.0.1:9"),
        ("http://[::1]:8080/cb", "http://[::1]:8080"),
        ("https://user:pw@app.example/cb", "https://app.example"),
        ("com.example.app:/oauth2redirect", "com.example.app:"),
    ],
)
def test_the_source_is_the_origin_or_the_private_use_scheme(uri: str, source: str) -> None:
    assert csp_source(uri) == source


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "/relative",
        "https://",
        "https://a b.example/cb",
        "https://a.example;script-src *",
        "1bad:/x",
        "javascript:alert(1)",
        "data:text/html,x",
        "blob:https://a.example/x",
        "about:blank",
    ],
)
def test_anything_that_is_not_a_plain_origin_gives_no_source(uri: str) -> None:
    assert csp_source(uri) is None


def test_the_page_policy_names_only_self_unless_told() -> None:
    assert "form-action 'self';" in page_csp("n")
    assert "form-action 'self' https://a.example com.example:;" in page_csp(
        "n", ["https://a.example", "com.example:"]
    )
