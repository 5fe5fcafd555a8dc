"""Check a payload against its spec through a pydantic model built from the spec, reporting every violation."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from engine.errors import PayloadError, Violation
from engine.formatting import describe_value
from engine.localimage import LocalImage
from engine.specs import TYPE_WORDS, Param, Spec
from engine.suggest import did_you_mean

__all__ = [
    "PayloadValidator",
    "check_payload",
    "is_sendable_image",
    "payload_violations",
]

_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_DATA_URI = re.compile(r"data:image/[\w.+-]+;base64,", re.IGNORECASE)
_BASE64 = re.compile(r"[A-Za-z0-9+/][A-Za-z0-9+/\r\n]*={0,2}")
_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
# Shorter than this, "base64" is more likely a typo or a file name than an image.
_MIN_BASE64 = 64
_ENUM_SHOWN = 12


def payload_violations(spec: Spec, payload: Mapping[str, Any]) -> tuple[Violation, ...]:
    """Every way ``payload`` breaks ``spec`` (empty when it is valid)."""
    return spec.validator.violations(payload)


def check_payload(spec: Spec, payload: Mapping[str, Any]) -> None:
    """Raise :class:`PayloadError` listing every violation, if there is any."""
    spec.validator.check(payload)


class PayloadValidator:
    """A spec compiled into a pydantic model; valid payloads never leave pydantic-core."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        fields: dict[str, Any] = {
            name: (_annotation(param), ... if param.required else None)
            for name, param in spec.params.items()
        }
        model = create_model(
            f"Payload_{re.sub(r'[^0-9A-Za-z_]', '_', spec.id)}",
            __config__=ConfigDict(
                strict=True, extra="forbid", arbitrary_types_allowed=True, frozen=True
            ),
            **fields,
        )
        self._validate: Callable[[Any], Any] = model.__pydantic_validator__.validate_python

    def violations(self, payload: Mapping[str, Any]) -> tuple[Violation, ...]:
        if not isinstance(payload, Mapping):
            return (
                Violation(
                    "payload", f"expected a mapping of parameters, got {describe_value(payload)}"
                ),
            )
        try:
            self._validate(payload if isinstance(payload, dict) else dict(payload))
        except ValidationError as exc:
            found: dict[str, Violation] = {}
            for error in exc.errors():
                violation = self._translate(error)
                # A union can fail once per member; the user needs to hear it once per parameter.
                found.setdefault(violation.param, violation)
            return tuple(found.values())
        return ()

    def check(self, payload: Mapping[str, Any]) -> None:
        found = self.violations(payload)
        if found:
            raise PayloadError(self.spec.id, found)

    def _translate(self, error: Any) -> Violation:
        name = str(error["loc"][0]) if error["loc"] else "payload"
        kind: str = error["type"]
        value = error.get("input")
        param = self.spec.params.get(name)
        if param is None or kind == "extra_forbidden":
            hint = did_you_mean(name, self.spec.params)
            return Violation(name, f"unknown parameter{hint}", value, ", ".join(self.spec.params))
        shown = describe_value(value)
        if kind == "missing":
            problem, value = "required parameter missing", None
        elif kind in {"greater_than_equal", "greater_than"}:
            problem = f"{shown} is below the minimum {param.minimum}"
        elif kind in {"less_than_equal", "less_than"}:
            problem = f"{shown} is above the maximum {param.maximum}"
        elif kind in {"literal_error", "enum"}:
            problem = f"{shown} is not an allowed value{did_you_mean(value, param.enum or ())}"
        elif kind == "finite_number":
            problem = f"{shown} is not a finite number"
        else:
            # A type error names the type already: "allowed" adds something only for a range or list.
            problem = f"expected {_expected(param)}, got {shown}"
            if param.enum is None and param.minimum is None and param.maximum is None:
                return Violation(name, problem, value)
        return Violation(name, problem, value, param.allowed(most=_ENUM_SHOWN))


def _expected(param: Param) -> str:
    if param.type == "number" and param.numeric_string:
        return "a number (or a string spelling one)"
    return TYPE_WORDS[param.type]


def _annotation(param: Param) -> Any:
    limits: dict[str, Any] = {
        key: value
        for key, value in (("ge", param.minimum), ("le", param.maximum))
        if value is not None
    }
    enum = param.enum if param.enum is not None and param.enum_complete else None
    if param.type == "string":
        if enum is not None and all(isinstance(v, str) for v in enum):
            return Literal[enum]
        return Annotated[str, _enum_check(enum)] if enum is not None else str
    if param.type == "integer":
        base: Any = Annotated[int, Field(**limits)]
        return Annotated[base, _enum_check(enum)] if enum is not None else base
    if param.type == "number":
        base = Annotated[float, Field(allow_inf_nan=False, **limits)]
        if param.numeric_string:
            base = Annotated[base, BeforeValidator(_number_from_string)]
        return Annotated[base, _enum_check(enum)] if enum is not None else base
    if param.type == "boolean":
        return bool
    if param.type == "image":
        return Annotated[Any, PlainValidator(_check_image)]
    if param.type == "array":
        return list[Any]
    return dict[str, Any]


def _enum_check(enum: tuple[object, ...] | None) -> AfterValidator:
    # Python compares ints and floats exactly (1 == 1.0, and 2**1024 is simply not in the set).
    allowed = frozenset(enum or ())

    def check(value: Any) -> Any:
        if value not in allowed:
            raise PydanticCustomError("enum", "not an allowed value")
        return value

    return AfterValidator(check)


def _number_from_string(value: Any) -> Any:
    # Only a plain spelling ("1.5", "-2", "1e3"), not what float() also takes ("1_5", " 1.5 ", "nan").
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else value
    return value


def is_sendable_image(value: str) -> bool:
    """Whether an image value can go to Segmind as it is: an http(s) URL, a data URI or base64."""
    if _URL.match(value) or _DATA_URI.match(value):
        return True
    return len(value) >= _MIN_BASE64 and _BASE64.fullmatch(value) is not None


def _check_image(value: Any) -> str | LocalImage:
    if isinstance(value, LocalImage) or (isinstance(value, str) and is_sendable_image(value)):
        return value
    raise PydanticCustomError("image", "not an image")
