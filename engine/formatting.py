"""How the engine writes numbers for people: money and durations, the same way everywhere."""

from __future__ import annotations

__all__ = ["count", "money", "seconds_text"]


def money(value: float | None) -> str:
    """Dollars with cents, and with up to four decimals where a price has them: $3.39, $0.0647."""
    if value is None:
        return "unpriced"
    whole, _, fraction = f"{value:,.4f}".partition(".")
    return f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def count(number: int, noun: str) -> str:
    """``1 job``, ``2 jobs``, ``1,000 jobs``."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")
