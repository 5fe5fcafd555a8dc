"""The run's pace: submissions spaced so the account's rate limit is met, not provoked.

Segmind limits requests per account and minute (free 5, Pro 50, Enterprise more) and answers a 429
with no ``Retry-After``, only ``x-rate-limit-reset-at-utc``. So the pace is learned: a run starts at
full speed (or at ``--rpm``); a 429 tells it that the submissions accepted in the last minute are
about what the account allows, so every later submission of the run (not just the refused one)
waits for the reset and is spaced to that rate; a whole window's worth of submissions without a 429
raises the rate by a quarter, up to ``--rpm`` when given, so a 429 that was not the limit (a glitch)
costs the run little, and one that was costs it a 429 now and then.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["Pace"]

# The first 429 with no reset time waits this long before anything more is sent.
_DEFAULT_WAIT_S = 5.0
# A reset time within a second (resets are given to the second) says no window is full for long:
# that request waits for it alone, and the run's pace learns nothing from it.
_GLITCH_S = 1.0
# How much a 429 at the learned rate lowers it; and the margin kept below the learned rate.
_DECREASE = 0.9
_MARGIN = 1.02
# How much a window's worth of submissions without a 429 raises the learned rate.
_INCREASE = 1.25


class Pace:
    """``await pace.wait()`` before each submission; tell it what came back with ``accepted()`` or
    ``limited()``. ``rpm`` is a ceiling (``--rpm``); ``window_s`` the length of Segmind's minute."""

    def __init__(
        self,
        rpm: int | None = None,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ceiling = rpm
        self.window_s = window_s
        self.clock = clock
        self.sleep = sleep
        # Requests a minute the account allows, as far as the run has learned (None: no limit met).
        self.learned: float | None = None
        self.limited_count = 0
        self._accepted: deque[float] = deque()
        self._since_limit = 0
        self._next = 0.0
        self._hold_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def rpm(self) -> float | None:
        """The rate submissions are spaced to now."""
        rates = [rate for rate in (self.learned, self.ceiling) if rate is not None]
        return min(rates) if rates else None

    async def wait(self) -> None:
        """Wait for this submission's turn."""
        async with self._lock:
            now = self.clock()
            rate = self.rpm
            start = max(now, self._next, self._hold_until)
            self._next = start + (self.window_s / rate * _MARGIN if rate else 0.0)
        if start > now:
            await self.sleep(start - now)

    def accepted(self) -> None:
        """A submission was not refused for the rate: after a whole window of those, try one more."""
        now = self.clock()
        self._accepted.append(now)
        self._trim(now)
        if self.learned is None:
            return
        self._since_limit += 1
        if self._since_limit >= self.learned:
            self._since_limit = 0
            raised = max(self.learned + 1, self.learned * _INCREASE)
            self.learned = min(raised, self.ceiling) if self.ceiling else raised

    def limited(self, retry_after: float | None) -> bool:
        """A 429: what was accepted in the last window is what the account allows; nothing more
        goes out until the reset time it gave (or a few seconds, when it gave none). A 429 whose
        reset is within a second is not the window filling up: nothing is learned from it, and
        False says the refused request waits on its own."""
        now = self.clock()
        self._trim(now)
        self.limited_count += 1
        if retry_after is not None and retry_after <= _GLITCH_S:
            return False
        wait = retry_after if retry_after is not None else _DEFAULT_WAIT_S
        holding = now < self._hold_until
        self._hold_until = max(self._hold_until, now + wait)
        self._next = max(self._next, self._hold_until)
        if holding:
            return True  # more of the same crowd the last 429 answered: learned from already
        seen = float(max(1, len(self._accepted)))
        # A 429 at the rate already learned means the account allows a little less.
        self.learned = (
            seen
            if self.learned is None or seen < self.learned
            else max(1.0, self.learned * _DECREASE)
        )
        self._since_limit = 0
        return True

    def _trim(self, now: float) -> None:
        while self._accepted and now - self._accepted[0] > self.window_s:
            self._accepted.popleft()
