"""The "Parameters" list of a model or workflow page, read into raw entries (still as printed)."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from engine.docimport.page import Page
from engine.docimport.values import number_value, parse_literal, quoted_values

__all__ = ["Allowed", "RawParam", "allowed_line", "read_parameters", "set_default"]

# Model page: "imagerequired" then "string (uri)". Workflow page: "Character" then "optionalstring (uri)".
_NAME_FLAG = re.compile(r"^(?P<name>[A-Za-z_][\w.\-\[\]]*?)(?P<flag>required|optional)$")
_NAME = re.compile(r"^[A-Za-z_][\w.\-\[\]]*$")
_FLAG_TYPE = re.compile(r"^(?P<flag>required|optional)\s*(?P<type>[A-Za-z]+(?:\s*\([^)]*\))?)$")
_TYPE = re.compile(r"^(?P<type>[A-Za-z]+)(?:\s*\((?P<fmt>[^)]*)\))?$")
_DEFAULT = re.compile(r"^Default\s*:\s*(?P<rest>.*)$")
_NUMBER = r"-?[\d.]+(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"Range\s*:\s*(?P<min>{_NUMBER})\s*(?:-|–|to)\s*(?P<max>{_NUMBER})\s*$")
# What is left of a range when the page stops inside it ("Range: 0", "Range: 1 -").
_PART_RANGE = re.compile(rf"^Range\s*:\s*(?:(?P<min>{_NUMBER})(?P<to>\s*(?:-|–|to(?![A-Za-z])))?)?")
_ALLOWED = re.compile(r"^Allowed values\s*(?:\((?P<total>\d+)\s+total\))?\s*:\s*(?P<rest>.*)$")
_MORE = re.compile(r"^\+\s*(?P<more>\d+)\s*more$")
_BARE_SCALAR = re.compile(r"^(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)$")
_LITERAL_LEAD = re.compile(r"^(?P<lead>true|false|null)(?=[A-Za-z_])")
_WORD = re.compile(r"^[A-Za-z_]\w*$")
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


def read_parameters(
    page: Page, start: int, known: Collection[str] = ()
) -> tuple[list[RawParam], int | None]:
    """Read the "Parameters" list that begins after line ``start`` (model and workflow layouts).

    ``known`` are the names the code sample sends: they tell a name from a value run into it.
    Returns the entries and the line where the list ended (None when the page ends inside it).
    """
    params: list[RawParam] = []
    current: RawParam | None = None
    state = "description"
    number = start + 1
    while number <= len(page.lines):
        text = page.text(number)
        if _SECTION_END.match(text):
            _finish(page, current)
            return params, number
        header = _header(page, number, known, current)
        if header is not None:
            raw, lead, number = header
            if lead and current is not None:
                _take_value(page, current, raw.line, lead)
            _finish(page, current)
            current = raw
            params.append(raw)
            state = "description"
            continue
        if current is not None and text:
            state = _body_line(page, current, number, text, state)
        number += 1
    _finish(page, current)
    return params, None


def _header(
    page: Page, number: int, known: Collection[str], previous: RawParam | None
) -> tuple[RawParam, str, int] | None:
    """A parameter starts here: its entry, a value of the previous one run into its name
    ("falseguidance_scaleoptional"), and the line after its type; else None."""
    text = page.text(number)
    flagged = _NAME_FLAG.match(text)
    if flagged:
        lead, name = _split_name(flagged.group("name"), known, previous)
        raw = RawParam(name, number, required=flagged.group("flag") == "required")
        type_number = _next_nonblank(page, number + 1)
        type_text = page.text(type_number) if type_number else ""
        if type_number and _TYPE.match(type_text) and not _FLAG_TYPE.match(type_text):
            _set_type(raw, type_text, type_number)
            return raw, lead, type_number + 1
        if type_number is None:
            # The page ends right after the name: keep what is there, the caller warns.
            return raw, lead, number + 1
    if _NAME.match(text):
        flag_number = number + 1
        flag_type = _FLAG_TYPE.match(page.text(flag_number))
        if flag_type:
            raw = RawParam(text, number, required=flag_type.group("flag") == "required")
            _set_type(raw, flag_type.group("type"), flag_number)
            return raw, "", flag_number + 1
    return None


def _split_name(name: str, known: Collection[str], previous: RawParam | None) -> tuple[str, str]:
    """(value, name) for a name a compact rendering ran the previous parameter's value into:
    "falseguidance_scale" is base64's `false`, then `guidance_scale`. Only a literal can be run in
    like this, and only when the sample sends the rest, or the previous parameter, a boolean, still
    waits for its value."""
    lead = _LITERAL_LEAD.match(name)
    if lead is None or name in known:
        return "", name
    rest = name[lead.end() :]
    waiting = previous is not None and previous.type_text == "boolean" and not previous.has_default
    if rest in known or waiting:
        return lead.group("lead"), rest
    return "", name


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


def _body_line(page: Page, raw: RawParam, number: int, text: str, state: str) -> str:
    """Take one line of a parameter's body; returns the reading state for the next line."""
    default = _DEFAULT.match(text)
    if default:
        raw.default_line = number
        if default.group("rest").strip():
            set_default(page, raw, number, default.group("rest"))
            return "body"
        return "default-next"
    if state == "default-next":
        set_default(page, raw, number, text)
        return "body"
    if text.startswith("Range") and _range(page, raw, number, text):
        return "body"
    allowed = _ALLOWED.match(text)
    if allowed:
        raw.allowed = Allowed(
            number, total=int(allowed.group("total")) if allowed.group("total") else None
        )
        if allowed.group("rest").strip():
            _allowed_text(page, raw.allowed, allowed.group("rest"), number)
        return "allowed"
    if (
        state == "allowed"
        and raw.allowed is not None
        and _allowed_text(page, raw.allowed, text, number)
    ):
        return "allowed"
    bare = _bare_line(page, raw, number, text, state)
    if bare is not None:
        return bare
    if page.is_cut(number) and _WORD.match(text):
        # A word cut short where the next parameter's name began ("num_infere"): not prose.
        return state
    if state in {"description", "body"} and not raw.has_default and raw.allowed is None:
        raw.description.append(text)
    return state


