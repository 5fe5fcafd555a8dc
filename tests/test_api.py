"""The public API of `engine`: every name in __all__ resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import engine


@pytest.mark.parametrize("name", engine.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(engine, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = engine.nope  # type: ignore[attr-defined]


def test_dir_lists_the_public_api() -> None:
    assert dir(engine) == sorted(engine.__all__)


def test_importing_engine_does_not_import_pydantic() -> None:
    code = "import sys, engine, engine.cli; print('pydantic' in sys.modules, 'rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_validate_a_payload_through_the_public_api() -> None:
    spec = engine.load_spec("sd1.5-scifi")
    assert engine.payload_violations(spec, {"prompt": "a city"}) == ()
    with pytest.raises(engine.PayloadError) as caught:
        engine.check_payload(spec, {"prompt": "a city", "samples": 5})
    assert [v.param for v in caught.value.violations] == ["samples"]
