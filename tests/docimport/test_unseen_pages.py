"""Segmind API pages the importer was not built from, in the three layouts of the seed pages.

The pages live in ``tests/docimport/unseen/`` and keep the published layouts' quirks: line numbers glued
to code, ``Default: 2Range: 1 - 20``, ``"a""b"+3 more``, names glued to required/optional, run-together
numbers, the workflow layout's ``optionalstring (uri)``, the older layout's unnamed ``Attributes``.
One page has Windows line endings and a byte-order mark, one is cut short inside its parameter list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.docimport import ImportResult, import_page, import_text
from engine.errors import SpecImportError
from engine.specs import Param

UNSEEN = Path(__file__).resolve().parent / "unseen"


# --- what a fact about a parameter or the notes may say, besides "equals" ------------------------


@dataclass(frozen=True)
class Starts:
    """A text or tuple beginning with ``prefix``; ``length``: and that long."""

    prefix: str | tuple[object, ...]
    length: int | None = None

    def matches(self, got: object) -> bool:
        if not isinstance(got, type(self.prefix)):
            return False
        assert isinstance(got, str | tuple)
        whole = self.length is None or len(got) == self.length
        return got[: len(self.prefix)] == self.prefix and whole


@dataclass(frozen=True)
class Ends:
    """A text ending with ``suffix``."""

    suffix: str

    def matches(self, got: object) -> bool:
        return isinstance(got, str) and got.endswith(self.suffix)


@dataclass(frozen=True, init=False)
class Says:
    """Some note's message contains every one of ``parts``."""

    parts: tuple[str, ...]

    def __init__(self, *parts: str) -> None:
        object.__setattr__(self, "parts", parts)

    def holds(self, messages: list[str]) -> bool:
        return any(all(part in m for part in self.parts) for m in messages)


@dataclass(frozen=True)
class Never:
    """No note's message contains ``part``."""

    part: str

    def holds(self, messages: list[str]) -> bool:
        return not any(self.part in m for m in messages)


@dataclass(frozen=True)
class Quiet:
    """The importer noted nothing at all about the page."""

    def holds(self, messages: list[str]) -> bool:
        return not messages


NO_NOTES = Quiet()
# The page names every key its code sample sends.
NAMES_EVERY_SAMPLE_KEY = Never("does not name")

Fact = object
NoteFact = Says | Never | Quiet


@dataclass(frozen=True)
class Page:
    """A page and what importing it must give: the spec's header fields, its parameters in the
    page's order (each with the fields checked on it), and what the notes say."""

    file: str
    # What sets the page apart: its layout and quirks (the test's id, after the file's name).
    layout: str
    title: str
    endpoint: str
    protocol: str
    auth: str
    response: str
    price_usd: float | None
    latency_s: float | None
    params: dict[str, dict[str, Fact]]
    notes: tuple[NoteFact, ...] = ()


