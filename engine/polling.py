"""When to poll a queued job: learn how long jobs really take, and look when they should be done.

A spec's latency is a first guess (Segmind's page, or nothing); each completed job's server time
(``metrics.inference_time``) or observed duration updates an average, and wakes the jobs already
waiting so they re-plan with what was learned. A job is polled shortly before its expected end, then
every few percent of it, backing off when it runs long; with only the page's figure it first probes
early (cheap, and right when the figure is far off); with no figure at all it doubles its waits.
Target (DESIGN.md): completion noticed within 10% of a job's latency with about 8 polls at most.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["LatencyModel"]

_FIRST_PROBE_S = 0.25
_WEIGHT = 0.3
_EARLY = 0.85
_STEP = 0.07
_LATE = 1.3
_MAX_WAIT_S = 30.0
_NEWS = 0.25


@dataclass
class LatencyModel:
    """The expected duration of a job of one model, updated as jobs complete."""

    guess_s: float | None
    observed_s: float | None = None
    _learned: asyncio.Event | None = field(default=None, repr=False)

    @property
    def expected_s(self) -> float | None:
        return self.observed_s if self.observed_s is not None else (self.guess_s or None)

    def observe(self, seconds: float) -> None:
        # A job that took "0 s" (a preview) still takes a little: never poll in a busy loop.
        seconds = max(seconds, 0.01)
        before = self.expected_s
        previous = self.observed_s
        self.observed_s = seconds if previous is None else previous + _WEIGHT * (seconds - previous)
        # Wake the waiting jobs only for news: hundreds of completions a second would otherwise
        # wake every waiting job hundreds of times a second.
        news = before is None or previous is None or abs(self.observed_s - before) > _NEWS * before
        if news and self._learned is not None:
            self._learned.set()
            self._learned = None

    def next_delay(self, elapsed: float, polls: int) -> float:
        """Seconds from now to the next status poll of a job submitted ``elapsed`` seconds ago."""
        expected = self.expected_s
        if expected is None:
            # No figure at all (sd1.5-scifi's page says ~0.00 s): a job of T seconds is seen by
            # about 2T, in about log2(T / 0.25) polls.
            return min(_FIRST_PROBE_S * float(2**polls), _MAX_WAIT_S)
        if self.observed_s is None and polls == 0 and expected > 4 * _FIRST_PROBE_S:
            # Only the page's figure so far: it may be far off (a simulator answers in 0.1 s).
            return max(0.0, _FIRST_PROBE_S - elapsed)
        if elapsed < _EARLY * expected:
            return _EARLY * expected - elapsed
        step = max(0.02, _STEP * expected)
        if elapsed > _LATE * expected:
            # Running long: back off in proportion to how long it has run.
            step = max(step, (elapsed - _LATE * expected) * 0.5)
        return min(step, max(_MAX_WAIT_S, expected))

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if the model learns something first (then True)."""
        if self._learned is None:
            self._learned = asyncio.Event()
        learned = self._learned
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(learned.wait(), timeout=seconds)
            return True
        return False

    def delays(self) -> Iterator[float]:
        """The successive waits of one job, the model staying as it is now (for tests and reports)."""
        elapsed, polls = 0.0, 0
        while True:
            delay = self.next_delay(elapsed, polls)
            yield delay
            elapsed += delay
            polls += 1
