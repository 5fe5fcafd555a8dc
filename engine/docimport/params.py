"""The parameter reference of a page, in its three layouts, read into raw entries (still as printed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.docimport.page import Page
from engine.docimport.values import number_value, parse_literal, quoted_values

__all__ = ["Allowed", "RawParam", "read_attributes", "read_parameters"]

# Model page: "imagerequired" then "string (uri)". Workflow page: "Character" then "optionalstring (uri)".
_NAME_FLAG = re.compile(r"^(?P<name>[A-Za-z_][\w.\-\[\]]*?)(?P<flag>required|optional)$")
_NAME = re.compile(r"^[A-Za-z_][\w.\-\[\]]*$")
_FLAG_TYPE = re.compile(r"^(?P<flag>required|optional)\s*(?P<type>[A-Za-z]+(?:\s*\([^)]*\))?)$")
_TYPE = re.compile(r"^(?P<type>[A-Za-z]+)(?:\s*\((?P<fmt>[^)]*)\))?$")
_DEFAULT = re.compile(r"^Default\s*:\s*(?P<rest>.*)$")
_RANGE = re.compile(
    r"Range\s*:\s*(?P<min>-?[\d.]+(?:[eE][-+]?\d+)?)\s*(?:-|–|to)\s*(?P<max>-?[\d.]+(?:[eE][-+]?\d+)?)\s*$"
)
_ALLOWED = re.compile(r"^Allowed values\s*(?:\((?P<total>\d+)\s+total\))?\s*:\s*(?P<rest>.*)$")
_MIN_MAX = re.compile(
    r"^(?P<which>min|max)\s*:\s*(?P<value>-?[\d.]+(?:[eE][-+]?\d+)?)\s*,?$", re.IGNORECASE
)
_SECTION_END = re.compile(
    r"^(Response Type|Response Format|Returns:|Asynchronous requests|Common Error Codes|"
    r"To keep track of your credit usage)"
)


@dataclass
class Allowed:
    """An "Allowed values" list as printed: quoted strings or unquoted run-together numbers."""

    line: int
    quoted: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    runs_lines: list[int] = field(default_factory=list)
    more: int | None = None
    total: int | None = None
    # The page was cut inside the list: values may follow that the page never showed.
    cut: bool = False


@dataclass
class RawParam:
    """One parameter as the page prints it, before types and evidence are weighed."""

    name: str
    line: int
    type_text: str | None = None
    type_line: int | None = None
    fmt: str | None = None
    required: bool | None = None
    description: list[str] = field(default_factory=list)
    has_default: bool = False
    default: object = None
    default_line: int | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    range_line: int | None = None
    allowed: Allowed | None = None
    # A compact rendering prints the default and the allowed values without their labels, one
    # quoted value a line: (line, value), resolved when the parameter ends.
    bare: list[tuple[int, str]] = field(default_factory=list)
    bare_more: int | None = None
    bare_cut: bool = False


def read_parameters(page: Page, start: int) -> tuple[list[RawParam], int | None]:
    """Read the "Parameters" list that begins after line ``start`` (model and workflow layouts).

    Returns the entries and the line where the list ended (None when the page ends inside it).
    """
    params: list[RawParam] = []
    current: RawParam | None = None
    state = "description"
    number = start + 1
    total = len(page.lines)
    while number <= total:
        text = page.text(number)
        if _SECTION_END.match(text):
            return params, number
        header = _header(page, number)
        if header is not None:
            current, number = header
            params.append(current)
            state = "description"
            continue
        if current is None or not text:
            number += 1
            continue
        state = _body_line(current, number, text, state)
        number += 1
    return params, None


def _header(page: Page, number: int) -> tuple[RawParam, int] | None:
    """A parameter starts here: its entry and the line after its type; else None."""
    text = page.text(number)
    flagged = _NAME_FLAG.match(text)
    if flagged:
        type_number = _next_nonblank(page, number + 1)
        type_text = page.text(type_number) if type_number else ""
        if type_number and _TYPE.match(type_text) and not _FLAG_TYPE.match(type_text):
            raw = RawParam(
                flagged.group("name"), number, required=flagged.group("flag") == "required"
            )
            _set_type(raw, type_text, type_number)
            return raw, type_number + 1
        if type_number is None:
            # The page ends right after the name: keep what is there, the caller warns.
            raw = RawParam(
                flagged.group("name"), number, required=flagged.group("flag") == "required"
            )
            return raw, number + 1
    if _NAME.match(text):
        flag_number = number + 1
        flag_type = _FLAG_TYPE.match(page.text(flag_number))
        if flag_type:
            raw = RawParam(text, number, required=flag_type.group("flag") == "required")
            _set_type(raw, flag_type.group("type"), flag_number)
            return raw, flag_number + 1
    return None


def _set_type(raw: RawParam, type_text: str, line: int) -> None:
    match = _TYPE.match(type_text.strip())
    assert match is not None
    raw.type_text = match.group("type").lower()
    raw.fmt = (match.group("fmt") or "").strip().lower() or None
    raw.type_line = line


def _next_nonblank(page: Page, number: int) -> int | None:
    while number <= len(page.lines):
        if page.text(number):
            return number
        number += 1
    return None


def _body_line(raw: RawParam, number: int, text: str, state: str) -> str:
    """Take one line of a parameter's body; returns the reading state for the next line."""
    default = _DEFAULT.match(text)
    if default:
        rest = default.group("rest")
        range_match = _RANGE.search(rest)
        if range_match:
            _set_range(raw, range_match, number)
            rest = rest[: range_match.start()]
        raw.has_default, raw.default_line = True, number
        if rest.strip():
            raw.has_default, raw.default = parse_literal(rest)
            return "body"
        return "default-next"
    if state == "default-next":
        range_match = _RANGE.search(text)
        if range_match:
            _set_range(raw, range_match, number)
            text = text[: range_match.start()]
        raw.has_default, raw.default = parse_literal(text)
        return "body"
    range_match = _RANGE.match(text) if text.startswith("Range") else None
    if range_match:
        _set_range(raw, range_match, number)
        return "body"
    allowed = _ALLOWED.match(text)
    if allowed:
        raw.allowed = Allowed(
            number, total=int(allowed.group("total")) if allowed.group("total") else None
        )
        if allowed.group("rest").strip():
            _allowed_line(raw.allowed, allowed.group("rest"), number)
        return "allowed"
    if state == "allowed" and raw.allowed is not None and _allowed_line(raw.allowed, text, number):
        return "allowed"
    if state in {"description", "body"} and not raw.has_default and raw.allowed is None:
        raw.description.append(text)
    return state


