"""Ten more real Segmind API pages, as a web reader stored them, each held against the spec read off
the page by hand.

The pages live in ``tests/docimport/more/`` (copied byte for byte from ``segmind-docs/more/``, with its
README naming their sources). Most are cut at 2,000 bytes, mid-page. Between them they carry the
layouts the importer must read: a workflow page with no heading, cut inside a URL; a v2 page whose SDK
sample comes before a v1 "API Endpoint"; prices as ``$0.05 per generation``; ``Returns: Audio`` and
``Returns: Video``; a compact rendering (``requiredstring``, bare quoted values, ``+4 moreinput_image``);
a rendering with every parameter on one line (``falseguidance_scaleoptionalnumber…``); an older page
with an axios sample, ``POST/v1/<slug>`` and a named ``Attributes`` list that prints ``min`` twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.docimport import ImportResult, import_page, import_text
from engine.errors import SpecImportError
from engine.specs import Param
from tests.docimport.test_unseen_pages import Ends, Never, Quiet, Says, Starts

MORE = Path(__file__).resolve().parent / "more"

Fact = object


@dataclass(frozen=True, init=False)
class At:
    """A note at physical line ``line`` whose message contains every one of ``parts``."""

    line: int
    parts: tuple[str, ...]

    def __init__(self, line: int, *parts: str) -> None:
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "parts", parts)


NoteFact = Says | Never | Quiet | At
NO_NOTES = Quiet()
# Parameters sent after the cut are the page's, not ones its list leaves out.
NOT_UNNAMED = Never("does not name")
CUT_LIST = Says("the page ends inside the parameter list")
NO_PRICE = Says("the page shows no price")
NO_LATENCY = Says("the page shows no latency")
NO_RESPONSE = Says("the page does not say what the response is")


@dataclass(frozen=True)
class Page:
    """A page and the spec it must give: header fields, parameters in order with the fields checked
    on each (a field left out is not checked), and what the notes say."""

    file: str
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


# The ten values the pages show of longer lists (the rest is "+3 more", "+4 more").
BACKGROUNDS = (
    "transparent", "mask", "inverted mask", "blur", "white", "green", "black", "blue", "yellow",
    "red",
)  # fmt: skip
KONTEXT_RATIOS = (
    "match_input_image", "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4",
)  # fmt: skip


def _from_sample(kind: str) -> dict[str, Fact]:
    """A parameter the code sample sends after the page was cut: typed by the sample's value,
    optional, and with no default (a sample's value is an example, not a default)."""
    return {"type": kind, "required": False, "default": None, "enum": None, "minimum": None}


PAGES: list[Page] = [
    Page(
        "background-color-change-ipadapter-canny.txt",
        layout="workflow page with no heading, cut inside its first default URL",
        # The first line is "1import requests": the title comes from the file's name, as the page's
        # address has it (the workflow's id is no name).
        title="Background Color Change Ipadapter Canny",
        endpoint="/workflows/65c9c7f641c340d7ef2f7134-v1",
        protocol="workflow",
        auth="bearer",
        response="json",
        price_usd=None,
        latency_s=None,
        params={
            "background": {
                "type": "image",
                "encoding": "uri",
                "required": False,
                # 'Default: "https://images.segmind.com/inputs/0603aa80-…-465275e27' is cut before
                # its closing quote: no default rather than half a URL.
                "default": None,
                "description": "Background",
            },
            "product_prompt": _from_sample("string"),
        },
        notes=(
            At(1, "title", "Background Color Change Ipadapter Canny"),
            At(64, "the page ends inside the parameter list"),
            At(64, "'background'", "cut", "default"),
            At(10, "'product_prompt'", "cut"),
            NOT_UNNAMED,
            NO_PRICE,
            NO_LATENCY,
        ),
    ),
    Page(
        "bg-removal-v2.txt",
        layout="whole model page, a null default and a 13-value list cut to ten",
        title="Background Removal V2",
        endpoint="/v1/bg-removal-v2",
        protocol="sync",
        auth="x-api-key",
        response="image",
        price_usd=0.001,
        latency_s=0.62,
        params={
            "image": {
                "type": "image",
                "encoding": "uri",
                "required": True,
                "default": None,
                "description": "Input Image",
            },
            "custom_color": {
                "type": "string",
                "required": False,
                "default": None,  # "Default: null"
                "enum": None,
                "description": "please enter in RGB color code example: '170,65,230'",
            },
            "type": {
                "type": "string",
                "required": False,
                "default": "transparent",
                "enum": BACKGROUNDS,
                "enum_complete": False,
                "description": "",
            },
        },
        notes=(At(50, "'type'", "10 of 13", "+3 more"), NOT_UNNAMED),
    ),
    Page(
        "esrgan.txt",
        layout="v2 SDK page: 'POST /v2/<slug> · submit + poll' above a v1 API Endpoint",
        title="ESRGAN",
        endpoint="/v2/esrgan",
        protocol="async",
        auth="x-api-key",
        response="image",
        price_usd=None,
        latency_s=None,
        params={
            "image": {
                "type": "image",
                "encoding": "uri",
                "required": True,
                "default": None,
                "description": "Input Image.",
            },
            "output_format": {
                "type": "string",
                "required": False,
                "default": "jpeg",
                "enum": ("jpeg", "png", "webp"),
                "enum_complete": True,
                "description": "Format of the output image",
            },
            "quality": {
                "type": "integer",
                "required": False,
                "default": 95,
                "minimum": 10,
                "maximum": 100,
                "enum": None,
            },
            # "Allowed values :" then "248": 2, 4, 8 (the default 2 anchors it).
            "scale": {
                "type": "integer",
                "required": False,
                "default": 2,
                "enum": (2, 4, 8),
                "minimum": None,
                "maximum": None,
                "numeric_string": False,
            },
        },
        notes=(
            At(73, "'scale'", "2, 4, 8"),
            # The sample sends scale="2": a string, though the page types it integer.
            At(15, "'scale'", "string"),
            NOT_UNNAMED,
            NO_PRICE,
            NO_LATENCY,
        ),
    ),
    Page(
        "flux-dev.txt",
        layout="model page cut after its seventh parameter; the sample sends two more",
        title="Flux.1 Dev",
        endpoint="/v1/flux-dev",
        protocol="sync",
        auth="x-api-key",
        # Cut before "Response Type"; the sample prints response.json().
        response="json",
        price_usd=0.02,
        latency_s=20.55,
        params={
            "prompt": {
                "type": "string",
                "required": True,
                "default": Starts("detailed cinematic dof render of an old dusty detailed CRT"),
                "description": "Text prompt for image generation",
            },
            # 'Default: ""' is not one of its own allowed values: no default, and a warning.
            "aspect_ratio": {
                "type": "string",
                "required": False,
                "default": None,
                "enum": ("1:1", "16:9", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"),
                "enum_complete": True,
                "description": "Type of scheduler.",
            },
            # The page types it integer (the sample sends 3.5: warned, the page's type kept).
            "guidance": {
                "type": "integer",
                "required": False,
                "default": 3,
                "minimum": 0,
                "maximum": 10,
                "description": "guidance",
            },
            "output_format": {
                "type": "string",
                "required": False,
                "default": "webp",
                "enum": ("webp", "jpg", "png"),
                "description": "An enumeration.",
            },
            "output_quality": {
                "type": "integer",
                "required": False,
                "default": 80,
                "minimum": 0,
                "maximum": 100,
                "description": Starts("Quality when saving the output images, from 0 to 100."),
            },
            "prompt_strength": {
                "type": "number",
                "required": False,
                "default": 0.8,
                "minimum": 0,
                "maximum": 1,
                "description": "Prompt Strength",
            },
            # Cut after its description (the page's last line is whole).
            "samples": {
                "type": "integer",
                "required": False,
                "default": None,
                "minimum": None,
                "maximum": None,
                "description": "Number of samples to generate.",
            },
            "steps": _from_sample("integer"),
            "seed": _from_sample("integer"),
        },
        notes=(
            At(86, "the page ends inside the parameter list"),
            At(54, "'aspect_ratio'", "not one of its allowed values"),
            At(19, "'guidance'", "3.5"),
            At(20, "'steps'", "cut"),
            At(23, "'seed'", "cut"),
            NOT_UNNAMED,
            NO_RESPONSE,
            Never("price"),
            Never("latency"),
        ),
    ),
    Page(
        "flux-kontext-pro-compact.txt",
        layout="compact rendering: flags glued to types, bare quoted values, '+4 moreinput_image'",
        title="Flux Kontext Pro",
        endpoint="/v1/flux-kontext-pro",
        protocol="sync",
        auth="x-api-key",
        response="json",
        price_usd=None,
        latency_s=None,
        params={
            "prompt": {
                "type": "string",
                "required": True,
                "default": None,
                "description": Starts("Describes the desired output or edit."),
            },
            # Bare quoted lines: the default ("match_input_image"), then ten allowed values and
            # "+4 more", as the full rendering (flux-kontext-pro.txt) prints them with labels.
            "aspect_ratio": {
                "type": "string",
                "required": False,
                "default": "match_input_image",
                "enum": KONTEXT_RATIOS,
                "enum_complete": False,
                "description": (
                    "Defines the image's width-to-height ratio. Choose '16:9' for widescreen or "
                    "'1:1' for square images."
                ),
            },
            "input_image": {
                "type": "image",
                "encoding": "uri",
                "required": False,
                "default": None,
                "description": "",
            },
            "output_format": _from_sample("string"),
            "safety_tolerance": _from_sample("integer"),
        },
        notes=(
            At(63, "'aspect_ratio'", "+4 more"),
            At(74, "the page ends inside the parameter list"),
            At(16, "'output_format'", "cut"),
            At(17, "'safety_tolerance'", "cut"),
            NOT_UNNAMED,
            NO_PRICE,
            NO_LATENCY,
            NO_RESPONSE,
        ),
    ),
    Page(
        "flux-kontext-pro.txt",
        layout="model page, '$0.05 per generation', cut inside its last description",
        title="Flux Kontext Pro",
        endpoint="/v1/flux-kontext-pro",
        protocol="sync",
        auth="x-api-key",
        response="json",
        price_usd=0.05,
        latency_s=20.69,
        params={
            "prompt": {"type": "string", "required": True, "default": None},
            "aspect_ratio": {
                "type": "string",
                "required": False,
                "default": "match_input_image",
                "enum": Starts(("match_input_image", "1:1", "16:9"), length=10),
                "enum_complete": False,
            },
            "input_image": {
                "type": "image",
                "encoding": "uri",
                "required": False,
                "default": Ends("c13c6038dfa9-kontext-pro-ip.webp"),
            },
            "output_format": {
                "type": "string",
                "required": False,
                "default": "png",
                "enum": ("jpg", "png"),
            },
            "safety_tolerance": {
                "type": "integer",
                "required": False,
                "default": 2,
                "minimum": None,
                "maximum": None,
            },
            # The page ends inside its description: kept as far as it goes, nothing invented.
            "seed": {
                "type": "integer",
                "required": False,
                "default": None,
                "description": Starts("Sets the random seed for generation consistency."),
            },
        },
        notes=(
            At(50, "'aspect_ratio'", "10 of 14"),
            At(75, "the page ends inside the parameter list"),
            NOT_UNNAMED,
            NO_RESPONSE,
            Never("price"),
        ),
    ),
    Page(
        "meta-musicgen-medium.txt",
        layout="whole page of an audio model: 'Returns: Audio'",
        title="Meta MusicGen Medium",
        endpoint="/v1/meta-musicgen-medium",
        protocol="sync",
        auth="x-api-key",
        response="audio",
        price_usd=0.037,
        latency_s=21.97,
        params={
            "prompt": {
                "type": "string",
                "required": True,
                "default": "lo-fi music with a soothing melody",
                "description": "prompt to generate music",
            },
            "duration": {
                "type": "number",
                "required": False,
                "default": 10,
                "minimum": 1,
                "maximum": 30,
                "description": "duration of the audio",
            },
            "seed": {
                "type": "integer",
                "required": False,
                "default": 42,
                "minimum": -1,
                "maximum": 9999,
                "description": "Seed for audio generation.",
            },
        },
        notes=(NO_NOTES,),
    ),
    Page(
        "p-video.txt",
        layout="video model: 'Returns: Video', '$0.005 per generation', cut in the error codes",
        title="Pruna P Video",
        endpoint="/v1/p-video",
        protocol="sync",
        auth="x-api-key",
        response="video",
        price_usd=0.005,
        latency_s=16.43,
        params={
            "prompt": {"type": "string", "required": True, "default": None},
            "aspect_ratio": {
                "type": "string",
                "required": False,
                "default": "16:9",
                "enum": ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"),
                "enum_complete": True,
            },
            "duration": {
                "type": "integer",
                "required": False,
                "default": 5,
                "minimum": 3,
                "maximum": 15,
                "description": Starts("Length of the generated video in seconds (3-15)."),
            },
            "seed": {
                "type": "integer",
                "required": False,
                "default": 12345,
                "minimum": -1,
                "maximum": 999999999999999,
            },
        },
        notes=(NO_NOTES,),
    ),
    Page(
        "sd1.5-controlnet-softedge.txt",
        layout="one parameter a line, run together ('falseguidance_scaleoptionalnumber…')",
        title="ControlNet Soft Edge",
        endpoint="/v1/sd1.5-controlnet-softedge",
        protocol="sync",
        auth="x-api-key",
        response="json",
        price_usd=None,
        latency_s=None,
        params={
            "image": {
                "type": "image",
                "encoding": "uri",
                "required": True,
                "default": None,
                "description": "Input Image",
            },
            "prompt": {"type": "string", "required": True, "description": "Prompt to render"},
            # "false" opens the next line: base64's default, run into the next parameter's name.
            "base64": {
                "type": "boolean",
                "required": False,
                "default": False,
                "description": "Base64 encoding of the output image.",
            },
            "guidance_scale": {
                "type": "number",
                "required": False,
                "default": 7.5,
                "minimum": 0.1,
                "maximum": 25,
                "description": "Scale for classifier-free guidance",
            },
            "negative_prompt": {
                "type": "string",
                "required": False,
                "default": None,
                "description": "Prompts to exclude, eg. 'bad anatomy, bad hands, missing fingers'",
            },
            # Cut at "num_infere": the rest come from the sample, in its order.
            "samples": _from_sample("integer"),
            "scheduler": _from_sample("string"),
            "num_inference_steps": _from_sample("integer"),
            # The sample sends 1: an integer is all the page shows.
            "strength": _from_sample("integer"),
            "seed": _from_sample("integer"),
        },
        notes=(
            At(68, "the page ends inside the parameter list"),
            At(14, "'samples'", "cut"),
            At(17, "'scheduler'", "cut"),
            At(21, "'seed'", "cut"),
            NOT_UNNAMED,
            NO_PRICE,
            NO_LATENCY,
            NO_RESPONSE,
        ),
    ),
    Page(
        "sd1.5-img2img.txt",
        layout="older page: 'POST/v1/<slug>', axios sample, named Attributes, 'min' printed twice",
        title="Sd1.5 Img2img",
        endpoint="/v1/sd1.5-img2img",
        protocol="sync",
        auth="x-api-key",
        # "RESPONSE" then "image/jpeg".
        response="image",
        price_usd=None,
        latency_s=None,
        params={
            # "imageimage *"; the sample sends "toB64('/sd-img2img-input.jpeg')": base64.
            "image": {
                "type": "image",
                "encoding": "base64",
                "required": True,
                "default": None,
                "description": "Input Image.",
            },
            # "min : 1," then "min : 4": the second is the maximum.
            "samples": {
                "type": "integer",
                "required": False,
                "default": 1,
                "minimum": 1,
                "maximum": 4,
                "description": "Number of samples to generate.",
            },
            "prompt": {
                "type": "string",
                "required": True,
                "default": None,
                "description": "Prompt to render",
            },
            "negative_prompt": {
                "type": "string",
                "required": False,
                "default": None,  # "( default: None )"
                "description": "Prompts to exclude, eg. 'bad anatomy, bad hands, missing fingers'",
            },
            # "Allowed values:" with nothing after it.
            "scheduler": {
                "type": "string",
                "required": False,
                "default": "DDIM",
                "enum": None,
                "description": "Type of scheduler.",
            },
            "num_inference_steps": {
                "type": "integer",
                "required": False,
                "default": 20,
                "minimum": 20,
                "maximum": 100,
                "description": "Number of denoising steps.",
            },
            "guidance_scale": {
                "type": "number",
                "required": False,
                "default": 7.5,
                "minimum": 0.1,
                "maximum": 25,
                "description": "Scale for classifier-free guidance",
            },
            # Cut at "m" after "min : 0.1,": no maximum, and no "m" in the description.
            "strength": {
                "type": "number",
                "required": False,
                "default": 1,
                "minimum": 0.1,
                "maximum": None,
                "description": "How much to transform the reference image",
            },
            "seed": _from_sample("integer"),
            "img_width": _from_sample("integer"),
            "img_height": _from_sample("integer"),
            "base64": _from_sample("boolean"),
        },
        notes=(
            At(1, "title", "Sd1.5 Img2img"),
            At(63, "'samples'", "'min' twice"),
            At(89, "'num_inference_steps'", "'min' twice"),
            At(98, "'guidance_scale'", "'min' twice"),
            At(80, "'scheduler'", "empty"),
            At(24, "'seed'", "cut"),
            At(27, "'base64'", "cut"),
            NOT_UNNAMED,
            NO_PRICE,
            NO_LATENCY,
        ),
    ),
]


def _messages(result: ImportResult) -> list[str]:
    return [note.message for note in result.notes]


def _holds(fact: NoteFact, result: ImportResult) -> bool:
    if isinstance(fact, At):
        return any(
            n.line == fact.line and all(part in n.message for part in fact.parts)
            for n in result.notes
        )
    return fact.holds(_messages(result))


def _check(param: Param, facts: dict[str, Fact]) -> None:
    """Compare the named fields; bool/int/float are told apart (True == 1 would hide a bug)."""
    for field, want in facts.items():
        got = getattr(param, field)
        if isinstance(want, Starts | Ends):
            assert want.matches(got), f"{field}: {got!r} is not {want!r}"
            continue
        assert got == want, f"{field}: {got!r} != {want!r}"
        if want is not None and not isinstance(want, tuple):
            assert type(got) is type(want), f"{field}: {got!r} is {type(got).__name__}"
        if isinstance(want, tuple):
            assert [type(v) for v in got] == [type(v) for v in want], f"{field}: {got!r}"


def test_the_pages_and_their_sources_are_all_here() -> None:
    assert sorted(p.name for p in MORE.glob("*.txt")) == sorted(page.file for page in PAGES)
    readme = (MORE / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        assert f"| {page.file} | https://" in readme, page.file


@pytest.mark.parametrize(
    "page", PAGES, ids=lambda page: f"{page.file.removesuffix('.txt')}: {page.layout}"
)
def test_a_page_imports_as_read_by_hand(page: Page) -> None:
    result = import_page(MORE / page.file)
    spec = result.spec
    assert (spec.id, spec.source) == (page.file.removesuffix(".txt"), page.file)
    header = ("title", "endpoint", "protocol", "auth", "response", "price_usd", "latency_s")
    assert {name: getattr(spec, name) for name in header} == {
        name: getattr(page, name) for name in header
    }
    assert list(spec.params) == list(page.params)
    for name, facts in page.params.items():
        try:
            _check(spec.params[name], facts)
        except AssertionError as problem:
            raise AssertionError(f"{name}: {problem}") from None
    for fact in page.notes:
        assert _holds(fact, result), f"{fact}: {[(n.line, n.message) for n in result.notes]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.file.removesuffix(".txt"))
def test_render_specs_import_reads_every_page_and_names_the_line_of_each_doubt(page: Page) -> None:
    done = CliRunner().invoke(cli, ["specs", "import", str(MORE / page.file)], prog_name="render")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("# Generated by `render specs import`")
    warnings = done.stderr.splitlines()
    assert all(re.match(rf"warning: {re.escape(page.file)}:(\d+:)? \S", w) for w in warnings)
    # A warning about a parameter names the line it is about.
    for line in warnings:
        if re.search(r"'\w+'", line) and "the page shows no" not in line:
            assert re.match(rf"warning: {re.escape(page.file)}:\d+: ", line), line


# --------------------------------------------------------------------------------------------------
# The patterns behind the wrong specs, each on a variant of one of the pages above.


def _text(name: str) -> str:
    return (MORE / name).read_text(encoding="utf-8")


def _replaced(name: str, old: str, new: str) -> str:
    text = _text(name)
    assert old in text, old
    return text.replace(old, new)


MUSICGEN_COMPACT = """\
Meta MusicGen Medium
~21.97s
~$0.037
API Endpoint
POSThttps://api.segmind.com/v1/meta-musicgen-medium
Parameters
prompt
requiredstring
prompt to generate music
Default:
"lo-fi music with a soothing melody"
duration
optionalnumber
duration of the audio
Default:
10
Range: 1 - 30seed
optionalinteger
Seed for audio generation.
Default:
42
Range: -1 - 9999
Response Type
Returns: Audio
"""


def test_a_label_on_its_own_line_and_a_name_run_into_a_range() -> None:
    """`Default:` then its value on the next line, and `Range: 1 - 30seed`: the duration keeps its
    own default (10, not the seed's 42) and the seed is not lost."""
    result = import_text(MUSICGEN_COMPACT, name="m.txt", spec_id="m")
    p = result.spec.params
    assert list(p) == ["prompt", "duration", "seed"]
    _check(p["prompt"], {"required": True, "default": "lo-fi music with a soothing melody"})
    _check(p["duration"], {"type": "number", "default": 10, "minimum": 1, "maximum": 30})
    _check(p["seed"], {"type": "integer", "required": False, "default": 42, "maximum": 9999})
    assert result.spec.response == "audio"


def test_a_second_default_does_not_replace_the_first() -> None:
    text = MUSICGEN_COMPACT.replace("Range: 1 - 30seed\noptionalinteger\n", "Range: 1 - 30\n")
    result = import_text(text, name="m.txt", spec_id="m")
    assert result.spec.params["duration"].default == 10
    assert any("'duration'" in m and "second default" in m for m in _messages(result))


def test_a_quoted_number_default_on_an_integer_is_read_as_the_number_with_a_note() -> None:
    text = _replaced("p-video.txt", "Default: 12345Range", 'Default: "1323456"Range')
    result = import_text(text, name="p.txt", spec_id="p")
    _check(result.spec.params["seed"], {"default": 1323456})
    assert any(
        n.line == 62 and "'seed'" in n.message and "1323456" in n.message for n in result.notes
    )


def test_a_default_of_the_wrong_type_is_dropped_with_a_note() -> None:
    text = _replaced("p-video.txt", "Default: 5Range: 3 - 15", 'Default: "five"Range: 3 - 15')
    result = import_text(text, name="p.txt", spec_id="p")
    _check(result.spec.params["duration"], {"default": None, "minimum": 3})
    assert any("'duration'" in m and "five" in m for m in _messages(result))


def test_a_default_outside_its_own_list_is_warned_about() -> None:
    text = _replaced("p-video.txt", 'Default: "16:9"', 'Default: "21:9"')
    result = import_text(text, name="p.txt", spec_id="p")
    assert result.spec.params["aspect_ratio"].default == "21:9"
    assert any(
        n.line == 48
        and "'aspect_ratio'" in n.message
        and "not one of its allowed values" in n.message
        for n in result.notes
    )


def test_a_page_cut_inside_a_default_and_its_range_keeps_no_junk() -> None:
    """'Default: 0Range: 0' at the very end: not the default '0Range: 0'."""
    text = _text("flux-dev.txt") + "\nDefault: 1Range: 1"
    result = import_text(text, name="f.txt", spec_id="f")
    samples = result.spec.params["samples"]
    _check(samples, {"default": 1, "minimum": None, "maximum": None})
    text = _text("flux-dev.txt") + "\nDefault: 1Range: 1 - 1"
    samples = import_text(text, name="f.txt", spec_id="f").spec.params["samples"]
    # The maximum may be cut ("1" of "10"): the minimum is whole, the maximum is not kept.
    _check(samples, {"default": 1, "minimum": 1, "maximum": None})
    text = _text("flux-dev.txt") + "\nDefault: 1"
    result = import_text(text, name="f.txt", spec_id="f")
    # "1" may be the start of "10": a default on the cut line is not kept unless it is whole.
    assert result.spec.params["samples"].default is None
    assert any("'samples'" in m and "cut" in m for m in _messages(result))


@pytest.mark.parametrize(
    ("unit", "price"),
    [("per generation", 0.05), ("per image", 0.05), ("/ generation", 0.05), ("per second", None)],
)
def test_every_price_form(unit: str, price: float | None) -> None:
    text = _replaced("flux-kontext-pro.txt", "$0.05 per generation", f"$0.05 {unit}")
    result = import_text(text, name="k.txt", spec_id="k")
    assert result.spec.price_usd == price
    if price is None:
        assert any(n.line == 6 and "$0.05 per second" in n.message for n in result.notes)
    else:
        assert not any("price" in m for m in _messages(result))


def test_a_v2_page_cut_before_its_api_endpoint_reads_the_sdk_sample() -> None:
    """Cut at line 36 of esrgan.txt: only `POST /v2/esrgan · submit + poll` and the SDK sample name
    the model; the parameters come from the sample's payload, with a warning."""
    text = "\n".join(_text("esrgan.txt").split("\n")[:36])
    result = import_text(text, name="e.txt", spec_id="e")
    spec = result.spec
    assert (spec.title, spec.endpoint, spec.protocol) == ("ESRGAN", "/v2/esrgan", "async")
    assert list(spec.params) == ["image", "scale", "output_format", "quality"]
    _check(spec.params["image"], {"type": "image", "required": False, "default": None})
    _check(spec.params["quality"], {"type": "integer", "default": None})
    assert any("parameters read from the code sample" in m for m in _messages(result))


def test_a_v2_page_with_only_its_one_line_sdk_call() -> None:
    """Cut after `segmind.run("esrgan", …)`; without the v2 line too, since the SDK's run() goes
    through /v2 (its sample says so: "Async (v2): submit to the queue")."""
    text = "\n".join(_text("esrgan.txt").split("\n")[:19])
    spec = import_text(text, name="e.txt", spec_id="e").spec
    assert (spec.endpoint, spec.protocol) == ("/v2/esrgan", "async")
    text = text.replace("POST /v2/esrgan · submit + poll\n", "")
    spec = import_text(text, name="e.txt", spec_id="e").spec
    assert (spec.endpoint, spec.protocol) == ("/v2/esrgan", "async")


def test_a_whole_page_on_one_line_reads_its_endpoint_from_post_without_a_space() -> None:
    text = " ".join(_text("sd1.5-img2img.txt").split())
    result = import_text(text, name="i.txt", spec_id="i")
    assert (result.spec.endpoint, result.spec.protocol) == ("/v1/sd1.5-img2img", "sync")
    text = text.replace("POST/v1/sd1.5-img2img ", "")
    assert import_text(text, name="i.txt", spec_id="i").spec.endpoint == "/v1/sd1.5-img2img"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.file.removesuffix(".txt"))
def test_a_page_collapsed_onto_one_line_gives_the_same_header(page: Page) -> None:
    """Everything on one line, as some readers store a page: the header fields are the same."""
    text = " ".join(_text(page.file).split())
    spec = import_text(text, name=page.file, spec_id=page.file.removesuffix(".txt")).spec
    for name in ("endpoint", "protocol", "auth", "response", "price_usd", "latency_s"):
        assert getattr(spec, name) == getattr(page, name), name


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.file.removesuffix(".txt"))
def test_a_page_collapsed_onto_one_line_gives_the_same_parameters(page: Page) -> None:
    text = " ".join(_text(page.file).split())
    spec = import_text(text, name=page.file, spec_id=page.file.removesuffix(".txt")).spec
    whole = import_page(MORE / page.file).spec
    assert list(spec.params) == list(whole.params)
    for name, param in whole.params.items():
        got = spec.params[name]
        fields = ("type", "required", "default", "minimum", "maximum", "enum", "encoding")
        assert {f: getattr(got, f) for f in fields} == {f: getattr(param, f) for f in fields}, name


def test_a_title_is_never_code() -> None:
    text = _text("flux-dev.txt").split("\n", 6)[6]  # from " 1import requests"
    result = import_text(text, name="flux-dev.txt", spec_id="flux-dev")
    assert result.spec.title == "Flux Dev"
    assert any(n.line == 1 and "title" in n.message for n in result.notes)


def test_a_page_cut_before_any_endpoint_is_refused_clearly() -> None:
    text = "\n".join(_text("flux-dev.txt").split("\n")[:6])
    with pytest.raises(SpecImportError) as caught:
        import_text(text, name="flux-dev.txt", spec_id="flux-dev")
    assert str(caught.value).startswith("flux-dev.txt:")
    assert "found no API endpoint" in str(caught.value)


@pytest.mark.parametrize(
    ("content_type", "response"),
    [
        ("image/jpeg", "image"),
        ("video/mp4", "video"),
        ("audio/mpeg", "audio"),
        ("application/json", "json"),
    ],
)
def test_an_older_page_says_what_it_returns_by_its_content_type(
    content_type: str, response: str
) -> None:
    text = _replaced("sd1.5-img2img.txt", "RESPONSE\nimage/jpeg\n", f"RESPONSE\n{content_type}\n")
    result = import_text(text, name="i.txt", spec_id="i")
    assert result.spec.response == response
    assert not any("response" in m for m in _messages(result))


def test_values_printed_without_labels_and_no_repeat_are_all_allowed_values() -> None:
    """Compact rendering: a first value that does not come again may be a default or the first
    allowed value; the importer keeps the list and no default, and says so."""
    text = _replaced(
        "flux-kontext-pro-compact.txt",
        '"match_input_image"\n"match_input_image"\n',
        '"match_input_image"\n',
    )
    result = import_text(text, name="k.txt", spec_id="k")
    aspect = result.spec.params["aspect_ratio"]
    assert (aspect.default, len(aspect.enum or ()), aspect.enum_complete) == (None, 10, False)
    assert any(
        n.line == 62 and "'aspect_ratio'" in n.message and "no default" in n.message
        for n in result.notes
    )
