"""When to poll a queued job: learn how long jobs really take, and look when they should be done.

A spec's latency is a first guess (Segmind's page, or nothing); each completed job's server time
(``metrics.inference_time``) or observed duration updates an average. A job is first polled early
(cheap, and right when the guess is far too slow), then shortly before its expected end, then every
few percent of it, backing off when it runs long. Target (DESIGN.md): completion noticed within 10%
of a job's latency with about 8 polls at most.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["LatencyModel"]

_FIRST_PROBE_S = 0.25
_DEFAULT_GUESS_S = 10.0
_WEIGHT = 0.3


@dataclass
class LatencyModel:
    """The expected duration of a job of one model, updated as jobs complete."""

    guess_s: float | None
    observed_s: float | None = None

    @property
    def expected_s(self) -> float:
        if self.observed_s is not None:
            return self.observed_s
        return self.guess_s if self.guess_s else _DEFAULT_GUESS_S

    def observe(self, seconds: float) -> None:
        # A job that took "0 s" (a preview) still takes a little: never poll in a busy loop.
        seconds = max(seconds, 0.01)
        previous = self.observed_s
        self.observed_s = seconds if previous is None else previous + _WEIGHT * (seconds - previous)

    def delays(self) -> Iterator[float]:
        """Seconds to wait before each status poll of a job submitted now."""
        if self.observed_s is None and not self.guess_s:
            # No figure at all (sd1.5-scifi's page says ~0.00 s): double the wait from a short probe,
            # so a job of T seconds is seen done by 2T, in about log2(T / 0.25) polls.
            wait = _FIRST_PROBE_S
            while True:
                yield wait
                wait = min(wait * 2, 30.0)
        expected = self.expected_s
        elapsed = 0.0
        if self.observed_s is None and expected > 4 * _FIRST_PROBE_S:
            # Only the page's figure so far: it may be far off (a simulator answers in 0.1 s).
            yield _FIRST_PROBE_S
            elapsed = _FIRST_PROBE_S
        first = max(0.0, 0.85 * expected - elapsed)
        yield first
        elapsed += first
        step = max(0.02, 0.07 * expected)
        while True:
            # Within 30% past the expected end, look every 7% of it; later, back off.
            if elapsed > 1.3 * expected:
                step = min(step * 1.5, max(30.0, expected))
            yield step
            elapsed += step
