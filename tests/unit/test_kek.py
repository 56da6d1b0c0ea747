"""load_or_create_kek: the key-encryption key, configured or generated once with mode 0600."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from threshold.adapters.kek import KeyFileError, load_or_create_kek


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_creates_a_private_key_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "var" / "data"
    key = load_or_create_kek(data_dir)
    assert isinstance(key, bytes) and len(key) == 32
    assert mode(data_dir / "kek") == 0o600
    assert base64.urlsafe_b64decode((data_dir / "kek").read_text().strip() + "=") == key


def test_file_mode_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_kek(tmp_path)
    finally:
        os.umask(old)
    assert mode(tmp_path / "kek") == 0o600


def test_next_run_returns_the_same_key(tmp_path: Path) -> None:
    assert load_or_create_kek(tmp_path) == load_or_create_kek(tmp_path)
    assert load_or_create_kek(tmp_path) != load_or_create_kek(tmp_path / "other")


@pytest.mark.parametrize("bits", [0o640, 0o604, 0o660, 0o644])
def test_refuses_a_key_file_others_can_read(tmp_path: Path, bits: int) -> None:
    load_or_create_kek(tmp_path)
    (tmp_path / "kek").chmod(bits)
    with pytest.raises(KeyFileError) as caught:
        load_or_create_kek(tmp_path)
    assert "600" in str(caught.value)


def test_refuses_a_corrupt_key_file(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    path.write_text(base64.urlsafe_b64encode(b"short").decode())
    path.chmod(0o600)
    with pytest.raises(KeyFileError):
        load_or_create_kek(tmp_path)


def test_configured_key_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    raw = bytes(range(32))
    configured = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert load_or_create_kek(tmp_path / "data", configured) == raw
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "configured",
    [
        base64.urlsafe_b64encode(bytes(16)).decode().rstrip("="),
        base64.urlsafe_b64encode(bytes(33)).decode().rstrip("="),
        "not base64 at all!",
    ],
)
def test_configured_key_of_the_wrong_length_is_refused(tmp_path: Path, configured: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        load_or_create_kek(tmp_path, configured)
    assert "THRESHOLD_KEY_ENCRYPTION_KEY" in str(caught.value)
