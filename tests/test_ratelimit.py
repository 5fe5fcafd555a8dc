"""The requests-per-minute gate spaces request starts evenly."""

from __future__ import annotations

import asyncio
import itertools
import time

from engine.ratelimit import RateLimiter


def test_starts_are_spaced_by_sixty_over_rpm() -> None:
    async def starts() -> list[float]:
        limiter = RateLimiter(rpm=1200)  # one start every 50 ms
        moments: list[float] = []

        async def one() -> None:
            await limiter.wait()
            moments.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(5)))
        return moments

    moments = sorted(asyncio.run(starts()))
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert all(gap >= 0.045 for gap in gaps)


def test_no_limit_waits_for_nothing() -> None:
    async def go() -> float:
        limiter = RateLimiter(None)
        start = time.monotonic()
        for _ in range(1000):
            await limiter.wait()
        return time.monotonic() - start

    assert asyncio.run(go()) < 1.0
