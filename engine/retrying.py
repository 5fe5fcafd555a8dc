"""The one retry policy of a run (tenacity): what is tried again, how often, and how long it waits.

5xx answers and connections that failed before a request left are tried again with exponential
backoff and jitter, a limited number of times. A 429 waits for the account's reset (and teaches the
whole run's pace, engine.ratelimit) and does not count as an attempt, up to a total wait. A
submission's next try waits on the pace itself; anything else (a poll, a download, an upload) waits
here. Nothing else in the engine retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import tenacity

from engine.client import MAX_RATE_WAIT_S
from engine.errors import Retryable
from engine.ratelimit import Pace
from engine.results import RunOptions

__all__ = ["RetryPolicy"]


class RetryPolicy:
    """Builds a fresh tenacity loop per call (a loop keeps the state of one call's attempts)."""

    def __init__(self, options: RunOptions, pace: Pace) -> None:
        self.options = options
        self.pace = pace

    async def call(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """``attempt()`` (a coroutine function: a partial, not a lambda) under the policy; for
        requests that change nothing billable, so asking again is always safe."""
        return await self.attempts()(attempt)

    def attempts(self, *, submission: bool = False) -> tenacity.AsyncRetrying:
        """The loop for one request; ``submission``: a 429's wait is the pace's, not this loop's."""
        options = self.options
        # Exponential with jitter, spelt in tenacity's long-stable terms (`initial=` is deprecated).
        backoff = tenacity.wait_exponential(
            multiplier=options.backoff_s, max=options.max_backoff_s
        ) + tenacity.wait_random(0, options.backoff_s)
        limited = {"count": 0, "waited": 0.0}

        def wait(state: tenacity.RetryCallState) -> float:
            problem = state.outcome.exception() if state.outcome else None
            if isinstance(problem, Retryable) and problem.rate_limited:
                paced = self.pace.limited(problem.retry_after)
                limited["count"] += 1
                pause = problem.retry_after or float(backoff(state))
                limited["waited"] += pause
                return 0.0 if submission and paced else pause
            if isinstance(problem, Retryable) and problem.retry_after is not None:
                return min(problem.retry_after, MAX_RATE_WAIT_S)
            return float(backoff(state))

        def stop(state: tenacity.RetryCallState) -> bool:
            others = state.attempt_number - limited["count"]
            return others >= options.max_attempts or limited["waited"] > options.max_rate_wait_s

        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(Retryable), stop=stop, wait=wait, reraise=True
        )
