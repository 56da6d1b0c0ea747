"""The key-encryption key: from Settings, or generated once into the data directory (mode 0600)."""

from __future__ import annotations

import base64
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

KEK_BYTES = 32
KEK_FILE = "kek"


class KeyFileError(Exception):
    pass


def _decode(text: str, source: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError as exc:
        raise KeyFileError(f"{source}: not base64url") from exc
    if len(key) != KEK_BYTES:
        raise KeyFileError(f"{source}: must decode to {KEK_BYTES} bytes")
    return key


def load_or_create_kek(data_dir: Path, configured: str | None = None) -> bytes:
    """Return the KEK, creating `data_dir/kek` with mode 0600 on the first run.

    The new key is written whole to a file of its own, then linked into place (an atomic step that
    fails if the name exists), so processes starting together on a fresh data directory never read a
    half-written key: one link wins and every process reads the winner's key.
    """
    if configured:
        return _decode(configured, "THRESHOLD_KEY_ENCRYPTION_KEY")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEK_FILE
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{path}: mode {mode:o} lets others read the key; chmod 600 it")
    return _decode(path.read_text(), str(path))


def _create(path: Path) -> None:
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.urlsafe_b64encode(secrets.token_bytes(KEK_BYTES)).decode().rstrip("=") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return  # another process linked its key first: that one is the key
        log.info("generated a new key-encryption key at %s", path)
    finally:
        draft.unlink(missing_ok=True)