PAGES: list[Page] = [
    Page(
        "sdxl1.0-txt2img.txt",
        layout="model page, requests sample, v1 sync",
        title="Stable Diffusion XL 1.0",
        endpoint="/v1/sdxl1.0-txt2img",
        protocol="sync",
        auth="x-api-key",
        response="image",
        price_usd=0.0124,
        latency_s=4.73,
        params={
            "prompt": {
                "type": "string",
                "required": True,
                "enum": None,
                "default": Starts("cinematic film still, 4k"),
            },
            "base64": {"type": "boolean", "required": False, "default": False},
            "guidance_scale": {"type": "number", "default": 7.5, "minimum": 1, "maximum": 25},
            "high_noise_fraction": {
                "type": "number",
                "default": 0.8,
                "minimum": 0,
                "maximum": 1,
                "description": (
                    "Fraction of the inference steps run by the base model before the refiner "
                    "takes over"
                ),
            },
            # `102415362048` printed run together: the default (1024) and the sample (1024,
            # 1536) anchor it.
            "img_height": {
                "type": "integer",
                "default": 1024,
                "enum": (1024, 1536, 2048),
                "enum_complete": True,
                "minimum": None,
                "maximum": None,
            },
            "img_width": {
                "type": "integer",
                "default": 1024,
                "enum": (1024, 1536, 2048),
                "enum_complete": True,
                "minimum": None,
                "maximum": None,
            },
            "negative_prompt": {"type": "string", "required": False},
            "num_inference_steps": {
                "type": "integer",
                "default": 25,
                "minimum": 20,
                "maximum": 100,
            },
            "refiner": {"type": "boolean", "required": False, "default": True},
            "samples": {"type": "integer", "default": 1, "minimum": 1, "maximum": 4},
            "scheduler": {
                "type": "string",
                "default": "UniPC",
                "enum": (
                    "DDIM",
                    "DPM Multi",
                    "DPM Single",
                    "Euler a",
                    "Euler",
                    "Heun",
                    "DPM2 a Karras",
                    "DPM2 Karras",
                    "LMS",
                    "PNDM",
                ),
                "enum_complete": False,
            },
            "seed": {"type": "integer", "default": -1, "minimum": -1, "maximum": 999999999999999},
            "strength": {},
            "style": {
                "type": "string",
                "default": "base",
                "enum_complete": False,
                "enum": Starts(("base", "3d-model"), length=10),
            },
        },
        # Both cut lists are reported as incomplete.
        notes=(NAMES_EVERY_SAMPLE_KEY, Says("scheduler", "+6 more"), Says("style", "+23 more")),
    ),
    Page(
        "bg-removal-lite.txt",
        layout="model page, one image parameter",
        title="Background Removal Lite",
        endpoint="/v1/bg-removal-lite",
        protocol="sync",
        auth="x-api-key",
        response="image",
        price_usd=0.0015,
        latency_s=1.02,
        params={
            "image": {
                "type": "image",
                "encoding": "uri",
                "required": True,
                "default": None,
                "description": "Input Image",
            },
        },
        notes=(NO_NOTES,),
    ),
    Page(
        "clarity-upscaler.txt",
        layout="model page, SDK sample and v2 section",
        title="Clarity Upscaler",
        endpoint="/v2/clarity-upscaler",
        protocol="async",
        auth="x-api-key",
        response="image",
        price_usd=0.0388,
        latency_s=24.58,
        params={
            "image": {
                "type": "image",
                "encoding": "uri",
                "required": True,
                "default": Ends("clarity-upscaler-input.png"),
            },
            "creativity": {
                "type": "number",
                "required": False,
                "default": 0.35,
                "minimum": 0,
                "maximum": 1,
            },
            # A description printed over two lines is one description.
            "downscaling": {
                "type": "boolean",
                "default": False,
                "description": (
                    "Downscale the image before upscaling. Can improve quality and speed for "
                    "images with high resolution but lower quality"
                ),
            },
            # "HDR, try from 3 - 9" is a description, not a range.
            "dynamic": {
                "type": "number",
                "default": 6,
                "minimum": 1,
                "maximum": 50,
                "description": "HDR, try from 3 - 9",
            },
            "negative_prompt": {},
            "num_inference_steps": {
                "type": "integer",
                "default": 18,
                "minimum": 1,
                "maximum": 100,
            },
            "output_format": {
                "type": "string",
                "default": "png",
                "enum": ("webp", "jpg", "png"),
            },
            "prompt": {},
            "resemblance": {"type": "number", "default": 0.6, "minimum": 0, "maximum": 3},
            "scale_factor": {"type": "number", "default": 2, "minimum": 1, "maximum": 4},
            "sd_model": {
                "type": "string",
                "default": "juggernaut_reborn.safetensors [338b85bc4f]",
                "enum": (
                    "epicrealism_naturalSinRC1VAE.safetensors [84d76a0328]",
                    "juggernaut_reborn.safetensors [338b85bc4f]",
                    "flat2DAnimerge_v45Sharp.safetensors",
                ),
                "enum_complete": True,
            },
            # Negative lower bounds: "Default: 1337Range: -1 - 999999999", "Default: 0Range:
            # -1 - 100".
            "seed": {"type": "integer", "default": 1337, "minimum": -1, "maximum": 999999999},
            "sharpen": {"type": "integer", "default": 0, "minimum": -1, "maximum": 100},
        },
        notes=(NAMES_EVERY_SAMPLE_KEY,),
    ),
    Page(
        "wan2.2-i2v-fast.txt",
        layout="v2 video page, payload-first sample, Windows line endings and BOM",
        title="Wan 2.2 Image to Video Fast",
        endpoint="/v2/wan2.2-i2v-fast",
        protocol="async",
        auth="x-api-key",
        # "Returns: Video" (the spec's response kinds include video and audio).
        response="video",
        price_usd=None,
        latency_s=38.12,
        params={
            "image": {
                "type": "image",
                "encoding": "uri",
                "required": True,
                "default": None,
                "description": (
                    "Input image to animate. Use a clear, well-lit image: the first frame of "
                    "the video matches it closely."
                ),
            },
            "prompt": {"type": "string", "required": True},
            "frames_per_second": {"type": "integer", "default": 16, "minimum": 5, "maximum": 30},
            "go_fast": {"type": "boolean", "default": True},
            "negative_prompt": {"type": "string", "required": False, "default": None},
            "num_frames": {"type": "integer", "default": 81, "minimum": 81, "maximum": 121},
            "resolution": {"type": "string", "default": "480p", "enum": ("480p", "720p")},
            "sample_shift": {"type": "number", "default": 12, "minimum": 1, "maximum": 20},
            "seed": {"type": "integer", "default": -1, "minimum": -1, "maximum": 2147483647},
        },
    ),
    Page(
        "product-shot-relight.txt",
        layout="workflow page, four parameters, one required",
        title="Product Shot Relight",
        endpoint="/workflows/67b2e4f1c9a34d7e5f21a0b8-v3",
        protocol="workflow",
        auth="bearer",
        response="json",
        price_usd=0.0893,
        latency_s=41.27,
        params={
            "Product": {
                "type": "image",
                "encoding": "uri",
                "required": True,
                "description": "Product",
                "default": (
                    "https://segmind-inference-inputs.s3.amazonaws.com/"
                    "5f0e7c2a-91d4-4b8e-a6f3-2c7d9e1b4a60-perfume-bottle.png"
                ),
            },
            "Background_Prompt": {
                "type": "string",
                "required": False,
                "default": "on a wet black marble slab, soft rim light, misty dark studio",
                "description": "Background Prompt",
            },
            "Strength": {
                "type": "number",
                "required": False,
                "default": 0.65,
                "encoding": None,
            },
            "Light_Direction": {
                "type": "string",
                "required": False,
                "default": "left",
                "enum": None,
            },
        },
        notes=(NAMES_EVERY_SAMPLE_KEY,),
    ),
    Page(
        "ad-banner-generator.txt",
        layout="workflow in the model page layout",
        title="Ad Banner Generator",
        endpoint="/workflows/66f1a2b3c4d5e6f7a8b9c0d1-v2",
        protocol="workflow",
        auth="bearer",
        response="json",
        price_usd=0.4121,
        latency_s=None,
        params={
            "product_image": {"type": "image", "encoding": "uri", "required": False},
            "headline": {"type": "string", "default": "Summer Sale: 30% off everything"},
            "seed": {"type": "integer", "required": False, "description": "Seed"},
        },
        notes=(Says("latency"),),
    ),
    Page(
        "interior-restyle.txt",
        layout="older page, base64 files, unquoted allowed values",
        title="Interior Restyle",
        endpoint="/v1/interior-restyle",
        protocol="sync",
        auth="x-api-key",
        response="image",
        price_usd=None,
        latency_s=None,
        params={
            "image": {
                "type": "image",
                "encoding": "base64",
                "required": True,
                "description": "Image of the room to restyle, as base64",
            },
            "prompt": {
                "type": "string",
                "required": True,
                "description": "Describe the room you want to see",
            },
            "style": {
                "type": "string",
                "required": True,
                "enum": ("modern", "minimalist", "scandinavian", "industrial", "bohemian"),
                "enum_complete": True,
                "description": "The interior style to apply",
            },
            "strength": {
                "type": "number",
                "required": True,
                "minimum": 0.1,
                "maximum": 1,
                "description": Starts("How strongly the room is restyled"),
            },
            "num_inference_steps": {"type": "integer", "minimum": 20, "maximum": 50},
            "seed": {"type": "integer", "minimum": -1, "maximum": 999999999, "enum": None},
            # "mask (optional):" and "base64 (optional):" in the prose make them optional.
            "mask": {
                "type": "image",
                "encoding": "base64",
                "required": False,
                "minimum": None,
            },
            "output_format": {
                "type": "string",
                "required": True,
                "enum": ("jpeg", "png", "webp"),
                "minimum": None,
                "maximum": None,
            },
            "base64": {
                "type": "boolean",
                "required": False,
                "description": "Return the image as a base64 string inside a JSON response",
            },
        },
    ),
    Page(
        "flux-realism-lora.txt",
        layout="cut short inside its parameter list",
        title="Flux Realism Lora with upscale",
        endpoint="/v1/flux-realism-lora",
        protocol="sync",
        auth="x-api-key",
        # The page ends before "Returns:"; the sample prints response.json().
        response="json",
        price_usd=0.0361,
        latency_s=14.02,
        params={
            "prompt": {},
            "guidance": {"type": "number", "default": 3.5, "minimum": 0, "maximum": 10},
            "height": {"type": "integer", "default": 1024, "minimum": 512, "maximum": 2048},
            "image_format": {},
            "lora_strength": {},
            "output_quality": {},
            "sampler_name": {"type": "string", "default": "euler", "enum_complete": False},
            "scheduler": {
                "type": "string",
                "default": "simple",
                "enum": ("simple", "normal", "karras", "exponential", "sgm_uniform"),
                "enum_complete": True,
            },
            # The last entry, cut after its description, is kept as far as it goes.
            "seed": {
                "type": "integer",
                "default": None,
                "description": "Seed for image generation",
            },
            # The parameters the sample sends but the cut page never reached are read from the
            # sample: typed by its values, optional, without defaults, and pointed out.
            "steps": {"type": "integer", "required": False, "default": None},
            "width": {"type": "integer", "required": False, "default": None},
            "upscale": {"type": "boolean", "required": False, "default": None},
        },
        notes=(
            Says("parameter list", "end"),
            Says("'steps'", "cut"),
            Says("'width'", "cut"),
            Says("'upscale'", "cut"),
            NAMES_EVERY_SAMPLE_KEY,
            Says("response"),
        ),
    ),
]


