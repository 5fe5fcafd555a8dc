"""Hypothesis strategies derived from our own ``Param`` and ``Spec`` objects.

``valid_value`` and ``valid_payload`` draw what a spec accepts. The invalid generators each draw
``(payload, name)``: a payload that is valid except for parameter ``name``, broken in one way.
"""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from engine.localimage import LocalImage
from engine.specs import Param, Spec

Case = tuple[dict[str, Any], str]

_BASE64_ALPHABET = string.ascii_letters + string.digits + "+/"
# Far beyond any range in the specs, yet small enough to be exact as a float.
_BIG = 2**40

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-_BIG, _BIG) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_range(param: Param, value: float) -> bool:
    return (param.minimum is None or value >= param.minimum) and (
        param.maximum is None or value <= param.maximum
    )


def _spells_numbers(param: Param) -> bool:
    return param.type == "number" and param.numeric_string


def _spelt(value: float) -> str:
    """A number as a string: ``1.5`` → ``"1.5"`` (``repr`` of a float reads back exactly)."""
    return repr(value)


# --- valid values -------------------------------------------------------------------------------


def images() -> st.SearchStrategy[object]:
    """URLs, data URIs, bare base64 (64+ characters, maybe padded) and local files."""
    names = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
    base64 = st.text(_BASE64_ALPHABET, min_size=64, max_size=100)
    return st.one_of(
        st.just("https://example.com/x.png"),
        names.map(lambda name: f"http://example.com/{name}.jpg"),
        st.builds(
            lambda kind, body: f"data:image/{kind};base64,{body}",
            st.sampled_from(["png", "jpeg", "webp"]),
            base64,
        ),
        st.builds(lambda body, pad: body + pad, base64, st.sampled_from(["", "=", "=="])),
        names.map(lambda name: LocalImage(Path(f"{name}.png"))),
    )


def numbers_in_range(param: Param) -> st.SearchStrategy[int | float]:
    """Integers (and for ``number``, floats too) inside the parameter's range."""
    low = -_BIG if param.minimum is None else math.ceil(param.minimum)
    high = _BIG if param.maximum is None else math.floor(param.maximum)
    integers = st.integers(low, high)
    if param.type == "integer":
        return integers
    floats = st.floats(param.minimum, param.maximum, allow_nan=False, allow_infinity=False)
    return floats | integers if low <= high else floats


def of_type(param: Param) -> st.SearchStrategy[object]:
    """Values of the parameter's type, inside its range, whatever its enum says."""
    match param.type:
        case "string":
            return st.text(max_size=20)
        case "integer" | "number":
            return numbers_in_range(param)
        case "boolean":
            return st.booleans()
        case "image":
            return images()
        case "array":
            return st.lists(json_values, max_size=3)
        case _:
            return st.dictionaries(st.text(max_size=5), json_values, max_size=3)


def _fits(param: Param, value: object) -> bool:
    if param.type in {"integer", "number"}:
        whole = param.type == "number" or isinstance(value, int)
        return _is_number(value) and whole and _in_range(param, value)
    if param.type == "string":
        return isinstance(value, str)
    return param.type == "boolean" and isinstance(value, bool)


def valid_value(param: Param) -> st.SearchStrategy[object]:
    """A value the parameter accepts: from its enum when it has one, else of its type and range."""
    if param.enum is None:
        values = of_type(param)
    else:
        values = st.sampled_from([v for v in param.enum if _fits(param, v)])
        if not param.enum_complete:
            values |= of_type(param)
    if _spells_numbers(param):
        values |= values.filter(_is_number).map(_spelt)
    return values


