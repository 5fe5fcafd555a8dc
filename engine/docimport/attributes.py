"""The "Attributes" list of an older Segmind page, in its two forms, read into raw entries."""

from __future__ import annotations

import re

from engine.docimport.page import Page
from engine.docimport.params import Allowed, RawParam, allowed_line
from engine.docimport.values import number_value, parse_literal, quoted_values

__all__ = ["read_attributes"]

_ALLOWED = re.compile(r"^Allowed values\s*(?:\((?P<total>\d+)\s+total\))?\s*:\s*(?P<rest>.*)$")
_MIN_MAX = re.compile(
    r"^(?P<which>min|max)\s*:\s*(?P<value>-?[\d.]+(?:[eE][-+]?\d+)?)\s*(?P<comma>,?)$",
    re.IGNORECASE,
)
_SECTION_END = re.compile(
    r"^(Response Type|Response Format|Returns:|Asynchronous requests|Common Error Codes|"
    r"To keep track of your credit usage)"
)
# Older pages print one of two forms. Unnamed: a description per parameter, in the code sample's
# order. Named: "seedint ( default: -1 )" or "promptstr *" (the star marks a required one).
_NAMED_HEADER = re.compile(
    r"^(?P<name>[A-Za-z_]\w*?)(?P<type>enum:\w+|str|int|integer|float|number|bool|boolean|image|array|list|object|dict)"
    r"\s*(?:(?P<star>\*)|\(\s*default\s*:\s*(?P<default>.*?)\s*\))\s*(?P<rest>.*)$"
)
_NAMED_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}
# Past this a line is prose after the list, not an attribute's description.
_PROSE = 160


def read_attributes(
    page: Page, start: int, names: list[str]
) -> tuple[list[RawParam], int | None, bool]:
    """The older layout: the lines after "Attributes" up to the prose that follows them.

    Named form: each header names its parameter and type. Unnamed form: one description per
    parameter in the code sample's order (``names``), each followed by its ``min :``/``max :`` and
    ``Allowed values:`` lines. Unquoted values one a line look like descriptions; the count settles
    it: every text line beyond one a parameter belongs to an allowed-values list.

    Returns the entries, the line where the list ended (None when the page ends inside it), and
    whether the list names its parameters.
    """
    end = start + 1
    while end <= len(page.lines):
        text = page.text(end)
        if _SECTION_END.match(text) or len(text) > _PROSE:
            break
        end += 1
    ended = end if end <= len(page.lines) else None
    lines = [(n, t) for n, t in page.numbered(start + 1, end) if t]
    if any(_NAMED_HEADER.match(t) for _, t in lines):
        return _read_named(page, lines), ended, True
    return _read_unnamed(page, lines, names), ended, False


def _named_header(text: str, number: int) -> RawParam | None:
    header = _NAMED_HEADER.match(text)
    if header is None:
        return None
    kind = header.group("type").lower()
    raw = RawParam(header.group("name"), number, required=bool(header.group("star")))
    # "enum:str" is a string with allowed values; "enum:int" an integer with them.
    base = kind.split(":", 1)[1] if kind.startswith("enum:") else kind
    raw.type_text = _NAMED_TYPES.get(base, base)
    raw.type_line = number
    if header.group("default") is not None:
        raw.has_default, raw.default = parse_literal(header.group("default"))
        raw.default_line = number
    return raw


def _read_named(page: Page, lines: list[tuple[int, str]]) -> list[RawParam]:
    params: list[RawParam] = []
    in_values = False
    for number, text in lines:
        header = _named_header(text, number)
        if header is not None:
            params.append(header)
            in_values = False
            continue
        if not params:
            continue
        current = params[-1]
        if _min_max(page, current, text, number):
            continue
        allowed = _ALLOWED.match(text)
        if allowed:
            current.allowed = Allowed(number)
            in_values = True
            if allowed.group("rest").strip():
                _value_line(current.allowed, allowed.group("rest"), number)
            continue
        if page.is_cut(number) and (in_values or current.range_line is not None):
            # "m" of "max : 25", or a value cut short: the list may have gone on.
            if current.allowed is not None:
                current.allowed.cut = True
            continue
        if in_values and current.allowed is not None:
            _value_line(current.allowed, text, number)
        elif current.range_line is None:
            # Prose after the limits is not the description any more.
            current.description.append(text)
    return params


