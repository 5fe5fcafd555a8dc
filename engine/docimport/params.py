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


def read_attributes(page: Page, start: int, names: list[str]) -> tuple[list[RawParam], int | None]:
    """The older layout: after "Attributes", one description per parameter in the code sample's order,
    each followed by its ``min :``/``max :`` and ``Allowed values:`` lines; names come from ``names``.
    """
    params: list[RawParam] = []
    number = start + 1
    total = len(page.lines)
    allowed_open = False
    while number <= total:
        text = page.text(number)
        if not text:
            number += 1
            continue
        limit = _MIN_MAX.match(text)
        if limit and params:
            value = number_value(limit.group("value"))
            if limit.group("which").lower() == "min":
                params[-1].minimum = value
            else:
                params[-1].maximum = value
            params[-1].range_line = params[-1].range_line or number
            number += 1
            continue
        allowed = _ALLOWED.match(text)
        if allowed and params:
            params[-1].allowed = Allowed(number)
            allowed_open = True
            if allowed.group("rest").strip():
                _allowed_line(params[-1].allowed, allowed.group("rest"), number)
            number += 1
            continue
        still_allowed = allowed_open and params and params[-1].allowed is not None
        if still_allowed and " " not in text and _allowed_line(params[-1].allowed, text, number):  # type: ignore[arg-type]
            number += 1
            continue
        allowed_open = False
        if len(params) == len(names) or _SECTION_END.match(text):
            return params, number
        params.append(RawParam(names[len(params)], number, description=[text]))
        number += 1
    return params, None