def _raw(name: str) -> str:
    """The page's text exactly as stored (no newline translation, BOM kept)."""
    return (UNSEEN / name).read_bytes().decode("utf-8")


def _import(name: str) -> ImportResult:
    return import_page(UNSEEN / name)


def _messages(result: ImportResult) -> list[str]:
    return [note.message for note in result.notes]


def _check(param: Param, **expected: Fact) -> None:
    """Compare the named fields; bool/int/float are told apart (True == 1 would hide a bug)."""
    for field, want in expected.items():
        got = getattr(param, field)
        if isinstance(want, Starts | Ends):
            assert want.matches(got), f"{field}: {got!r} is not {want!r}"
            continue
        assert got == want, f"{field}: {got!r} != {want!r}"
        if want is not None and not isinstance(want, tuple):
            assert type(got) is type(want), f"{field}: {got!r} is {type(got).__name__}"


def _line_of(lines: list[str], text: str, start: int = 0) -> int:
    """The 0-based index of the first line equal to ``text`` (stripped) from ``start``."""
    for index in range(start, len(lines)):
        if lines[index].strip() == text:
            return index
    raise AssertionError(f"no line {text!r} in the page")


def _next_nonblank(lines: list[str], index: int) -> int:
    index += 1
    while not lines[index].strip():
        index += 1
    return index


