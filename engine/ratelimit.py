"""Requests-per-minute limiting: request starts spaced evenly, as Segmind counts them per minute.

A hand-written gate rather than a dependency: it is a dozen lines on top of asyncio, and the only
behaviour we need is "no more than N starts in any minute", spaced so bursts never trip a 429.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """``await limiter.wait()`` before each request; ``None`` rpm lets everything through."""

    def __init__(self, rpm: int | None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)
