"""Dependencies point inward: threshold.core and threshold.oidc import no web framework, database
driver, Redis, HTTP client, metrics or tracing code, core imports nothing outside itself but settings,
and oidc imports only core and settings."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import threshold
import threshold.core
import threshold.oidc

FORBIDDEN = frozenset(
    {"starlette", "fastapi", "sqlalchemy", "redis", "asyncpg", "aiosqlite", "httpx", "uvicorn", "jinja2"}
    | {"prometheus_client", "opentelemetry"}  # metrics and traces are derived outside (adapters, web)
)
CORE_DIR = Path(threshold.core.__file__).resolve().parent


def imported_packages(source: str) -> set[str]:
    """Top-level package names a module imports, anywhere in it (functions and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.add(node.args[0].value.split(".")[0])
    return found


def core_files() -> list[Path]:
    return sorted(CORE_DIR.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("threshold", "core", *parts))


def test_scanner_sees_every_kind_of_import() -> None:
    source = """
import os
import sqlalchemy.ext.asyncio as sa
from starlette.requests import Request
from . import sibling
def later():
    from redis.asyncio import Redis
    import importlib
    importlib.import_module("httpx")
    __import__("jinja2")
"""
    assert imported_packages(source) == {
        "os",
        "sqlalchemy",
        "starlette",
        "redis",
        "importlib",
        "httpx",
        "jinja2",
    }


def test_core_has_the_modules_we_expect() -> None:
    names = {path.stem for path in core_files()}
    assert {"accounts", "passwords", "sessions", "ratelimit", "emails", "ports", "errors"} <= names


def test_no_core_module_imports_a_forbidden_package() -> None:
    offenders = {
        str(path.relative_to(CORE_DIR)): sorted(imported_packages(path.read_text()) & FORBIDDEN)
        for path in core_files()
    }
    assert {name: pkgs for name, pkgs in offenders.items() if pkgs} == {}


def threshold_imports(source: str) -> set[str]:
    """Full names of the threshold.* modules a module imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("threshold."))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("threshold.")
        ):
            found.add(node.module or "")
    return found


LAYERS = {
    "core": ("threshold.core", "threshold.settings"),
    "oidc": ("threshold.core", "threshold.oidc", "threshold.settings"),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_inward(layer: str) -> None:
    root = Path(threshold.__file__).resolve().parent / layer
    allowed = LAYERS[layer]
    offenders = {}
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        bad = sorted(
            {m for m in threshold_imports(source) if not m.startswith(allowed)}
            | (imported_packages(source) & FORBIDDEN)
        )
        if bad:
            offenders[str(path.relative_to(root))] = bad
    assert offenders == {}


RUNTIME_CHECK = """
import importlib, json, pkgutil, sys
import threshold.core
forbidden = set(sys.argv[1].split(","))
modules = [m.name for m in pkgutil.walk_packages(threshold.core.__path__, "threshold.core.")]
for name in modules:
    importlib.import_module(name)
loaded = sorted({key.split(".")[0] for key in sys.modules} & forbidden)
print(json.dumps({"modules": modules, "loaded": loaded}))
"""


def test_importing_core_loads_no_forbidden_package() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUNTIME_CHECK, ",".join(sorted(FORBIDDEN))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = {module_name(path) for path in core_files()} - {"threshold.core"}
    assert expected <= set(report["modules"])
    assert report["loaded"] == [], f"importing threshold.core loaded {report['loaded']}"