def _read_unnamed(page: Page, lines: list[tuple[int, str]], names: list[str]) -> list[RawParam]:
    kinds = []
    for _, text in lines:
        if _MIN_MAX.match(text):
            kinds.append("limit")
        elif _ALLOWED.match(text):
            kinds.append("allowed")
        elif quoted_values(text) is not None:
            kinds.append("values")
        else:
            kinds.append("text")
    values_at = _unquoted_values(page, lines, kinds, len(names))
    params: list[RawParam] = []
    for index, (number, text) in enumerate(lines):
        kind = kinds[index]
        current = params[-1] if params else None
        if kind == "limit" and current is not None:
            _min_max(page, current, text, number)
        elif kind == "allowed" and current is not None:
            current.allowed = Allowed(number)
            rest = _ALLOWED.match(text).group("rest")  # type: ignore[union-attr]
            if rest.strip():
                allowed_line(current.allowed, rest, number)
        elif kind == "values" and current is not None and current.allowed is not None:
            allowed_line(current.allowed, text, number)
        elif index in values_at and current is not None and current.allowed is not None:
            _value_line(current.allowed, text, number)
        elif kind == "text":
            if len(params) == len(names):
                break
            params.append(RawParam(names[len(params)], number, description=[text]))
    return params


def _unquoted_values(
    page: Page, lines: list[tuple[int, str]], kinds: list[str], wanted: int
) -> set[int]:
    """Which text lines are allowed values rather than descriptions (indexes into ``lines``)."""
    excess = kinds.count("text") - wanted
    if excess <= 0:
        return set()
    runs: list[list[int]] = []
    for index, kind in enumerate(kinds):
        if kind == "allowed":
            runs.append([])
        elif kind == "text" and runs and (index - 1 in runs[-1] or kinds[index - 1] == "allowed"):
            runs[-1].append(index)
    runs = [run for run in runs if run]
    if not runs:
        return set()
    if len(runs) == 1:
        return set(runs[0][:excess])
    # Several lists: each takes the lines that look like values (short, not a sentence).
    chosen: set[int] = set()
    for run in runs:
        for index in run:
            text = lines[index][1]
            if len(text.split()) > 3 or text.endswith(".") or len(text) > 40:
                break
            chosen.add(index)
    if len(chosen) != excess:
        page.warn(
            lines[runs[0][0]][0],
            "cannot tell allowed values from descriptions for sure in the Attributes list; "
            "check the spec's allowed values",
        )
    return chosen


def _min_max(page: Page, raw: RawParam, text: str, number: int) -> bool:
    """A "min : 1," or "max : 4" line. Pages print "min" twice ("min : 1," then "min : 4"): the
    second, above the first and with no maximum yet, is the maximum. Where the page was cut, a
    limit without its comma may be missing digits and is not kept."""
    limit = _MIN_MAX.match(text)
    if limit is None:
        return False
    value = number_value(limit.group("value"))
    raw.range_line = raw.range_line or number
    if value is None:
        return True
    if page.is_cut(number) and not limit.group("comma"):
        page.warn(
            number,
            f"'{raw.name}': the page is cut inside its '{limit.group('which')}' ({text}); not kept",
        )
        return True
    if limit.group("which").lower() == "max":
        raw.maximum = value
    elif raw.minimum is not None and raw.maximum is None and value > raw.minimum:
        page.warn(
            number,
            f"'{raw.name}': the page prints 'min' twice ({raw.minimum} and {value}); the second "
            "is taken as the maximum",
            (raw.name, "maximum"),
        )
        raw.maximum = value
    else:
        raw.minimum = value
    return True


def _value_line(allowed: Allowed, text: str, number: int) -> None:
    """One unquoted value a line, spaces and all ("DPM Multi")."""
    if not allowed_line(allowed, text, number):
        allowed.quoted.append(text)