# --------------------------------------------------------------------------------------------------
# Every page imports as published: its header, its parameters in order and each one's fields, and
# what the importer notes about it.


def test_the_unseen_pages_are_all_here() -> None:
    assert sorted(p.name for p in UNSEEN.glob("*.txt")) == sorted(page.file for page in PAGES)


@pytest.mark.parametrize(
    "page", PAGES, ids=lambda page: f"{page.file.removesuffix('.txt')}: {page.layout}"
)
def test_an_unseen_page_imports_as_published(page: Page) -> None:
    result = _import(page.file)
    spec = result.spec
    assert spec.source == page.file
    assert spec.id == page.file.removesuffix(".txt")
    header = ("title", "endpoint", "protocol", "auth", "response", "price_usd", "latency_s")
    assert {name: getattr(spec, name) for name in header} == {
        name: getattr(page, name) for name in header
    }
    assert list(spec.params) == list(page.params)
    for name, facts in page.params.items():
        try:
            _check(spec.params[name], **facts)
        except AssertionError as problem:
            raise AssertionError(f"{name}: {problem}") from None
    messages = _messages(result)
    for fact in page.notes:
        assert fact.holds(messages), f"{fact}: {messages}"


# --------------------------------------------------------------------------------------------------
# The page saved with Windows line endings and a byte-order mark.


