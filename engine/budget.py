"""The budget cap: a job's price is reserved before it is sent and settled on its outcome.

A 200 spends what was reserved; an answer saying nothing was billed releases it; an outcome nobody
can know (the request went out, no answer came back) stays counted. So the cap holds under any
concurrency and any fault: reserved + spent + unknown never exceeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget"]

_EPSILON = 1e-9


@dataclass
class Budget:
    """Dollars for one run. Not thread-safe: one event loop owns it."""

    cap_usd: float | None
    reserved_usd: float = 0.0
    spent_usd: float = 0.0
    unknown_usd: float = 0.0

    @property
    def committed_usd(self) -> float:
        """Everything that may have been, or will be, billed."""
        return self.reserved_usd + self.spent_usd + self.unknown_usd

    def remaining_usd(self) -> float | None:
        return None if self.cap_usd is None else max(0.0, self.cap_usd - self.committed_usd)

    def reserve(self, price: float) -> bool:
        """Hold ``price`` for a job about to be sent; False (and nothing held) if the cap forbids it."""
        if self.cap_usd is not None and self.committed_usd + price > self.cap_usd + _EPSILON:
            return False
        self.reserved_usd += price
        return True

    def hold(self, price: float) -> None:
        """Count a job the cap cannot stop: one an earlier run already sent, now being collected."""
        self.reserved_usd += price

    def spend(self, price: float, *, charged: float | None = None) -> None:
        """The job was billed: ``charged`` when Segmind said how much, else the price held."""
        self.reserved_usd -= price
        self.spent_usd += price if charged is None else charged

    def release(self, price: float) -> None:
        """The job was not billed (refused, failed, never sent)."""
        self.reserved_usd -= price

    def mark_unknown(self, price: float) -> None:
        """Nobody can tell whether the job was billed: it stays counted."""
        self.reserved_usd -= price
        self.unknown_usd += price
