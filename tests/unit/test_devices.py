"""device_label: how a session's device is named on the account page."""

from __future__ import annotations

import pytest

from threshold.core.devices import device_label

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"
EDGE_WINDOWS = CHROME_WINDOWS + " Edg/126.0.2592.68"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.6478.122 Mobile Safari/537.36"
)
CHROME_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1"
)
FIREFOX_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "FxiOS/127.0 Mobile/15E148 Safari/605.1.15"
)
OPERA_MAC = SAFARI_MAC.replace("Version/17.5 Safari/605.1.15", "Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0")


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        pytest.param(CHROME_WINDOWS, "Chrome on Windows", id="chrome-windows"),
        pytest.param(SAFARI_IPHONE, "Safari on iPhone", id="safari-iphone"),
        pytest.param(SAFARI_MAC, "Safari on macOS", id="safari-mac"),
        pytest.param(FIREFOX_LINUX, "Firefox on Linux", id="firefox-linux"),
        pytest.param(EDGE_WINDOWS, "Edge on Windows", id="edge"),
        pytest.param(CHROME_ANDROID, "Chrome on Android", id="chrome-android"),
        pytest.param(CHROME_IPHONE, "Chrome on iPhone", id="chrome-ios"),
        pytest.param(FIREFOX_IPAD, "Firefox on iPad", id="firefox-ipad"),
        pytest.param(OPERA_MAC, "Opera on macOS", id="opera"),
        pytest.param("curl/8.5.0", "curl", id="curl"),
        pytest.param("python-httpx/0.28.1", "python-httpx", id="httpx"),
        pytest.param("", "Unknown device", id="empty"),
        pytest.param("SomethingElse/1.0", "Unknown device", id="unknown"),
    ],
)
def test_device_label(user_agent: str, label: str) -> None:
    assert device_label(user_agent) == label
