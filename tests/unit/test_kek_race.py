"""Processes that start together on a fresh data directory (two servers, `serve --workers N`) all end
up with the one key-encryption key: none of them reads the key file half written."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from threshold.adapters.kek import load_or_create_kek

PROCESSES = 6
ROUNDS = 15


def _load(data_dir: str) -> bytes | str:
    try:
        return load_or_create_kek(Path(data_dir))
    except Exception as error:  # reported back, not raised in the worker
        return repr(error)


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
        for round_ in range(ROUNDS):
            data_dir = tmp_path / f"round-{round_}" / "data"
            keys = list(pool.map(_load, [str(data_dir)] * PROCESSES))
            assert all(isinstance(k, bytes) for k in keys), keys
            assert len(set(keys)) == 1, keys
            assert (data_dir / "kek").stat().st_mode & 0o777 == 0o600
