"""Overlays: corrections apply with their reasons, and a wrong overlay names its file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.docimport import generate_spec
from engine.errors import OverlayError
from engine.specs import Spec
from engine.yamlfile import parse_yaml
from tests.helpers import write_tree

PAGE = """\
    Tiny Model Serverless API

    ~2.5s
    ~$0.01
     1import requests
     2data = {
     3    "prompt": "a cat",
     4    "mode": "fast",
     5}

    API Endpoint

    POSThttps://api.segmind.com/v1/tiny-model

    Parameters

    promptrequired
    string

    What to draw

    modeoptional
    string

    Speed

    Default: "fast"
    Allowed values (4 total):
    "fast""slow"+2 more

    Response Type

    Returns: Image
    """


def _generate(tmp_path: Path, overlay: str) -> tuple[Spec, list[str]]:
    write_tree(tmp_path, {"tiny.txt": PAGE, "tiny-overlay.yaml": overlay})
    text, notes = generate_spec(tmp_path / "tiny.txt", overlay=tmp_path / "tiny-overlay.yaml")
    doc = parse_yaml(text, "tiny.yaml")
    return Spec.model_validate(doc.data), [n.message for n in notes]


def test_an_enum_correction_completes_the_list_and_records_its_reason(tmp_path: Path) -> None:
    spec, notes = _generate(
        tmp_path,
        """
        corrections:
          - param: mode
            set: {enum: [fast, slow, turbo, best]}
            reason: The page cut the list short; the other two come from the model card.
        """,
    )
    mode = spec.params["mode"]
    assert mode.enum == ("fast", "slow", "turbo", "best")
    assert mode.enum_complete is True
    assert mode.notes == ("The page cut the list short; the other two come from the model card.",)
    assert not [n for n in notes if "'mode'" in n]


def test_a_spec_level_correction_goes_into_the_spec_notes(tmp_path: Path) -> None:
    spec, _ = _generate(
        tmp_path,
        """
        corrections:
          - set: {price_usd: 0.02, protocol: async, endpoint: /v2/tiny-model}
            reason: The pricing page says two cents; v2 serves every model.
        """,
    )
    assert (spec.price_usd, spec.protocol, spec.endpoint) == (0.02, "async", "/v2/tiny-model")
    assert spec.notes == ("The pricing page says two cents; v2 serves every model.",)


def test_a_correction_that_changes_nothing_is_pointed_out(tmp_path: Path) -> None:
    _, notes = _generate(
        tmp_path,
        """
        corrections:
          - param: prompt
            set: {required: true}
            reason: Making sure the prompt is required.
        """,
    )
    assert (
        f"{tmp_path / 'tiny-overlay.yaml'}: the correction of parameter 'prompt' sets required to "
        "what the page already says; remove it"
    ) in notes


def test_a_new_parameter_can_be_added_when_its_type_is_given(tmp_path: Path) -> None:
    spec, _ = _generate(
        tmp_path,
        """
        corrections:
          - param: seed
            set: {type: integer, minimum: -1, maximum: 100}
            reason: The page forgot the seed the model takes.
        """,
    )
    assert spec.params["seed"].maximum == 100


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (
            """
            corrections:
              - param: mood
                set: {enum: [a]}
                reason: a reason long enough
            """,
            "tiny-overlay.yaml:2: the page has no parameter 'mood'; did you mean 'mode'? "
            "(to add one, give its `type`)",
        ),
        (
            """
            corrections:
              - param: mode
                set:
                  enun: [a]
                reason: a reason long enough
            """,
            "tiny-overlay.yaml:4: cannot set 'enun' on a parameter; did you mean 'enum'? "
            "(settable: default, description, encoding, enum, enum_complete, maximum, minimum, "
            "numeric_string, required, type)",
        ),
        (
            """
            corrections:
              - param: mode
                set: {required: true}
            """,
            "tiny-overlay.yaml:2: corrections[0].reason: Field required",
        ),
        (
            """
            corrections:
              - set: {price_usd: -1}
                reason: a reason long enough
            """,
            "tiny-overlay.yaml:2: price_usd: Input should be greater than or equal to 0",
        ),
        (
            """
            corrections:
              - set: {protocol: carrier-pigeon}
                reason: a reason long enough
            """,
            "tiny-overlay.yaml:2: protocol: Input should be 'sync', 'async' or 'workflow'",
        ),
        (
            "corrections: [\n",
            "tiny-overlay.yaml:2: invalid YAML: did not find expected node content "
            "(while parsing a flow node started on line 2)",
        ),
        ("- 1\n", "tiny-overlay.yaml:1: an overlay is a mapping with a `corrections` list"),
    ],
)
def test_bad_overlays_name_file_line_and_field(tmp_path: Path, overlay: str, message: str) -> None:
    with pytest.raises(OverlayError) as caught:
        _generate(tmp_path, overlay)
    assert str(caught.value) == f"{tmp_path}/{message}"
