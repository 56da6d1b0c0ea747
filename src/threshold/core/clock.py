"""Time, injected so every expiry can be tested."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def to_datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def iso(timestamp: float) -> str:
    return to_datetime(timestamp).isoformat(timespec="seconds").replace("+00:00", "Z")
