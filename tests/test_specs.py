"""Spec files: loading, what a bad one says, and the way a spec describes what it allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.specs import Param, available_specs, load_spec_file, spec_dirs
from tests.helpers import SPEC_IDS, write_tree


def test_the_five_specs_ship() -> None:
    assert set(SPEC_IDS) <= set(available_specs())


def test_specs_path_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENDER_SPECS_PATH", str(tmp_path))
    assert spec_dirs()[0] == tmp_path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- 1\n", "s.yaml:1: a spec must be a mapping of fields"),
        (
            "id: x\ntitle: X\nendpoint: /v1/x\nprotocol: sync\nauth: x-api-key\nresponse: image\n"
            "source: x.txt\nparams:\n  steps:\n    type: int\n",
            "s.yaml:10: params.steps.type: Input should be 'string', 'integer', 'number', 'boolean', "
            "'image', 'array' or 'object'",
        ),
        (
            "id: x\ntitle: X\nendpoint: v1/x\nprotocol: sync\nauth: x-api-key\nresponse: image\n"
            "source: x.txt\nparams: {}\n",
            "s.yaml:3: endpoint: String should match pattern '^/\\S+$'",
        ),
        (
            "id: x\ntitle: X\nendpoint: /v1/x\nprotocol: sync\nauth: x-api-key\nresponse: image\n"
            "source: x.txt\nparams: {}\ncolour: red\n",
            "s.yaml:9: colour: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_spec_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    write_tree(tmp_path, {"s.yaml": text})
    with pytest.raises(SpecError) as caught:
        load_spec_file(tmp_path / "s.yaml")
    assert str(caught.value) == f"{tmp_path}/{message}"


@pytest.mark.parametrize(
    ("param", "words"),
    [
        (Param(type="integer", minimum=1, maximum=4), "an integer from 1 to 4"),
        (Param(type="number", minimum=0), "a number of at least 0"),
        (Param(type="number", maximum=2.5), "a number of at most 2.5"),
        (
            Param(type="string", enum=("a", "b"), enum_complete=False),
            "'a', 'b', … (list incomplete)",
        ),
        (Param(type="boolean"), "true or false"),
        (Param(type="integer", enum=(1, 2, 3, 4)), "1, 2, 3, 4"),
    ],
)
def test_allowed_in_words(param: Param, words: str) -> None:
    assert param.allowed() == words


def test_allowed_can_be_capped() -> None:
    assert Param(type="integer", enum=(1, 2, 3, 4)).allowed(most=2) == "1, 2, … (4 in all)"
