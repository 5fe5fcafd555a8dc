"""How the engine writes numbers and values for people: money, durations, counts, and the values
a message quotes, the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "about_seconds",
    "clipped",
    "count",
    "describe_value",
    "file_size",
    "kind_of",
    "money",
    "seconds_text",
    "setting_value",
    "value_with_kind",
]


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


def about_seconds(seconds: float | None) -> str:
    """An expected duration, as a spec states it: ``~34 s``."""
    return "unknown" if seconds is None else f"~{seconds:g} s"


def count(number: int, noun: str) -> str:
    """``1 job``, ``2 jobs``, ``1,000 jobs``."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def file_size(size: int) -> str:
    """``512 B``, ``3.4 KB``, ``1.2 MB``, ``2.0 GB`` (powers of 1,000, as disks are sold)."""
    if size < 1000:
        return f"{size} B"
    amount = size / 1000
    for unit in ("KB", "MB"):
        if amount < 1000:
            return f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} GB"


def clipped(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters (ending in "...") when it is longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_value(value: object) -> str:
    """A payload's value as a message shows it: short, quoted when a string, with its kind where a
    reader could mistake it (``'5' (a string)``, ``true (a boolean)``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        shown = clipped(value, 60)
        return (
            f"'{shown}' (a string)"
            if _looks_numeric(value) or value in {"true", "false"}
            else f"'{shown}'"
        )
    if isinstance(value, int | float):
        return (
            str(value)
            if not isinstance(value, int) or value.bit_length() < 128
            else "a huge integer"
        )
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


_KIND_WORDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}


def kind_of(value: object) -> str:
    """What YAML made of a value, in words: ``a string``, ``a list``; ``a value`` otherwise."""
    return _KIND_WORDS.get(type(value), "a value")


def value_with_kind(value: object) -> str:
    """What a recipe's writer wrote, and what YAML made of it: ``'5' (a string)``,
    ``true (a boolean)``; a number as itself."""
    if value is None:
        return "nothing"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        shown = str(value).lower()
    else:
        shown = f"'{value}'" if isinstance(value, str) else str(value)
    return f"{shown} ({_KIND_WORDS.get(type(value), type(value).__name__)})"


def setting_value(value: object) -> str:
    """A spec's default as `render specs show` lists it: ``none``, ``'text'``, ``true``, ``7``."""
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(clipped(value, 50))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