def test_the_windows_page_keeps_its_bytes_and_no_carriage_return_reaches_the_spec() -> None:
    raw = _raw("wan2.2-i2v-fast.txt")
    assert "\r\n" in raw
    assert raw.startswith("\ufeff")
    for name, param in _import("wan2.2-i2v-fast.txt").spec.params.items():
        assert "\r" not in param.description, name
        assert not isinstance(param.default, str) or "\r" not in param.default, name


def test_windows_line_endings_change_nothing_but_the_bytes() -> None:
    raw = _raw("wan2.2-i2v-fast.txt")
    crlf = import_text(raw, name="wan.txt", spec_id="wan")
    lf = import_text(raw.replace("\r\n", "\n"), name="wan.txt", spec_id="wan")
    assert crlf.spec == lf.spec
    assert crlf.notes == lf.notes


def test_windows_line_endings_keep_line_numbers_in_notes() -> None:
    raw = _raw("wan2.2-i2v-fast.txt")
    lines = raw.split("\r\n")
    returns = _line_of(lines, "Returns: Video") + 1
    # A response kind the spec has no word for is noted at its line.
    raw = raw.replace("Returns: Video", "Returns: Hologram")
    result = import_text(raw, name="wan2.2-i2v-fast.txt", spec_id="wan")
    about_response = [n for n in result.notes if "hologram" in n.message.lower()]
    assert about_response, _messages(result)
    assert about_response[0].line == returns


# --------------------------------------------------------------------------------------------------
# Pages that cannot be read.


@pytest.mark.parametrize(
    "name",
    [
        "sdxl1.0-txt2img.txt",
        "product-shot-relight.txt",
        "interior-restyle.txt",
        "bg-removal-lite.txt",
    ],
)
def test_a_page_without_an_endpoint_is_refused(name: str) -> None:
    text = "".join(
        line for line in _raw(name).splitlines(keepends=True) if "api.segmind.com" not in line
    )
    assert text != _raw(name)
    with pytest.raises(SpecImportError) as caught:
        import_text(text, name=name, spec_id="x")
    message = str(caught.value)
    assert message.startswith(f"{name}:"), message
    assert "endpoint" in message.lower(), message


def test_a_bare_page_without_an_endpoint_is_refused() -> None:
    text = "Mystery Model Serverless API\n\nDoes something.\n\n~1.00s\n\nParameters\n\npromptrequired\nstring\n\nPrompt\n"
    with pytest.raises(SpecImportError) as caught:
        import_text(text, name="mystery.txt", spec_id="mystery")
    assert str(caught.value).startswith("mystery.txt:")
    assert "endpoint" in str(caught.value).lower()


@pytest.mark.parametrize(
    ("name", "header", "old", "new", "param"),
    [
        # Model layout: "samplesoptional" then "integer" on its own line.
        ("sdxl1.0-txt2img.txt", "samplesoptional", "integer", "stringy", "samples"),
        # Model layout with the SDK sample: the type line of a number.
        ("clarity-upscaler.txt", "resemblanceoptional", "number", "stringy", "resemblance"),
        # Workflow layout: "Strength" then "optionalnumber".
        ("product-shot-relight.txt", "Strength", "optionalnumber", "optionalstringy", "Strength"),
        # Windows line endings: the line number must still be the editor's.
        ("wan2.2-i2v-fast.txt", "num_framesoptional", "integer", "stringy", "num_frames"),
    ],
)
def test_an_unknown_type_names_its_line(
    name: str, header: str, old: str, new: str, param: str
) -> None:
    raw = _raw(name)
    newline = "\r\n" if "\r\n" in raw else "\n"
    lines = raw.split(newline)
    start = _line_of(lines, "Parameters")
    type_index = _next_nonblank(lines, _line_of(lines, header, start))
    assert lines[type_index] == old
    lines[type_index] = new
    with pytest.raises(SpecImportError) as caught:
        import_text(newline.join(lines), name=name, spec_id="x")
    line = type_index + 1
    message = str(caught.value)
    assert message.startswith(f"{name}:{line}:"), message
    assert caught.value.location.line == line
    assert "stringy" in message
    assert f"'{param}'" in message


# --------------------------------------------------------------------------------------------------
# Probes: realistic variants of the layouts above that the importer gets wrong (see each docstring).


def _interior_with_scheduler() -> str:
    """interior-restyle.txt, its `style` replaced by a scheduler whose unquoted values have spaces."""
    text = _raw("interior-restyle.txt")
    text = text.replace('"style": "scandinavian",', '"scheduler": "DPM Multi",')
    old = (
        "The interior style to apply\nAllowed values:\nmodern\nminimalist\nscandinavian\n"
        "industrial\nbohemian\n"
    )
    new = "Type of scheduler.\nAllowed values:\nDDIM\nDPM Multi\nDPM Single\nEuler a\nEuler\n"
    assert old in text
    return text.replace(old, new)


