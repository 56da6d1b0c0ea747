"""A readable device label from a User-Agent string ("Firefox on Linux")."""

from __future__ import annotations

from threshold.core.i18n import N_, Phrase

_BROWSERS: tuple[tuple[str, str], ...] = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS: tuple[tuple[str, str], ...] = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)
_TOOLS: tuple[str, ...] = (
    "curl",
    "python-httpx",
    "python-requests",
    "Wget",
    "okhttp",
    "node-fetch",
    "undici",
)


UNKNOWN_DEVICE = Phrase(N_("Unknown device"))
"""A Phrase like every other label that is a text of ours, so that wherever it is shown it is translated."""


def device_label(user_agent: str) -> str:
    """Describe the browser and operating system behind a User-Agent, or the tool's name."""
    if not user_agent:
        return UNKNOWN_DEVICE
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return Phrase(N_("{browser} on {system}"), browser=browser, system=system)
    if browser or system:
        return browser or system or ""
    lowered = user_agent.lower()
    for tool in _TOOLS:
        if lowered.startswith(tool.lower()):
            return tool
    return UNKNOWN_DEVICE