def _set_range(raw: RawParam, match: re.Match[str], line: int) -> None:
    raw.minimum = number_value(match.group("min"))
    raw.maximum = number_value(match.group("max"))
    raw.range_line = line


def _allowed_line(allowed: Allowed, text: str, number: int) -> bool:
    """Add one line of allowed values; False when the line is not a list of values."""
    quoted = quoted_values(text)
    if quoted is not None:
        values, more = quoted
        allowed.quoted.extend(values)
        if more is not None:
            allowed.more = more
        return True
    if re.fullmatch(r"-?[\d.]+", text):
        allowed.runs.append(text)
        allowed.runs_lines.append(number)
        return True
    # Unquoted single words, one a line (an older style).
    if re.fullmatch(r"[\w.:\-+/]+", text) and not allowed.runs:
        allowed.quoted.append(text)
        return True
    return False


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


def read_attributes(page: Page, start: int, names: list[str]) -> tuple[list[RawParam], int | None]:
    """The older layout: the lines after "Attributes" up to the prose that follows them.

    Named form: each header names its parameter and type. Unnamed form: one description per
    parameter in the code sample's order (``names``), each followed by its ``min :``/``max :`` and
    ``Allowed values:`` lines. Unquoted values one a line look like descriptions; the count settles
    it: every text line beyond one a parameter belongs to an allowed-values list.
    """
    end = start + 1
    while end <= len(page.lines):
        text = page.text(end)
        if _SECTION_END.match(text) or len(text) > _PROSE:
            break
        end += 1
    lines = [(n, t) for n, t in page.numbered(start + 1, end) if t]
    if any(_NAMED_HEADER.match(t) for _, t in lines):
        return _read_named(lines), (end if end <= len(page.lines) else None)
    return _read_unnamed(page, lines, names), (end if end <= len(page.lines) else None)


def _read_named(lines: list[tuple[int, str]]) -> list[RawParam]:
    params: list[RawParam] = []
    in_values = False
    for number, text in lines:
        header = _NAMED_HEADER.match(text)
        if header:
            kind = header.group("type").lower()
            raw = RawParam(header.group("name"), number, required=bool(header.group("star")))
            raw.type_text = _NAMED_TYPES.get(kind, "string" if kind.startswith("enum") else kind)
            raw.type_line = number
            if header.group("default") is not None:
                raw.has_default, raw.default = parse_literal(header.group("default"))
                raw.default_line = number
            params.append(raw)
            in_values = False
            continue
        if not params:
            continue
        current = params[-1]
        if _min_max(current, text, number):
            continue
        allowed = _ALLOWED.match(text)
        if allowed:
            current.allowed = Allowed(number)
            in_values = True
            if allowed.group("rest").strip():
                _value_line(current.allowed, allowed.group("rest"), number)
            continue
        if in_values and current.allowed is not None:
            _value_line(current.allowed, text, number)
            continue
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
            _min_max(current, text, number)
        elif kind == "allowed" and current is not None:
            current.allowed = Allowed(number)
            rest = _ALLOWED.match(text).group("rest")  # type: ignore[union-attr]
            if rest.strip():
                _allowed_line(current.allowed, rest, number)
        elif kind == "values" and current is not None and current.allowed is not None:
            _allowed_line(current.allowed, text, number)
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


def _min_max(raw: RawParam, text: str, number: int) -> bool:
    limit = _MIN_MAX.match(text)
    if limit is None:
        return False
    value = number_value(limit.group("value"))
    if limit.group("which").lower() == "min":
        raw.minimum = value
    else:
        raw.maximum = value
    raw.range_line = raw.range_line or number
    return True


def _value_line(allowed: Allowed, text: str, number: int) -> None:
    """One unquoted value a line, spaces and all ("DPM Multi")."""
    if not _allowed_line(allowed, text, number):
        allowed.quoted.append(text)