def test_older_page_unquoted_allowed_values_with_spaces() -> None:
    """Unquoted values one a line may hold spaces (Segmind's scheduler names do: "DPM Multi").

    The sample sends "DPM Multi", and the list has five lines more than there are parameters, so
    the lines are values, not descriptions; taking them as descriptions shifts every later
    parameter's description, min/max and allowed values onto the wrong parameter.
    """
    spec = import_text(_interior_with_scheduler(), name="sched.txt", spec_id="sched").spec
    p = spec.params
    assert list(p) == [
        "image",
        "prompt",
        "scheduler",
        "strength",
        "num_inference_steps",
        "seed",
        "mask",
        "output_format",
        "base64",
    ]
    _check(p["scheduler"], enum=("DDIM", "DPM Multi", "DPM Single", "Euler a", "Euler"))
    _check(p["strength"], minimum=0.1, maximum=1)
    assert p["strength"].description.startswith("How strongly the room is restyled")
    _check(p["num_inference_steps"], minimum=20, maximum=50)
    _check(p["output_format"], enum=("jpeg", "png", "webp"), minimum=None, maximum=None)
    _check(p["base64"], minimum=None, maximum=None)


_NAMED_ATTRIBUTES = """Attributes


imagestr *

Image of the room to restyle, as base64


promptstr *

Describe the room you want to see


styleenum:str ( default: modern )

The interior style to apply

Allowed values:

modern

minimalist


strengthfloat ( default: 0.65 )

How strongly the room is restyled

min : 0.1,

max : 1


num_inference_stepsint ( default: 30 ) Affects Pricing

Number of denoising steps

min : 20,

max : 50


seedint ( default: -1 )

Seed for reproducibility

min : -1,

max : 999999999


maskstr ( default: 1 )

Mask of the area to restyle


output_formatenum:str ( default: jpeg )

The output image format

Allowed values:

jpeg

png


base64boolean ( default: 1 )

Base64 encoding of the output image.

To keep track of your credit usage, you can inspect the response headers of each API call.
"""


def test_older_page_whose_attributes_carry_names() -> None:
    """Older pages also print `Attributes` with the name glued to its type (``seedint ( default: -1 )``,
    as segmind.com/models/segmind-vega-rt-v1/api does). Reading those header lines as descriptions
    shifts everything: `seed` gets the enum of `style`, `output_format` the range of `strength`.
    Either read the names, or refuse the page; never hand a misaligned spec back silently.
    """
    text = _raw("interior-restyle.txt")
    text = text[: text.index("Attributes\n")] + _NAMED_ATTRIBUTES
    spec = import_text(text, name="named.txt", spec_id="named").spec
    p = spec.params
    _check(p["image"], description="Image of the room to restyle, as base64")
    _check(p["style"], enum=("modern", "minimalist"), description="The interior style to apply")
    _check(p["strength"], minimum=0.1, maximum=1)
    _check(p["num_inference_steps"], minimum=20, maximum=50)
    _check(p["seed"], enum=None, minimum=-1, maximum=999999999)
    _check(p["output_format"], enum=("jpeg", "png"), minimum=None, maximum=None)


def test_array_parameter_default_is_a_list() -> None:
    """An `array` parameter whose default the page prints as JSON (``Default: ["a","b"]``, the way
    it prints every other default) must get a list, not the string '["a","b"]'.
    """
    text = _raw("clarity-upscaler.txt")
    text = text.replace(
        '    output_format="png",\n',
        '    output_format="png",\n    target_sizes=["1080x1080", "1080x1920", "1200x628"],\n',
    )
    entry = (
        "target_sizesoptional\narray\n\nSizes to produce, each as WIDTHxHEIGHT\n\n"
        'Default: ["1080x1080","1080x1920","1200x628"]\n'
    )
    text = text.replace("\nResponse Type\n", entry + "\nResponse Type\n", 1)
    spec = import_text(text, name="sizes.txt", spec_id="sizes").spec
    _check(spec.params["target_sizes"], type="array")
    assert spec.params["target_sizes"].default == ["1080x1080", "1080x1920", "1200x628"]
