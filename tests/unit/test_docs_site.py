"""The documentation site (mkdocs.yml, docs/): it builds with MkDocs in strict mode (a warning, such as a
broken link or anchor or a page left out of the nav, fails it), every page of the nav is in the output, the
generated references are what the code renders now, the pages name only settings and commands that exist,
and the built site loads no script, stylesheet or font from another host."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from scripts import cli_reference, docs_reference

from threshold.cli import config_reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SETTINGS = frozenset(re.findall(r"^\| `(THRESHOLD_[A-Z0-9_]+)` \|", config_reference(), re.M))
SOURCE_VARIABLES = frozenset(
    name
    for path in (ROOT / "src").rglob("*.py")
    for name in re.findall(r"environ(?:\.get\(|\[)\s*\"(THRESHOLD_[A-Z0-9_]+)\"", path.read_text())
)
"""Variables the code reads itself besides the Settings schema (THRESHOLD_CONFIG, threshold-bff's)."""


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about MkDocs 2, not a page problem
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config)]
    return subprocess.run(
        [*command, "--site-dir", str(site)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = mkdocs_build(ROOT / "mkdocs.yml", out)
    assert built.returncode == 0, built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    return out


def nav_pages(nav: Any) -> Iterator[str]:
    """Every Markdown file the nav names, in order."""
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from nav_pages(value)


def built_page(page: str) -> str:
    """Where MkDocs writes a page with directory URLs: a.md -> a/index.html, a/index.md -> a/index.html."""
    stem = page.removesuffix(".md")
    return f"{stem}.html" if stem == "index" or stem.endswith("/index") else f"{stem}/index.html"


def test_every_page_of_the_nav_is_built(site: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True and config["theme"]["font"] is False
    pages = list(nav_pages(config["nav"]))
    assert len(pages) == len(set(pages))
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(pages) == on_disk, "every page is in the nav, and the nav names only pages that exist"
    for page in pages:
        html = (site / built_page(page)).read_text()
        assert "<h1" in html, page
    for required in ("reference/configuration.md", "reference/api.md", "reference/cli.md"):
        assert required in pages


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    """The build is strict about links and anchors: a copy with one broken link and one missing anchor
    does not build (so the build above would not either)."""
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "getting-started.md"
    broken = "[gone](operations/no-such-page.md), [here](index.md#no-such-anchor)"
    page.write_text(f"{page.read_text()}\n{broken}\n")
    built = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert "no-such-page.md" in built.stderr and "no-such-anchor" in built.stderr


@pytest.mark.parametrize("name", sorted(docs_reference.GENERATED))
def test_generated_references_are_current(name: str) -> None:
    expected = docs_reference.GENERATED[name]()
    assert (ROOT / name).read_text(encoding="utf-8") == expected, f"{name} is stale: run `make docs`"


def test_the_api_reference_covers_every_documented_operation() -> None:
    from scripts.openapi_reference import openapi_document

    document = openapi_document()
    text = (ROOT / "docs/reference/api.md").read_text()
    for path, item in document["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text
    assert "| `invalid_credentials` | 401 |" in text and "| `csrf_failed` | 403 |" in text


def unknown_variables(text: str) -> set[str]:
    """`THRESHOLD_*` names in text that are neither a setting nor a variable the code reads; a name ending
    in `_` (a section prefix, `THRESHOLD_ARGON2__`) must begin some setting."""
    known = SETTINGS | SOURCE_VARIABLES
    unknown = set()
    for name in set(re.findall(r"THRESHOLD_[A-Z0-9_]+", text)):
        if name.endswith("_"):
            if not any(setting.startswith(name) for setting in known):
                unknown.add(name)
        elif name not in known:
            unknown.add(name)
    return unknown


def docs_text() -> Iterator[tuple[str, str]]:
    for path in sorted(DOCS.rglob("*.md")):
        yield str(path.relative_to(ROOT)), path.read_text()
    yield "mkdocs.yml", (ROOT / "mkdocs.yml").read_text()


def test_the_docs_name_only_real_settings() -> None:
    assert "THRESHOLD_CONFIG" in SOURCE_VARIABLES and "THRESHOLD_BFF_CLIENT_SECRET" in SOURCE_VARIABLES
    problems = {name: unknown_variables(text) for name, text in docs_text()}
    assert not {name: found for name, found in problems.items() if found}
    assert unknown_variables("THRESHOLD_SESSION__IDLE_TIMEOUT THRESHOLD_SESSION__") == set()
    assert unknown_variables("THRESHOLD_SESION__IDLE_TIMEOUT, THRESHOLD_NOPE__") == {
        "THRESHOLD_SESION__IDLE_TIMEOUT",
        "THRESHOLD_NOPE__",
    }


COMMAND = re.compile(r"(?<![\w./-])threshold((?: [^\s`'\"]+)+)")
"""`threshold` and the words after it, up to a backtick, quote or line end."""
WORD = re.compile(r"[a-z][a-z-]*(?:\|[a-z][a-z-]*)*")


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sub for name, sub, _ in cli_reference.subcommands(parser)}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def command_problems(text: str) -> list[str]:
    """Each `threshold ...` in text whose subcommands (or the options of the command it names) the parser
    does not have. `threshold threshold ...` is a container or user name followed by the command."""
    root = cli_reference.threshold_parser()
    problems = []
    text = re.sub(r"\\\n\s*", " ", text)  # a shell line continued with a backslash is one command
    for match in COMMAND.finditer(text):
        tokens = match.group(1).split()
        if tokens[:1] == ["--config"]:
            tokens = tokens[2:]
        if not tokens or tokens[0] == "threshold" or not WORD.fullmatch(tokens[0]):
            continue
        parser, path = root, ["threshold"]
        for token in tokens:
            children = subparsers(parser)
            if children:
                if not WORD.fullmatch(token):
                    break
                if any(word not in children for word in token.split("|")):
                    problems.append(f"{' '.join(path)} has no subcommand {token!r}: {match.group(0)!r}")
                    break
                if "|" in token:
                    break
                parser = children[token]
                path.append(token)
                continue
            option = token.strip("[]").split("=", 1)[0]
            if re.fullmatch(r"--[a-z][a-z0-9-]*", option) and option not in options(parser) | {"--config"}:
                problems.append(f"{' '.join(path)} has no option {option}: {match.group(0)!r}")
    return problems


def test_the_docs_name_only_real_commands_and_options() -> None:
    problems = [f"{name}: {problem}" for name, text in docs_text() for problem in command_problems(text)]
    assert not problems, "\n".join(problems)
    assert command_problems("`threshold users list --json`, `threshold keys list|rotate`") == []
    assert command_problems("`threshold --config t.toml orgs domains verify acme a.example --trust`") == []
    assert len(command_problems("`threshold users purge`, `threshold keys list|rotate|shred`")) == 2
    assert len(command_problems("threshold clients update ID --rotate-secrets")) == 1


class ExternalAssets(HTMLParser):
    """Scripts, stylesheets, fonts and other linked resources that come from another host."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag in ("script", "img", "iframe") else None
        if tag == "link":
            url = values.get("href")
        if url and re.match(r"(?:https?:)?//", url):
            self.found.append(f"<{tag}> {url}")


def external_assets(site: Path) -> list[str]:
    found = []
    for page in sorted(site.rglob("*.html")):
        parser = ExternalAssets()
        parser.feed(page.read_text())
        found += [f"{page.relative_to(site)}: {asset}" for asset in parser.found]
    for sheet in sorted(site.rglob("*.css")):
        css = sheet.read_text()
        for url in re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"])((?:https?:)?//[^'\")\s]+)", css):
            found.append(f"{sheet.relative_to(site)}: {url}")
    return found


def test_the_built_site_loads_nothing_from_another_host(site: Path, tmp_path: Path) -> None:
    assert external_assets(site) == []
    assert list(site.rglob("*.css")) and list(site.rglob("*.js"))  # Material's own, bundled
    (tmp_path / "page.html").write_text('<link rel="stylesheet" href="https://fonts.example/x.css">')
    (tmp_path / "a.css").write_text("@font-face { src: url('//cdn.example/font.woff2') }")
    assert len(external_assets(tmp_path)) == 2
