"""Literal values on a page: defaults, quoted lists, and run-together numbers split with evidence."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Split",
    "number_value",
    "parse_literal",
    "quoted_values",
    "split_run_together",
]

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
# Enumerating every way to cut a long digit string is exponential; past these we say we cannot decide.
_MAX_CANDIDATES = 20_000
_MAX_STEPS = 100_000
_MAX_RUN = 80
_MAX_LINES = 40
_MAX_DIGITS = 40


def number_value(text: str) -> int | float | None:
    """``"2"`` → 2, ``"2.0"`` → 2.0 (the spelling decides the type), anything else → None.

    A number no page could mean (hundreds of digits, beyond a float) is not a number either.
    """
    if len(text) > _MAX_DIGITS or not _NUMBER.fullmatch(text):
        return None
    if "." in text or "e" in text.lower():
        value = float(text)
        return value if math.isfinite(value) else None
    return int(text)


def parse_literal(text: str) -> tuple[bool, object]:
    """A default as printed on a page: JSON-ish (a quoted string, number, true/false/null).

    Returns (understood, value); an unquoted word the page prints as is becomes that string.
    """
    text = text.strip()
    if not text:
        return False, None
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        try:
            return True, json.loads(text)
        except ValueError:
            return True, text[1:-1]
    if text[0] in "[{":
        try:
            return True, json.loads(text)
        except ValueError:
            return True, text
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return True, lowered == "true"
    if lowered in {"null", "none"}:
        return True, None
    number = number_value(text)
    if number is not None:
        return True, number
    return True, text


def quoted_values(text: str) -> tuple[list[str], int | None] | None:
    """``"a""b"+13 more`` → (["a", "b"], 13); None when the text is not such a list."""
    values: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text) and text[position] == '"':
        match = _QUOTED.match(text, position)
        if match is None:
            return None
        raw = match.group(0)
        try:
            values.append(json.loads(raw))
        except ValueError:
            values.append(match.group(1))
        position = match.end()
        while position < len(text) and text[position] in " ,":
            position += 1
    rest = text[position:].strip()
    if not values:
        return None
    if not rest:
        return values, None
    more = re.fullmatch(r"\+\s*(\d+)\s+more", rest)
    return (values, int(more.group(1))) if more else None


@dataclass(frozen=True, slots=True)
class Split:
    """How run-together numbers were read.

    ``values`` is the reading chosen (None when undecided); ``others`` are the other readings that
    fit the evidence, so a message can show what was weighed.
    """

    values: tuple[int | float, ...] | None
    others: tuple[tuple[int | float, ...], ...] = ()


def split_run_together(runs: Sequence[str], evidence: Iterable[object]) -> Split:
    """Split lines like ``0.10.5`` / ``1.01`` / ``5127681024`` into the numbers they print.

    Each line break is a boundary; inside a line, every reading into well-formed numbers is a
    candidate. Candidates must contain every piece of evidence (the default, the code sample's values)
    and read in non-decreasing order, as Segmind prints its lists. One candidate left: that is it.
    Several: with evidence to anchor them, the most regular one wins (fewest different counts of
    decimal places, then the least spread in integer widths, then the most values) and the others are
    reported; with no evidence, or a tie at the top, nothing is guessed.
    """
    lines = [run.strip() for run in runs if run.strip()]
    if not lines or len(lines) > _MAX_LINES:
        return Split(None)
    if any(len(line) > _MAX_RUN or not re.fullmatch(r"[-\d.]+", line) for line in lines):
        return Split(None)
    wanted: set[float] = set()
    for value in evidence:
        number = number_value(value.strip()) if isinstance(value, str) else value
        is_number = isinstance(number, int | float) and not isinstance(number, bool)
        if is_number and abs(number) < 10**_MAX_DIGITS:  # type: ignore[arg-type]
            wanted.add(float(number))  # type: ignore[arg-type]
    candidates = _all_readings(lines)
    if candidates is None:
        return Split(None)
    fitting = [t for t in candidates if wanted <= {float(x) for x in t}]
    fitting.sort(key=_irregularity)
    readings = [tuple(_value(t) for t in tokens) for tokens in fitting]
    if len(readings) <= 1:
        return Split(readings[0] if readings else None)
    shown = tuple(readings[:4])
    if not wanted or _irregularity(fitting[0]) == _irregularity(fitting[1]):
        return Split(None, shown)
    return Split(readings[0], shown[1:])


def _value(token: str) -> int | float:
    value = number_value(token)
    assert value is not None
    return value


def _all_readings(lines: list[str]) -> list[tuple[str, ...]] | None:
    """Every non-decreasing reading of ``lines`` into numbers; None when there are too many to weigh."""
    out: list[tuple[str, ...]] = []
    steps = 0

    def cut(index: int, rest: str, done: tuple[str, ...], last: float | None) -> bool:
        nonlocal steps
        steps += 1
        if steps > _MAX_STEPS:
            return False
        if not rest:
            if index + 1 < len(lines):
                return cut(index + 1, lines[index + 1], done, last)
            out.append(done)
            return len(out) <= _MAX_CANDIDATES
        for end in range(1, len(rest) + 1):
            token = rest[:end]
            if not _NUMBER.fullmatch(token) or (token.startswith("-") and done):
                continue
            # A number is never followed directly by "." in a run: "2.12" must not end before ".2".
            if rest[end : end + 1] == ".":
                continue
            value = float(token)
            if last is not None and value < last:
                continue
            if not cut(index, rest[end:], (*done, token), value):
                return False
        return True

    return out if cut(0, lines[0], (), None) else None


def _irregularity(tokens: tuple[str, ...]) -> tuple[int, int, int]:
    places = {len(t.split(".", 1)[1]) for t in tokens if "." in t}
    widths = [len(t.lstrip("-").split(".", 1)[0]) for t in tokens]
    return len(places), max(widths) - min(widths), -len(tokens)