def valid_payload(
    spec: Spec, *, without: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """Every required parameter and some optional ones (none of ``without``), each valid."""
    params = {name: p for name, p in spec.params.items() if name not in without}
    return st.fixed_dictionaries(
        {name: valid_value(p) for name, p in params.items() if p.required},
        optional={name: valid_value(p) for name, p in params.items() if not p.required},
    )


# --- invalid payloads ---------------------------------------------------------------------------


def _with_bad(spec: Spec, name: str, bad: st.SearchStrategy[object]) -> st.SearchStrategy[Case]:
    """A valid payload whose ``name`` is set to a value drawn from ``bad``."""
    return st.tuples(valid_payload(spec, without=(name,)), bad).map(
        lambda drawn: ({**drawn[0], name: drawn[1]}, name)
    )


def _maybe_spelt(param: Param, numbers: st.SearchStrategy[Any]) -> st.SearchStrategy[object]:
    return numbers | numbers.map(_spelt) if _spells_numbers(param) else numbers


def above_maximum(spec: Spec, name: str) -> st.SearchStrategy[Case]:
    """Integers: maximum + 1 (or a little beyond); numbers: any float strictly above the maximum."""
    param = spec.params[name]
    assert param.maximum is not None
    first = math.floor(param.maximum) + 1
    bad: st.SearchStrategy[Any] = st.just(first) | st.integers(first, first + _BIG)
    if param.type == "number":
        bad |= st.floats(min_value=param.maximum, exclude_min=True, allow_infinity=False)
    return _with_bad(spec, name, _maybe_spelt(param, bad))


def below_minimum(spec: Spec, name: str) -> st.SearchStrategy[Case]:
    """Integers: minimum - 1 (or a little below); numbers: any float strictly below the minimum."""
    param = spec.params[name]
    assert param.minimum is not None
    first = math.ceil(param.minimum) - 1
    bad: st.SearchStrategy[Any] = st.just(first) | st.integers(first - _BIG, first)
    if param.type == "number":
        bad |= st.floats(max_value=param.minimum, exclude_max=True, allow_infinity=False)
    return _with_bad(spec, name, _maybe_spelt(param, bad))


def off_enum(spec: Spec, name: str) -> st.SearchStrategy[Case]:
    """A value of the right type that is not in the (complete) enum; numbers differ by value."""
    param = spec.params[name]
    assert param.enum is not None
    assert param.enum_complete
    if param.type == "string":
        bad: st.SearchStrategy[Any] = st.text(max_size=20).filter(lambda s: s not in param.enum)
    else:
        listed = {float(v) for v in param.enum if _is_number(v)}
        numbers = st.integers(-_BIG, _BIG)
        if param.type == "number":
            numbers |= st.floats(allow_nan=False, allow_infinity=False)
        bad = _maybe_spelt(param, numbers.filter(lambda v: float(v) not in listed))
    return _with_bad(spec, name, bad)


def _non_numeric_text(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return True


def _wrong_values(param: Param) -> st.SearchStrategy[object]:
    nothing_or_list = st.none() | st.lists(st.integers(), min_size=1, max_size=2)
    match param.type:
        case "string":
            return (
                st.integers() | st.floats() | st.booleans() | nothing_or_list | st.just({"a": "b"})
            )
        case "integer":
            fractional = st.floats().filter(lambda f: not f.is_integer())
            integral = st.integers(-1000, 1000).map(float)
            return st.text(max_size=10) | fractional | integral | st.booleans() | nothing_or_list
        case "number":
            text = st.text(max_size=10)
            if _spells_numbers(param):
                text = text.filter(_non_numeric_text)
            not_finite = st.sampled_from([math.nan, math.inf, -math.inf])
            return text | not_finite | st.booleans() | nothing_or_list | st.just({"x": 1})
        case "boolean":
            return st.integers() | st.sampled_from(["true", "false", "yes"]) | nothing_or_list
        case "image":
            # Too short for base64 and no http(s):// or data:image/ prefix.
            short = st.text(max_size=63).filter(
                lambda s: not s.lower().startswith(("http://", "https://", "data:image/"))
            )
            odd = st.sampled_from(
                [
                    "cat.png",
                    "ftp://example.com/x.png",
                    "data:text/plain;base64,QUJD",
                    "A" * 40 + " " * 40,
                ]
            )
            return short | odd | st.integers() | nothing_or_list | st.just(Path("x.png"))
        case "array":
            return (
                st.text(max_size=5)
                | st.integers()
                | st.none()
                | st.just({"a": 1})
                | st.just((1, 2))
            )
        case _:
            return st.text(max_size=5) | st.integers() | st.none() | st.just([("a", 1)])


def wrong_type(spec: Spec, name: str) -> st.SearchStrategy[Case]:
    """A value of another type (or None, or a non-finite number) for parameter ``name``."""
    return _with_bad(spec, name, _wrong_values(spec.params[name]))


def missing_required(spec: Spec, name: str) -> st.SearchStrategy[Case]:
    """A valid payload without the required parameter ``name``."""
    assert spec.params[name].required
    return valid_payload(spec, without=(name,)).map(lambda payload: (payload, name))
