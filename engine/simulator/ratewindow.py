"""Each key's rate limit as a sliding window of its recent submissions, and the 429's reset time.

A submission takes a slot for ``window_s`` seconds from the moment it arrives; one that finds every
slot taken is refused and takes none, so a refused retry does not push the reset further away.
"""

from __future__ import annotations

import email.utils
import math
from collections import deque
from datetime import UTC, datetime

from engine.simulator.config import ResetFormat

__all__ = ["RESET_HEADER", "SlidingWindows", "format_reset"]

RESET_HEADER = "x-rate-limit-reset-at-utc"


class SlidingWindows:
    """Submission times per key; not thread-safe on its own (the state's lock guards it)."""

    def __init__(self) -> None:
        self._taken: dict[str, deque[float]] = {}

    def take(self, key: str, now: float, *, limit: int, window_s: float) -> float | None:
        """Take a slot for ``key`` at ``now`` (None), or, when all ``limit`` are taken, the clock
        time the oldest one frees."""
        taken = self._taken.setdefault(key, deque())
        while taken and taken[0] <= now - window_s:
            taken.popleft()
        if len(taken) >= limit:
            return taken[0] + window_s
        taken.append(now)
        return None


def format_reset(epoch_s: float, fmt: ResetFormat) -> str:
    """The reset moment as the header carries it, rounded up to a whole second: a client that
    waits until the second it is told finds the slot free."""
    # Float noise (an epoch near 1.8e9 resolves to ~0.2 µs) must not add a whole second.
    whole = math.ceil(epoch_s - 1e-6)
    if fmt == "epoch":
        return str(whole)
    moment = datetime.fromtimestamp(whole, UTC)
    if fmt == "iso":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return email.utils.format_datetime(moment, usegmt=True)
