"""Write the generated pages of the documentation site, or check that they are current.

docs/reference/configuration.md (the Settings schema), docs/reference/api.md (the OpenAPI document) and
docs/reference/cli.md (the argument parsers) are never edited by hand: `make docs` runs this module, and
tests/unit/test_docs_site.py fails when a committed page differs from what it renders now.

Usage: python -m scripts.docs_reference [--check]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from scripts import cli_reference, openapi_reference

ROOT = Path(__file__).resolve().parent.parent

CONFIGURATION_HEADER = """# Configuration reference

Generated from `threshold.settings.Settings` by `make docs` (`threshold config-reference`); do not edit by \
hand.
Every variable can also be set in the TOML file given with `--config` (nested tables for the `__` parts, \
e.g. `[argon2] memory_kib = 65536`); environment variables win.
"""


def configuration() -> str:
    from threshold.cli import config_reference

    return f"{CONFIGURATION_HEADER}\n{config_reference()}\n"


def api() -> str:
    return openapi_reference.render(openapi_reference.openapi_document())


GENERATED: dict[str, Callable[[], str]] = {
    "docs/reference/configuration.md": configuration,
    "docs/reference/api.md": api,
    "docs/reference/cli.md": cli_reference.render,
}
"""Each generated page (relative to the repository) and the function that renders it."""


def stale() -> list[str]:
    """The generated pages whose committed text differs from what the code renders now."""
    return [
        name
        for name, render in GENERATED.items()
        if not (ROOT / name).is_file() or (ROOT / name).read_text(encoding="utf-8") != render()
    ]


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        names = stale()
        for name in names:
            print(f"{name} is stale: run `make docs`", file=sys.stderr)
        return 1 if names else 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    for name, render in GENERATED.items():
        path = ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = render()
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
