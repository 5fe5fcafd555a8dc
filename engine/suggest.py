"""'Did you mean' hints: the closest known name or value to what the user wrote."""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

__all__ = ["did_you_mean", "suggestion"]


def suggestion(wrong: object, known: Iterable[object]) -> object | None:
    """The known value the user most likely meant, or None when nothing is close enough."""
    options = list(known)
    numbers = [o for o in options if isinstance(o, int | float) and not isinstance(o, bool)]
    wrong_number = _as_number(wrong)
    if wrong_number is not None and numbers and len(numbers) == len(options):
        return min(numbers, key=lambda n: abs(n - wrong_number))
    by_text = {str(option): option for option in options}
    text = str(wrong)
    folded = text.casefold().strip()
    for option_text, option in by_text.items():
        if option_text.casefold() == folded:
            return option
    # "16:9" for "16:9 (Panorama)": a unique prefix is a confident guess.
    prefixed = [o for t, o in by_text.items() if folded and t.casefold().startswith(folded)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = get_close_matches(text, list(by_text), n=1, cutoff=0.6)
    return by_text[close[0]] if close else None


def did_you_mean(wrong: object, known: Iterable[object]) -> str:
    """``"; did you mean 'x'?"`` or the empty string."""
    match = suggestion(wrong, known)
    if match is None:
        return ""
    shown = f"'{match}'" if isinstance(match, str) else str(match)
    return f"; did you mean {shown}?"


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, int | float | str) else None
    except (ValueError, OverflowError):
        return None
