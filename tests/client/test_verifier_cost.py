"""Verification costs about what the raw signature check costs: keys are cached and nothing is
rebuilt per call. A sanity bound, not a benchmark: medians of interleaved runs, a generous ratio."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
from joserfc import jwt

from tests.client.helpers import ALGORITHMS, access_token, generate, verifier_for

RUNS = 3000
MAX_RATIO = 1.5


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_verify_costs_close_to_a_raw_joserfc_decode(
    alg: str, record_property: Callable[[str, object], None]
) -> None:
    key = generate(alg, f"{alg}-perf")
    token = access_token(key)
    verifier = verifier_for(key)
    assert verifier.verify(token).subject == "user-123"
    assert jwt.decode(token, key.key, algorithms=[alg]).claims["sub"] == "user-123"

    ours: list[int] = []
    raw: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(200):  # warm-up
        verifier.verify(token)
        jwt.decode(token, key.key, algorithms=[alg])
    for _ in range(RUNS):
        start = clock()
        verifier.verify(token)
        middle = clock()
        jwt.decode(token, key.key, algorithms=[alg])
        ours.append(middle - start)
        raw.append(clock() - middle)
    ratio = statistics.median(ours) / statistics.median(raw)
    record_property(f"verify_over_raw_{alg}", round(ratio, 3))
    mine, theirs = statistics.median(ours) / 1000, statistics.median(raw) / 1000
    print(f"\n{alg}: verify {mine:.1f} us, raw joserfc {theirs:.1f} us, ratio {ratio:.2f}")
    assert ratio <= MAX_RATIO, f"{alg}: TokenVerifier.verify costs {ratio:.2f}x a raw joserfc decode"
