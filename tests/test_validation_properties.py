"""Validation properties over every shipped spec, with payloads drawn from the specs' own params."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import PayloadError, Violation
from engine.specs import Param, Spec, available_specs, load_spec
from engine.validation import check_payload, payload_violations
from tests import strategies

SPEC_IDS = sorted(available_specs())
PROPERTY = settings(max_examples=40, deadline=None)


def _params(where: Callable[[Param], bool]) -> list[Any]:
    """``(spec_id, name)`` for every parameter of every spec that ``where`` picks, as "spec.name"."""
    return [
        pytest.param(spec_id, name, id=f"{spec_id}.{name}")
        for spec_id in SPEC_IDS
        for name, param in load_spec(spec_id).params.items()
        if where(param)
    ]


ALL_PARAMS = _params(lambda p: True)
WITH_MAXIMUM = _params(lambda p: p.maximum is not None)
WITH_MINIMUM = _params(lambda p: p.minimum is not None)
WITH_ENUM = _params(lambda p: p.enum is not None and p.enum_complete)
WITH_ANY_ENUM = _params(lambda p: p.enum is not None)
REQUIRED = _params(lambda p: p.required)


@functools.cache
def spec_with_incomplete_enums(spec_id: str) -> Spec:
    """The spec with every enum marked incomplete, as when a page cuts its lists short."""
    data = load_spec(spec_id).model_dump()
    for param in data["params"].values():
        if param["enum"] is not None:
            param["enum_complete"] = False
    return Spec.model_validate(data)


@functools.cache
def strategy(
    kind: str, spec_id: str, name: str | None = None, *, incomplete: bool = False
) -> st.SearchStrategy[Any]:
    """``strategies.<kind>`` for this spec (and parameter), built once: building is the slow part."""
    spec = spec_with_incomplete_enums(spec_id) if incomplete else load_spec(spec_id)
    if kind == "valid_payload":
        return strategies.valid_payload(spec, without=(name,) if name else ())
    if kind == "valid_value":
        return strategies.valid_value(spec.params[name])
    return getattr(strategies, kind)(spec, name)


def assert_only_about(violations: Sequence[Violation], name: str) -> None:
    """At least one violation, and every one names ``name`` (the rest of the payload is valid)."""
    assert violations, f"no violation reported for {name}"
    for violation in violations:
        assert violation.param == name, violation.message
        assert violation.message.startswith(f"{name}: "), violation.message


@pytest.mark.parametrize("spec_id", SPEC_IDS)
@PROPERTY
@given(data=st.data())
def test_valid_payloads_have_no_violations(spec_id: str, data: st.DataObject) -> None:
    spec = load_spec(spec_id)
    payload = data.draw(strategy("valid_payload", spec_id))
    assert payload_violations(spec, payload) == ()
    check_payload(spec, payload)


@pytest.mark.parametrize(("spec_id", "name"), ALL_PARAMS)
@PROPERTY
@given(data=st.data())
def test_every_valid_value_is_accepted(spec_id: str, name: str, data: st.DataObject) -> None:
    spec = load_spec(spec_id)
    payload = data.draw(strategy("valid_payload", spec_id, name))
    payload[name] = data.draw(strategy("valid_value", spec_id, name), label=name)
    assert payload_violations(spec, payload) == ()


@pytest.mark.parametrize(("spec_id", "name"), WITH_MAXIMUM)
@PROPERTY
@given(data=st.data())
def test_above_the_maximum_is_refused(spec_id: str, name: str, data: st.DataObject) -> None:
    spec = load_spec(spec_id)
    payload, target = data.draw(strategy("above_maximum", spec_id, name))
    violations = payload_violations(spec, payload)
    assert_only_about(violations, target)
    assert any("above the maximum" in v.problem for v in violations), violations


@pytest.mark.parametrize(("spec_id", "name"), WITH_MINIMUM)
@PROPERTY
@given(data=st.data())
def test_below_the_minimum_is_refused(spec_id: str, name: str, data: st.DataObject) -> None:
    spec = load_spec(spec_id)
    payload, target = data.draw(strategy("below_minimum", spec_id, name))
    violations = payload_violations(spec, payload)
    assert_only_about(violations, target)
    assert any("below the minimum" in v.problem for v in violations), violations


@pytest.mark.parametrize(("spec_id", "name"), WITH_ENUM)
@PROPERTY
@given(data=st.data())
def test_values_off_a_complete_enum_are_refused(
    spec_id: str, name: str, data: st.DataObject
) -> None:
    spec = load_spec(spec_id)
    payload, target = data.draw(strategy("off_enum", spec_id, name))
    violations = payload_violations(spec, payload)
    assert_only_about(violations, target)
    assert any("not an allowed value" in v.problem for v in violations), violations


@pytest.mark.parametrize(("spec_id", "name"), WITH_ANY_ENUM)
@PROPERTY
@given(data=st.data())
def test_an_incomplete_enum_checks_only_the_type(
    spec_id: str, name: str, data: st.DataObject
) -> None:
    spec = spec_with_incomplete_enums(spec_id)
    payload = data.draw(strategy("valid_payload", spec_id, name, incomplete=True))
    payload[name] = data.draw(strategies.of_type(spec.params[name]), label=name)
    assert payload_violations(spec, payload) == ()
    payload, target = data.draw(strategy("wrong_type", spec_id, name, incomplete=True))
    assert_only_about(payload_violations(spec, payload), target)


@pytest.mark.parametrize(("spec_id", "name"), ALL_PARAMS)
@PROPERTY
@given(data=st.data())
def test_a_value_of_the_wrong_type_is_refused(spec_id: str, name: str, data: st.DataObject) -> None:
    spec = load_spec(spec_id)
    payload, target = data.draw(strategy("wrong_type", spec_id, name))
    violations = payload_violations(spec, payload)
    assert_only_about(violations, target)
    with pytest.raises(PayloadError) as raised:
        check_payload(spec, payload)
    assert raised.value.violations == violations


@pytest.mark.parametrize(("spec_id", "name"), REQUIRED)
@PROPERTY
@given(data=st.data())
def test_a_missing_required_parameter_is_named(
    spec_id: str, name: str, data: st.DataObject
) -> None:
    spec = load_spec(spec_id)
    payload, target = data.draw(strategy("missing_required", spec_id, name))
    violations = payload_violations(spec, payload)
    assert_only_about(violations, target)
    assert all("missing" in v.problem for v in violations), violations


@pytest.mark.parametrize("spec_id", SPEC_IDS)
@PROPERTY
@given(data=st.data())
def test_an_unknown_key_is_named(spec_id: str, data: st.DataObject) -> None:
    spec = load_spec(spec_id)
    payload = data.draw(strategy("valid_payload", spec_id))
    key = data.draw(st.text(max_size=20).filter(lambda k: k not in spec.params), label="key")
    payload[key] = data.draw(strategies.json_values, label="value")
    violations = payload_violations(spec, payload)
    assert_only_about(violations, key)
    assert all(v.problem.startswith("unknown parameter") for v in violations), violations


# --- engine bugs found while writing these properties, pinned to their smallest inputs ---


def test_a_huge_integer_off_an_integer_enum_is_a_violation_not_a_crash() -> None:
    # _enum_check calls float() on the int: OverflowError escapes instead of a violation.
    spec = load_spec("sd1.5-scifi")
    violations = payload_violations(spec, {"prompt": "p", "img_height": 2**1024})
    assert_only_about(violations, "img_height")


def test_blank_lines_are_not_an_image() -> None:
    # _BASE64 allows \r and \n anywhere, so 64 newlines pass as "base64" with no data in them.
    spec = load_spec("scenecraft")
    violations = payload_violations(spec, {"image": "\n" * 64, "prompt": "p"})
    assert_only_about(violations, "image")


def test_an_image_of_the_wrong_type_is_reported_once() -> None:
    # An image is one check, not a union: a wrong type is one violation.
    spec = load_spec("scenecraft")
    violations = payload_violations(spec, {"image": 5, "prompt": "p"})
    assert [v.message for v in violations] == ["image: expected an image (URL or base64), got 5"]
