"""The five seed pages import into the specs we expect, and regenerate the shipped specs byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.docimport import generate_spec, import_page
from engine.specs import Spec, available_specs, load_spec_file
from tests.helpers import PAGES, ROOT, SPEC_IDS, seed_page

SPECS = ROOT / "specs"


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_shipped_spec_is_exactly_what_its_page_and_overlay_generate(spec_id: str) -> None:
    page = seed_page(spec_id)
    text, _ = generate_spec(page, overlay=SPECS / "overlays" / f"{spec_id}.yaml")
    shipped = (SPECS / f"{spec_id}.yaml").read_text(encoding="utf-8")
    assert text == shipped, (
        f"specs/{spec_id}.yaml has drifted from its page: regenerate it with `render specs import "
        f"specs/pages/{page.name} --overlay specs/overlays/{spec_id}.yaml -o specs/{spec_id}.yaml`"
    )


def test_every_shipped_spec_names_a_page_that_ships_beside_it() -> None:
    for spec_id in SPEC_IDS:
        source = load_spec_file(SPECS / f"{spec_id}.yaml").source
        assert (PAGES / source).is_file(), (
            f"specs/{spec_id}.yaml: source {source} not in specs/pages/"
        )


def test_the_pages_beside_the_specs_are_not_taken_for_specs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # specs/ ships in the wheel as engine/_specs, pages and all: only its own *.yaml are specs.
    monkeypatch.delenv("RENDER_SPECS_PATH", raising=False)
    found = available_specs()
    assert set(SPEC_IDS) <= set(found)
    assert all(path.suffix == ".yaml" and path.parent == SPECS for path in found.values())


def _spec(spec_id: str) -> Spec:
    return import_page(seed_page(spec_id)).spec


def test_model_page_header_fields() -> None:
    spec = _spec("scenecraft")
    assert (spec.id, spec.title, spec.endpoint, spec.protocol, spec.auth, spec.response) == (
        "scenecraft",
        "Segmind SceneCraft v0.1",
        "/v1/segmind-scenecraft-v01",
        "sync",
        "x-api-key",
        "image",
    )
    assert (spec.price_usd, spec.latency_s, spec.source) == (0.339, 33.64, "scenecraft.txt")


def test_model_page_parameters_in_page_order_with_everything_the_page_says() -> None:
    spec = _spec("scenecraft")
    assert list(spec.params) == [
        "image", "prompt", "aspect_ratio", "dropshadow", "guidance_scale", "image_format",
        "image_quality", "megapixel", "negative_prompt", "scale", "seed", "steps", "upscale",
        "x_value", "y_value",
    ]  # fmt: skip
    image = spec.params["image"]
    assert (image.type, image.encoding, image.required) == ("image", "uri", True)
    steps = spec.params["steps"]
    assert (steps.type, steps.default, steps.minimum, steps.maximum) == ("integer", 40, 1, 50)
    scale = spec.params["scale"]
    assert (scale.type, scale.default, scale.minimum, scale.maximum) == ("number", 0.65, 0, 1)
    assert spec.params["image_format"].enum == ("png", "jpeg", "webp")
    assert spec.params["dropshadow"].default is True
    assert spec.params["negative_prompt"].description == (
        "Specifies elements to avoid in the image. Useful for excluding undesired features."
    )


def test_truncated_enum_is_marked_incomplete_with_a_warning() -> None:
    result = import_page(seed_page("scenecraft"))
    aspect = result.spec.params["aspect_ratio"]
    assert len(aspect.enum or ()) == 10
    assert aspect.enum_complete is False
    assert any(
        n.line == 67
        and n.message.startswith("'aspect_ratio': the page shows 10 of 23 allowed values")
        for n in result.notes
    )


def test_run_together_megapixels_are_split_with_the_default_and_sample_as_evidence() -> None:
    spec = _spec("ai-product-photography")
    assert spec.params["megapixel"].enum == (
        0.1, 0.5, 1.0, 1, 1.5, 2.0, 2, 2.1, 2.2, 2.3, 2.4, 2.5,
    )  # fmt: skip
    assert [type(v) for v in spec.params["megapixel"].enum or ()][2:4] == [float, int]


def test_run_together_integers_are_split() -> None:
    spec = _spec("sd1.5-scifi")
    assert spec.params["img_width"].enum == (512, 768, 1024)
    assert spec.params["img_height"].enum == (512, 768, 1024)


def test_v2_page_is_async_with_the_v2_endpoint() -> None:
    spec = _spec("ai-product-photography")
    assert (spec.endpoint, spec.protocol, spec.price_usd, spec.latency_s) == (
        "/v2/ai-product-photography",
        "async",
        None,
        11.67,
    )


def test_zero_latency_is_unknown_and_said_so() -> None:
    result = import_page(seed_page("sd1.5-scifi"))
    assert result.spec.latency_s is None
    assert any(n.line == 5 and "~0.00s, which is no measurement" in n.message for n in result.notes)


def test_workflow_page() -> None:
    spec = _spec("consistent-character")
    assert (spec.endpoint, spec.protocol, spec.auth, spec.response) == (
        "/workflows/6865fd064727e611dfa21d4f-v5",
        "workflow",
        "bearer",
        "json",
    )
    assert (spec.price_usd, spec.latency_s) == (0.1224, 59.16)
    assert list(spec.params) == ["Character", "Scene", "Prompt"]
    character = spec.params["Character"]
    assert (character.type, character.required, character.encoding) == ("image", False, "uri")
    assert spec.params["Prompt"].default == "sitting on the bench"


def test_older_page_takes_names_from_the_code_sample() -> None:
    result = import_page(seed_page("furniture-staging"))
    spec = result.spec
    assert (spec.title, spec.endpoint, spec.protocol, spec.response) == (
        "Furniture Staging",
        "/v1/furniture-staging",
        "sync",
        "image",
    )
    assert list(spec.params) == [
        "prompt", "main_image", "overlay_image", "main_image_mask", "overlay_image_mask",
        "steps", "seed", "guidance", "image_format", "image_quality",
    ]  # fmt: skip
    assert spec.params["main_image"].description == "The URL of the main image"
    assert (spec.params["main_image"].type, spec.params["main_image"].encoding) == (
        "image",
        "base64",
    )
    steps = spec.params["steps"]
    assert (steps.type, steps.minimum, steps.maximum) == ("integer", 10, 100)
    assert spec.params["seed"].description == "Random seed for reproducibility"
    assert spec.params["overlay_image_mask"].required is False  # "(optional)" in the page's prose
    assert spec.params["prompt"].required is True
    assert (spec.price_usd, spec.latency_s) == (None, None)
    messages = [n.message for n in result.notes]
    assert "'image_format': 'Allowed values' is empty; no list kept" in messages


def test_overlay_notes_answer_the_page_warnings_they_fix(tmp_path: Path) -> None:
    _, notes = generate_spec(
        seed_page("scenecraft"), overlay=SPECS / "overlays" / "scenecraft.yaml"
    )
    assert not [n for n in notes if "aspect_ratio" in n.message]
