"""`threshold serve --workers N` shares the cores for password hashing among its workers."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from threshold.cli import _share_hashing_cores
from threshold.core.passwords import usable_cpus
from threshold.settings import Settings

VARIABLE = "THRESHOLD_ARGON2__MAX_CONCURRENT"


def test_each_worker_hashes_on_its_share_of_the_cores(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    _share_hashing_cores(make_settings(), workers=1)
    assert VARIABLE not in os.environ  # one worker: one hash per core it may run on

    _share_hashing_cores(make_settings(), workers=2)
    assert os.environ[VARIABLE] == str(max(1, usable_cpus() // 2))
    assert Settings().argon2.max_concurrent == max(1, usable_cpus() // 2)  # what each worker reads

    monkeypatch.setenv(VARIABLE, "7")
    _share_hashing_cores(make_settings(argon2={"max_concurrent": 7}), workers=2)
    assert os.environ[VARIABLE] == "7"  # an operator's choice stands
