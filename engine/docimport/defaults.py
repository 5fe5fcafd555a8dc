"""A parameter's default, checked against its own type, allowed values and range."""

from __future__ import annotations

import json
from typing import Any

from engine.docimport.page import Page
from engine.docimport.params import RawParam
from engine.docimport.values import number_value
from engine.specs import ParamType

__all__ = ["checked_default"]


class _Misfit:
    """A default its parameter's type cannot hold."""


_MISFIT = _Misfit()
_KIND_WORDS: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "image": "an image URL",
    "array": "a list",
    "object": "a mapping",
}


def checked_default(page: Page, raw: RawParam, kind: ParamType, fields: dict[str, Any]) -> object:
    """The default to keep (None for none), with a note wherever the page's own default had to be
    read differently or could not be kept. ``fields`` holds the parameter's enum and range."""
    if not raw.has_default or raw.default is None:
        return None
    printed = _shown(raw.default)
    value = _fitted(raw.default, kind)
    if value is _MISFIT:
        page.warn(
            raw.default_line,
            f"'{raw.name}': the default {printed} is not {_KIND_WORDS[kind]}; no default kept",
            (raw.name, "default"),
        )
        return None
    if value != raw.default or type(value) is not type(raw.default):
        page.warn(
            raw.default_line,
            f"'{raw.name}': the default {printed} is printed as a {type(raw.default).__name__} on "
            f"a parameter typed {kind}; read as {_shown(value)}",
            (raw.name, "default"),
        )
    if not _in_enum(page, raw, value, fields):
        return None
    _in_range(page, raw, value, fields)
    return value


def _fitted(value: object, kind: ParamType) -> object:
    """``value`` as the type ``kind`` holds it: "1323456" for an integer is 1323456, 2.0 is 2."""
    if kind in {"integer", "number"}:
        return _number(value, kind)
    if kind == "boolean":
        return value if isinstance(value, bool) else _MISFIT
    if kind in {"string", "image"}:
        if isinstance(value, str):
            return value
        if isinstance(value, list | dict):
            return _MISFIT
        # Older pages print no quotes ("( default: 1 )" for a string): what is printed is the text.
        return str(value).lower() if isinstance(value, bool) else str(value)
    if kind == "array":
        return value if isinstance(value, list) else _MISFIT
    return value if isinstance(value, dict) else _MISFIT


def _number(value: object, kind: ParamType) -> object:
    if isinstance(value, str):
        value = number_value(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _MISFIT
    if kind == "integer" and isinstance(value, float):
        return int(value) if value.is_integer() else _MISFIT
    return value


def _in_enum(page: Page, raw: RawParam, value: object, fields: dict[str, Any]) -> bool:
    """False when the default is not kept: an empty string outside a whole list is the page's
    way of printing no default. Any other default off the list is kept, and pointed out."""
    enum = fields.get("enum")
    if not enum or not fields.get("enum_complete", True) or value in enum:
        return True
    keep = value != ""
    page.warn(
        raw.default_line,
        f"'{raw.name}': the default {_shown(value)} is not one of its allowed values"
        + ("" if keep else "; no default kept"),
        (raw.name, "default"),
    )
    return keep


def _in_range(page: Page, raw: RawParam, value: object, fields: dict[str, Any]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, high = fields.get("minimum"), fields.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        page.warn(
            raw.default_line,
            f"'{raw.name}': the default {value} is outside its range "
            f"({'' if low is None else low} to {'' if high is None else high})",
            (raw.name, "default"),
        )


def _shown(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
