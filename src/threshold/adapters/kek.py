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
    """Return the KEK, creating `data_dir/kek` with mode 0600 on the first run."""
    if configured:
        return _decode(configured, "THRESHOLD_KEY_ENCRYPTION_KEY")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEK_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileError(f"{path}: mode {mode:o} lets others read the key; chmod 600 it") from None
        return _decode(path.read_text(), str(path))
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.urlsafe_b64encode(secrets.token_bytes(KEK_BYTES)).decode().rstrip("=") + "\n")
    log.info("generated a new key-encryption key at %s", path)
    return _decode(path.read_text(), str(path))
