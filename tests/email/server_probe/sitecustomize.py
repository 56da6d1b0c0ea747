"""A probe inside a real server process, for tests that must count what only the server sees.

Put this directory on the server's PYTHONPATH and name a file in `TEST_PROBE_COMPARES`: every
comparison of an emailed sign-in code (or link binding) is appended to that file as one line. Without
the variable, nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def _install(log_path: str) -> None:
    from threshold.core.email import flows

    namespace = vars(flows)
    equal: Callable[[str | bytes, str | bytes], bool] = namespace["equal"]

    def counted_equal(a: str | bytes, b: str | bytes) -> bool:
        with open(log_path, "a", encoding="ascii") as log:
            log.write("compared\n")
        return equal(a, b)

    namespace["equal"] = counted_equal


_log_path = os.environ.get("TEST_PROBE_COMPARES")
if _log_path:
    _install(_log_path)