def _bare_line(page: Page, raw: RawParam, number: int, text: str, state: str) -> str | None:
    """A compact rendering's value without its label: a quoted value (the default, then the
    allowed values), "+4 more", or a number or true/false after the description. None when the
    line is none of these."""
    if state not in {"description", "body", "bare"} or raw.allowed is not None:
        return None
    quoted = quoted_values(text)
    if quoted is not None:
        values, more = quoted
        raw.bare += [(number, value) for value in values]
        raw.bare_more = more if more is not None else raw.bare_more
        raw.bare_cut = raw.bare_cut or page.is_cut(number)
        return "bare"
    if state == "bare":
        more_match = _MORE.match(text)
        if more_match:
            raw.bare_more = int(more_match.group("more"))
            return "bare"
        if page.is_cut(number) and text.startswith('"'):
            raw.bare_cut = True
            return "bare"
    if _BARE_SCALAR.match(text) and not raw.has_default and not raw.bare:
        set_default(page, raw, number, text)
        return "body"
    return None


def _take_value(page: Page, raw: RawParam, number: int, text: str) -> None:
    """A value printed without its label, run into the next parameter's name."""
    if not raw.has_default:
        set_default(page, raw, number, text)


def _finish(page: Page, raw: RawParam | None) -> None:
    """Settle what a compact rendering printed without labels: a lone quoted value is the default;
    a list whose first value comes again is the default, then the allowed values."""
    if raw is None or not raw.bare:
        return
    values = raw.bare
    if not raw.has_default:
        (line, first), rest = values[0], values[1:]
        if not rest and raw.bare_more is None:
            raw.has_default, raw.default, raw.default_line = True, first, line
            return
        if first in (value for _, value in rest):
            raw.has_default, raw.default, raw.default_line = True, first, line
            values = rest
        else:
            page.warn(
                line,
                f"'{raw.name}': the page prints its values without labels and none comes twice: "
                "all are taken as allowed values, and no default is kept",
                (raw.name, "default"),
            )
    raw.allowed = Allowed(
        values[0][0], quoted=[value for _, value in values], more=raw.bare_more, cut=raw.bare_cut
    )


def set_default(page: Page, raw: RawParam, number: int, text: str) -> None:
    """Read a default as printed (perhaps with its range run into it: "2Range: 1 - 20").

    A second default for the same parameter is a misreading, not a correction: the first stays.
    On the line where the page was cut, only a value that is evidently whole is kept: "10" may be
    the start of "100", a quoted URL without its closing quote is half a URL.
    """
    value, range_text = _split_range(text)
    if range_text:
        _range(page, raw, number, range_text)
    value = value.strip()
    if not value:
        return
    if raw.has_default:
        page.warn(
            number,
            f"'{raw.name}': a second default ({value}) is ignored; the first, on line "
            f"{page.stored_line(raw.default_line)}, is kept",
            (raw.name, "default"),
        )
        return
    raw.default_line = number
    if page.is_cut(number) and not range_text and not _whole(value):
        page.warn(
            number,
            f"'{raw.name}': the page is cut inside its default ({value}); no default kept",
            (raw.name, "default"),
        )
        return
    raw.has_default, raw.default = parse_literal(value)


def _split_range(text: str) -> tuple[str, str]:
    """The default and the range printed after it; a quoted default may itself say "Range"."""
    full = _RANGE.search(text)
    if full:
        return text[: full.start()], text[full.start() :]
    quoted = re.match(r'\s*"(?:[^"\\]|\\.)*"', text)
    at = text.find("Range", quoted.end() if quoted else 0)
    return (text, "") if at < 0 else (text[:at], text[at:])


def _whole(value: str) -> bool:
    """Whether a value on the line where the page stops is evidently all there."""
    if value[0] in '"[{':
        try:
            json.loads(value)
        except ValueError:
            return False
        return True
    return value.lower() in {"true", "false", "null", "none"}


def _range(page: Page, raw: RawParam, number: int, text: str) -> bool:
    """Read "Range: a - b"; False when the line is not a range. Where the page was cut, the
    maximum may be missing digits and is not kept; a range cut shorter keeps what is whole."""
    full = _RANGE.match(text)
    if full and not page.is_cut(number):
        raw.minimum = number_value(full.group("min"))
        raw.maximum = number_value(full.group("max"))
        raw.range_line = number
        return True
    part = _PART_RANGE.match(text)
    if part is None:
        return False
    raw.range_line = number
    kept = "no range is kept"
    if part.group("to"):
        raw.minimum = number_value(part.group("min") or "")
        kept = "only its minimum is kept"
    page.warn(
        number,
        f"'{raw.name}': the page is cut inside its range ({text.strip()}); {kept}",
        (raw.name, "maximum"),
    )
    return True


def _allowed_text(page: Page, allowed: Allowed, text: str, number: int) -> bool:
    """One line of an "Allowed values" list; where the page was cut, the list may go on."""
    more = _MORE.match(text)
    if more:
        allowed.more = int(more.group("more"))
        return True
    if page.is_cut(number):
        allowed.cut = True
        # Half a quoted value ('"pn') is still a value of the list, not prose.
        return allowed_line(allowed, text, number) or text.startswith('"')
    return allowed_line(allowed, text, number)


def allowed_line(allowed: Allowed, text: str, number: int) -> bool:
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
