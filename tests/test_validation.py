"""Payload validation: every violation reported, each naming the parameter, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.docimport.codesample import Base64Of, read_samples
from engine.docimport.page import Page
from engine.errors import PayloadError
from engine.localimage import LocalImage
from engine.specs import load_spec
from engine.validation import check_payload, payload_violations
from tests.helpers import SPEC_IDS, seed_page

IMAGE_B64 = "iVBORw0KGgo" + "A" * 80


def _page_example(spec_id: str) -> dict[str, object]:
    """The example payload printed on the seed page, with base64 calls standing in as base64 text."""
    page_path = seed_page(spec_id)
    page = Page.from_text(page_path.read_text(encoding="utf-8"), page_path.name)
    sample = read_samples(page, None)
    return {k: IMAGE_B64 if isinstance(v, Base64Of) else v for k, v in sample.payload.items()}


@pytest.mark.parametrize(
    "spec_id", ["scenecraft", "ai-product-photography", "consistent-character", "furniture-staging"]
)
def test_each_seed_pages_own_example_validates(spec_id: str) -> None:
    assert payload_violations(load_spec(spec_id), _page_example(spec_id)) == ()


def test_the_sd15_example_breaks_the_rules_its_overlay_decided_on() -> None:
    messages = [
        v.message
        for v in payload_violations(load_spec("sd1.5-scifi"), _page_example("sd1.5-scifi"))
    ]
    assert messages == [
        "scheduler: 'dpmpp_2m' is not an allowed value (allowed: 'DDIM', 'DPM Multi', 'DPM Single', "
        "'Euler a', 'Euler', 'Heun', 'DPM2 a Karras', 'DPM2 Karras', 'LMS', 'PNDM', 'DDPM', 'UniPC')",
        "seed: 516797155652 is above the maximum 4294967295 "
        "(allowed: an integer from -1 to 4294967295)",
    ]


def test_every_violation_is_reported_with_exact_messages() -> None:
    payload = {
        "image": "images/sofa.png",
        "steps": 60,
        "aspect_ratio": "16:9",
        "megapixel": "1.7",
        "image_format": "PNG",
        "dropshadow": "yes",
        "scale": float("nan"),
        "guidance_scale": True,
        "seed": "42",
        "x_value": 0,
        "promt": "a sofa",
    }
    messages = [v.message for v in payload_violations(load_spec("scenecraft"), payload)]
    assert messages == [
        "image: expected an image (URL or base64), got 'images/sofa.png'",
        "prompt: required parameter missing (allowed: a string)",
        "aspect_ratio: '16:9' is not an allowed value; did you mean '16:9 (Panorama)'? (allowed: "
        "'1:1 (Perfect Square)', '2:3 (Classic Portrait)', '3:4 (Golden Ratio)', "
        "'3:5 (Elegant Vertical)', '4:5 (Artistic Frame)', '5:7 (Balanced Portrait)', "
        "'5:8 (Tall Portrait)', '7:9 (Modern Portrait)', '9:16 (Slim Vertical)', '9:19 (Tall Slim)', "
        "'9:21 (Ultra Tall)', '9:32 (Skyline)', … (23 in all))",
        "dropshadow: expected true or false, got 'yes'",
        "guidance_scale: expected a number, got true (a boolean) (allowed: a number from 1 to 20)",
        "image_format: 'PNG' is not an allowed value; did you mean 'png'? "
        "(allowed: 'png', 'jpeg', 'webp')",
        "megapixel: '1.7' (a string) is not an allowed value; did you mean 1.5? (allowed: 0.1, 0.5, "
        "1.0, 1, 1.5, 2.0, 2, 2.1, 2.2, 2.3, 2.4, 2.5 (as a number or a string))",
        "scale: nan is not a finite number (allowed: a number from 0 to 1)",
        "seed: expected an integer, got '42' (a string) (allowed: an integer from -1 to 4294967295)",
        "steps: 60 is above the maximum 50 (allowed: an integer from 1 to 50)",
        "x_value: 0 is below the minimum 1 (allowed: a number from 1 to 100)",
        "promt: unknown parameter; did you mean 'prompt'? (allowed: image, prompt, aspect_ratio, "
        "dropshadow, guidance_scale, image_format, image_quality, megapixel, negative_prompt, scale, "
        "seed, steps, upscale, x_value, y_value)",
    ]


def test_megapixel_takes_a_number_or_its_string_spelling() -> None:
    spec = load_spec("scenecraft")
    base = {"image": "https://example.com/sofa.png", "prompt": "a sofa"}
    for value in (1.5, "1.5", 1, "1.0", 2, "2.5", 0.1):
        assert payload_violations(spec, {**base, "megapixel": value}) == (), value
    assert [v.param for v in payload_violations(spec, {**base, "megapixel": "big"})] == [
        "megapixel"
    ]


def test_images_may_be_urls_base64_data_uris_or_local_files() -> None:
    spec = load_spec("furniture-staging")
    payload = {
        "prompt": "a table",
        "main_image": LocalImage(Path("room.png")),
        "overlay_image": "https://example.com/table.png",
        "main_image_mask": "data:image/png;base64,iVBORw0KGgo=",
        "steps": 25,
        "seed": 1,
        "guidance": 30,
        "image_format": "png",
        "image_quality": 95,
        "overlay_image_mask": IMAGE_B64,
    }
    assert payload_violations(spec, payload) == ()


def test_an_incomplete_enum_checks_only_the_type(tmp_path: Path) -> None:
    spec = load_spec("scenecraft")
    loose = spec.model_copy(
        update={
            "params": {
                **spec.params,
                "aspect_ratio": spec.params["aspect_ratio"].model_copy(
                    update={"enum_complete": False}
                ),
            }
        }
    )
    base = {"image": "https://example.com/sofa.png", "prompt": "a sofa"}
    assert payload_violations(loose, {**base, "aspect_ratio": "99:1 (Unheard Of)"}) == ()
    assert [v.param for v in payload_violations(loose, {**base, "aspect_ratio": 16})] == [
        "aspect_ratio"
    ]


def test_check_payload_raises_with_every_violation() -> None:
    with pytest.raises(PayloadError) as caught:
        check_payload(load_spec("sd1.5-scifi"), {"samples": 9, "img_width": 500})
    assert str(caught.value) == (
        "payload for sd1.5-scifi has 3 problems:\n"
        "  - prompt: required parameter missing (allowed: a string)\n"
        "  - img_width: 500 is not an allowed value; did you mean 512? (allowed: 512, 768, 1024)\n"
        "  - samples: 9 is above the maximum 4 (allowed: an integer from 1 to 4)"
    )


def test_a_payload_that_is_not_a_mapping() -> None:
    (violation,) = payload_violations(load_spec("sd1.5-scifi"), ["prompt"])  # type: ignore[arg-type]
    assert violation.message == "payload: expected a mapping of parameters, got a list of 1"


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_the_validator_is_built_once_per_spec(spec_id: str) -> None:
    spec = load_spec(spec_id)
    assert spec.validator is spec.validator
    assert load_spec(spec_id) is spec
