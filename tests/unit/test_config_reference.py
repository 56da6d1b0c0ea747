"""The configuration reference is generated from the Settings schema, never written twice."""

from __future__ import annotations

from pathlib import Path

from threshold.cli import config_reference
from threshold.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "configuration.md"


def test_every_setting_is_described() -> None:
    for line in config_reference().splitlines()[2:]:
        assert line.rstrip().endswith("|") and not line.rstrip().endswith("|  |"), f"undocumented: {line}"


def test_docs_match_the_schema() -> None:
    assert config_reference() in DOC.read_text(), "docs/reference/configuration.md is stale: run `make docs`"


def test_reference_lists_nested_settings() -> None:
    reference = config_reference()
    assert "`THRESHOLD_ARGON2__MEMORY_KIB` | `19456`" in reference
    assert "THRESHOLD_REDIS_URL" in reference and "THRESHOLD_DATABASE_URL" in reference
    assert len(Settings.model_fields) > 10
