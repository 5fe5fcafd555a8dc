"""Bad recipes and bad flags through `render RECIPE --dry-run`: the exact message a user reads, and the exit code.

Every mistake must print `error: FILE:LINE: field: ...` on stderr (a recipe that cannot plan) or a line
`  FILE:LINE: params.x: ... [N jobs: ...]` under "N errors:" in the plan on stdout (a job that cannot
run), exit 2, and never show a traceback. An over-budget plan exits 3.

Where the engine's message is wrong or unhelpful, the test asserts the message it should print.
"""

from __future__ import annotations

import io
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from engine.cli import cli
from tests.helpers import write_tree


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()
SCENECRAFT_PARAMS = (
    "image, prompt, aspect_ratio, dropshadow, guidance_scale, image_format, image_quality, "
    "megapixel, negative_prompt, scale, seed, steps, upscale, x_value, y_value"
)
RECIPE_FIELDS = "name, model, budget_usd, budget_pool, vars, matrix, include, exclude, params, output, price_usd, max_jobs, image_root"
MODELS = "ai-product-photography, consistent-character, furniture-staging, scenecraft, sd1.5-scifi"
FOUR_JOBS = "[4 jobs: sofa/cozy, sofa/loft, lamp/cozy, …]"

# A valid recipe of four jobs; the numbers are the lines the messages name.
BASE = textwrap.dedent(
    """\
    model: scenecraft
    matrix:
      product:
        - {id: sofa, image: images/sofa.png, noun: orange sofa}
        - {id: lamp, image: images/lamp.png, noun: brass lamp}
      style: [cozy, loft]
    params:
      image: "{{ product.image }}"
      prompt: "A {{ product.noun }} in a {{ style }} room"
    """
)
#  1 model   2 matrix   3 product   4 sofa   5 lamp   6 style   7 params   8 image   9 prompt
#  10: the first line a case appends


def write_recipe(tmp_path: Path, text: str, *, images: tuple[str, ...] = ("sofa", "lamp")) -> Path:
    files: dict[str, str | bytes] = {"r.yaml": text}
    files.update({f"images/{name}.png": PNG for name in images})
    write_tree(tmp_path, files)
    return tmp_path / "r.yaml"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="render")


def dry_run(path: Path, *flags: str) -> Result:
    return invoke(str(path), "--dry-run", *flags)


def error_section(stdout: str) -> list[str]:
    """The lines of the plan from its "N errors:" heading on."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(("error:", "errors:")))
    return lines[start:]


def what_a_user_sees(result: Result) -> str:
    """stdout and stderr, and the traceback the console script would print for an uncaught exception."""
    shown = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        shown += "".join(traceback.format_exception(result.exception))
    return shown


# --- recipes that cannot plan: one line on stderr, exit 2 ----------------------------------------


@dataclass(frozen=True)
class Refused:
    """A recipe refused before planning: ``message(path)`` is what follows "error: " on stderr."""

    recipe: str
    message: Callable[[str], str]
    flags: tuple[str, ...] = ()


REFUSED = [
    # --- YAML --------------------------------------------------------------------------------
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              style: [cozy]
             params:
              prompt: a cozy room
            """,
            # PyYAML's "did not find expected key" alone is jargon; its context says what it was reading.
            lambda p: (
                f"{p}:4: invalid YAML: did not find expected key "
                "(while parsing a block mapping started on line 1)"
            ),
        ),
        id="yaml-key-indented-one-space",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              style: [cozy]
            params:
              image: images/sofa.png
                prompt: a cozy room
            """,
            lambda p: f"{p}:6: invalid YAML: mapping values are not allowed in this context",
        ),
        id="yaml-key-indented-under-a-value",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              style: [cozy, loft
            params:
              prompt: a cozy room
            """,
            # Line 4 is where the parser gave up; the '[' left open is on line 3.
            lambda p: (
                f"{p}:4: invalid YAML: did not find expected ',' or ']' "
                "(while parsing a flow sequence started on line 3)"
            ),
        ),
        id="yaml-unclosed-bracket",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
              steps: 30
              prompt: a loft
            """,
            lambda p: f"{p}:7: duplicate key 'prompt' (first on line 5)",
        ),
        id="yaml-duplicate-key",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
            vars:
              words: &words [calm, *words]
            """,
            # An alias inside the value it names: refused at its line, never recursed into.
            lambda p: f"{p}:7: invalid YAML: an alias refers to a value that contains it",
        ),
        id="yaml-recursive-alias",
    ),
    # --- the document -----------------------------------------------------------------------
    pytest.param(
        Refused(
            """
            - model: scenecraft
              params: {prompt: a cozy room}
            """,
            lambda p: (
                f"{p}:1: a recipe is a mapping of fields (model, matrix, params, ...), not a list"
            ),
        ),
        id="recipe-is-a-list",
    ),
    pytest.param(
        Refused(
            "",
            lambda p: (
                f"{p}:1: a recipe is a mapping of fields (model, matrix, params, ...), not an empty file"
            ),
        ),
        id="recipe-is-an-empty-file",
    ),
    pytest.param(
        Refused(
            "scenecraft\n",
            # The type in words, not Python's name for it ("str").
            lambda p: (
                f"{p}:1: a recipe is a mapping of fields (model, matrix, params, ...), not a string"
            ),
        ),
        id="recipe-is-a-scalar",
    ),
    # --- top-level fields -------------------------------------------------------------------
    pytest.param(
        Refused(
            """
            model: scenecraft
            budget: 5
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
            """,
            lambda p: (
                f"{p}:2: unknown field 'budget'; did you mean 'budget_usd'? (fields: {RECIPE_FIELDS})"
            ),
        ),
        id="unknown-field-did-you-mean",
    ),
    pytest.param(
        Refused(
            """
            modle: scenecraft
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
            """,
            # The typo itself, not "missing required field 'model'", which would hide it.
            lambda p: (
                f"{p}:1: unknown field 'modle'; did you mean 'model'? (fields: {RECIPE_FIELDS})"
            ),
        ),
        id="unknown-field-misspelling-a-required-one",
    ),
    pytest.param(
        Refused(
            """
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:1: missing required field 'model'",
        ),
        id="missing-model",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              style: [cozy]
            """,
            lambda p: f"{p}:1: missing required field 'params'",
        ),
        id="missing-params",
    ),
    pytest.param(
        Refused(
            """
            model: scenecrafts
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
            """,
            lambda p: (
                f"{p}:1: model: unknown model 'scenecrafts'; did you mean 'scenecraft'? (known: {MODELS})"
            ),
        ),
        id="unknown-model",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            budget_usd: ten dollars
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:2: budget_usd: expected a number, got 'ten dollars' (a string)",
        ),
        id="budget-is-a-string",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            budget_usd: -5
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:2: budget_usd: expected a number at least 0, got -5",
        ),
        id="budget-is-negative",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            budget_usd: true
            matrix:
              style: [cozy]
            params:
              image: images/sofa.png
              prompt: a cozy room
            """,
            # YAML's true is no number: refused, never read as a $1.00 budget.
            lambda p: f"{p}:2: budget_usd: expected a number, got true (a boolean)",
        ),
        id="budget-is-a-boolean",
    ),
    # --- the matrix -------------------------------------------------------------------------
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              - style
              - product
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:2: matrix: expected a mapping, got a list",
        ),
        id="matrix-is-not-a-mapping",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              style:
                cozy: warm
                loft: bright
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:3: matrix.style: an axis must be a list of values, got a mapping",
        ),
        id="axis-is-a-mapping",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              style: cozy
            params:
              prompt: a cozy room
            """,
            lambda p: (
                f"{p}:3: matrix.style: an axis must be a list of values, got 'cozy' (a string)"
            ),
        ),
        id="axis-is-a-scalar",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              product: [sofa]
              style: []
            params:
              prompt: a cozy room
            """,
            # The axis's own line, not `matrix:`'s (line 2).
            lambda p: f"{p}:4: matrix: axis 'style' has no values",
        ),
        id="axis-is-empty",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix: {}
            params:
              prompt: a cozy room
            """,
            lambda p: (
                f"{p}:2: matrix: the matrix has no axes; give at least one axis with at least one value"
            ),
        ),
        id="matrix-is-empty",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              product: [sofa]
              aspect-ratio: ["1:1 (Perfect Square)"]
            params:
              prompt: a cozy room
            """,
            # The axis's own line, not `matrix:`'s (line 2).
            lambda p: (
                f"{p}:4: matrix: axis name 'aspect-ratio' must be a template name (letters, digits, _)"
            ),
        ),
        id="axis-name-not-a-template-name",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              product: [sofa]
              2024: [spring, autumn]
            params:
              prompt: a cozy room
            """,
            # YAML reads 2024 as a number; it is still an axis name, named on its own line.
            lambda p: (
                f"{p}:4: matrix: axis name '2024' must be a template name (letters, digits, _)"
            ),
        ),
        id="axis-name-is-a-number",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              product:
                - {id: sofa, noun: sofa}
                - {name: lamp, noun: lamp}
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:5: matrix.product[1]: a mapping value needs an `id` (it names the job)",
        ),
        id="axis-mapping-without-id",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              product:
                - {id: sofa, noun: sofa}
                - {id: lamp, noun: lamp}
                - {id: sofa, noun: big sofa}
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:6: matrix.product[2]: 'sofa' repeats the value on line 4",
        ),
        id="axis-duplicate-id",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            vars:
              style: warm
            matrix:
              style: [cozy]
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:5: axis 'style' has the name of a var; rename one",
        ),
        id="axis-named-like-a-var",
    ),
    pytest.param(
        Refused(
            """
            model: scenecraft
            matrix:
              job_id: [a, b]
            params:
              prompt: a cozy room
            """,
            lambda p: f"{p}:3: 'job_id' is a name templates reserve; choose another",
        ),
        id="axis-reserved-name",
    ),
    # --- include and exclude ----------------------------------------------------------------
    pytest.param(
        Refused(
            BASE + "include:\n  - {flavour: vanilla}\n",
            lambda p: f"{p}:11: include[0] names no axis (axes: product, style)",
        ),
        id="include-names-no-axis",
    ),
    pytest.param(
        Refused(
            BASE + "exclude:\n  - {product: lamp, stlye: loft}\n",
            lambda p: (
                f"{p}:11: exclude[0].stlye: not an axis; did you mean 'style'? (axes: product, style)"
            ),
        ),
        id="exclude-names-an-unknown-axis",
    ),
    pytest.param(
        Refused(
            BASE + "exclude:\n  - {product: lmap, style: loft}\n",
            lambda p: (
                f"{p}:11: exclude[0].product: 'lmap' names no value of axis 'product'; "
                "did you mean 'lamp'? (ids: sofa, lamp)"
            ),
        ),
        id="exclude-names-an-unknown-id",
    ),
    pytest.param(
        Refused(
            BASE
            + "include:\n  - {product: sofaa, style: cozy, aspect_ratio: '9:16 (Slim Vertical)'}\n",
            lambda p: (
                f"{p}:11: include[0].product: 'sofaa' names no value of axis 'product'; "
                "did you mean 'sofa'? (ids: sofa, lamp)"
            ),
        ),
        id="include-names-an-unknown-id",
    ),
    pytest.param(
        Refused(
            BASE + "exclude:\n  - {style: lfot}\n",
            # A value the axis does not have: refused, or the exclude would silently remove nothing.
            lambda p: (
                f"{p}:11: exclude[0].style: 'lfot' names no value of axis 'style'; "
                "did you mean 'loft'? (values: cozy, loft)"
            ),
        ),
        id="exclude-names-an-unknown-scalar-value",
    ),
    pytest.param(
        Refused(
            BASE + "exclude:\n  - lamp\n",
            lambda p: f"{p}:11: exclude[0]: expected a mapping, got 'lamp' (a string)",
        ),
        id="exclude-entry-not-a-mapping",
    ),
    # --- templates --------------------------------------------------------------------------
    pytest.param(
        Refused(
            BASE.replace("{{ product.noun }} in", "{{ product.noun } in"),
            lambda p: f"{p}:9: params.prompt: template syntax error: unexpected '}}'",
        ),
        id="template-syntax-error",
    ),
    # --- size -------------------------------------------------------------------------------
    pytest.param(
        Refused(
            BASE.replace("[cozy, loft]", "[cozy, loft, terrace]") + "max_jobs: 5\n",
            lambda p: (
                f"{p}:2: matrix: the recipe gives 6 jobs, more than max_jobs (5); "
                "raise `max_jobs` to allow it, or narrow the matrix"
            ),
        ),
        id="matrix-over-max-jobs",
    ),
    pytest.param(
        Refused(
            "model: scenecraft\nmatrix:\n"
            + "".join(f"  a{n}: [{', '.join(f'v{i}' for i in range(200))}]\n" for n in range(4))
            + "params:\n  prompt: a cozy room\n",
            lambda p: (
                f"{p}:2: matrix: the recipe gives up to 1,600,000,000 jobs, more than max_jobs "
                "(10,000); set `max_jobs` in the recipe to allow it, or narrow the matrix"
            ),
        ),
        id="matrix-huge-without-max-jobs",
    ),
    # --- --only -----------------------------------------------------------------------------
    pytest.param(
        Refused(
            BASE,
            lambda _: (
                "--only stlye=cozy: no axis 'stlye'; did you mean 'style'? (axes: product, style)"
            ),
            ("--only", "stlye=cozy"),
        ),
        id="only-unknown-axis",
    ),
    pytest.param(
        Refused(
            BASE,
            lambda _: "--only style=lfot: no such value; did you mean 'loft'? (values: cozy, loft)",
            ("--only", "style=lfot"),
        ),
        id="only-unknown-value",
    ),
    pytest.param(
        Refused(
            BASE,
            lambda _: (
                "--only product=sofas: no such value; did you mean 'sofa'? (values: sofa, lamp)"
            ),
            ("--only", "product=sofas"),
        ),
        id="only-unknown-id",
    ),
    pytest.param(
        Refused(
            BASE,
            lambda _: "--only style: expected AXIS=VALUE, such as style=cozy",
            ("--only", "style"),
        ),
        id="only-without-equals",
    ),
]


@pytest.mark.parametrize("case", REFUSED)
def test_a_recipe_that_cannot_plan_names_file_line_and_field(tmp_path: Path, case: Refused) -> None:
    path = write_recipe(tmp_path, case.recipe)
    result = dry_run(path, *case.flags)
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"error: {case.message(str(path))}\n",
    )


def test_a_missing_recipe_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    result = dry_run(path)
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"error: {path}: no such file\n",
    )


def test_json_without_dry_run_is_a_usage_error(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, BASE)
    result = invoke(str(path), "--json")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Usage: render run [OPTIONS] RECIPE...\n"
        "Try 'render run --help' for help.\n"
        "\n"
        "Error: --json goes with --dry-run\n"
    )


# --- jobs that cannot run: the plan prints, with its errors, and exits 2 -------------------------


@dataclass(frozen=True)
class Failing:
    """A recipe that plans but has errors: ``errors(path)`` is the plan's error section, line by line."""

    recipe: str
    errors: Callable[[str], list[str]]
    images: tuple[str, ...] = ("sofa", "lamp")


FAILING = [
    pytest.param(
        Failing(
            BASE + "  stpes: 30\n",
            lambda p: [
                "1 error:",
                f"  {p}:10: params.stpes: unknown parameter; did you mean 'steps'? "
                f"(parameters: {SCENECRAFT_PARAMS})",
            ],
        ),
        id="unknown-param",
    ),
    pytest.param(
        Failing(
            BASE + "  steps: thirty\n",
            lambda p: [
                "4 errors:",
                f"  {p}:10: params.steps: expected an integer, got 'thirty' "
                f"(allowed: an integer from 1 to 50) {FOUR_JOBS}",
            ],
        ),
        id="param-wrong-type",
    ),
    pytest.param(
        Failing(
            BASE + "  steps: 99\n",
            lambda p: [
                "4 errors:",
                f"  {p}:10: params.steps: 99 is above the maximum 50 "
                f"(allowed: an integer from 1 to 50) {FOUR_JOBS}",
            ],
        ),
        id="param-out-of-range",
    ),
    pytest.param(
        Failing(
            BASE + "  aspect_ratio: '16:9'\n",
            lambda p: [
                "4 errors:",
                f"  {p}:10: params.aspect_ratio: '16:9' is not an allowed value; did you mean "
                "'16:9 (Panorama)'? (allowed: '1:1 (Perfect Square)', '2:3 (Classic Portrait)', "
                "'3:4 (Golden Ratio)', '3:5 (Elegant Vertical)', '4:5 (Artistic Frame)', "
                "'5:7 (Balanced Portrait)', '5:8 (Tall Portrait)', '7:9 (Modern Portrait)', "
                "'9:16 (Slim Vertical)', '9:19 (Tall Slim)', '9:21 (Ultra Tall)', '9:32 (Skyline)', "
                f"… (23 in all)) {FOUR_JOBS}",
            ],
        ),
        id="param-off-enum-aspect-ratio",
    ),
    pytest.param(
        Failing(
            BASE + "  image_format: PNG\n",
            lambda p: [
                "4 errors:",
                f"  {p}:10: params.image_format: 'PNG' is not an allowed value; did you mean 'png'? "
                f"(allowed: 'png', 'jpeg', 'webp') {FOUR_JOBS}",
            ],
        ),
        id="param-off-enum-image-format-case",
    ),
    pytest.param(
        Failing(
            BASE.replace("[cozy, loft]\n", "[cozy, loft]\nvars:\n  season: spring\n").replace(
                "{{ style }} room", "{{ style }} room in {{ sesaon }}"
            ),
            lambda p: [
                "4 errors:",
                f"  {p}:11: params.prompt: 'sesaon' is undefined; did you mean 'season'? "
                f"(defined: job_id, product, season, style) {FOUR_JOBS}",
            ],
        ),
        id="template-undefined-name",
    ),
    pytest.param(
        Failing(
            BASE.replace("{{ product.noun }}", "{{ product.nown }}"),
            # Names the variable that lacks the key ('product'), not just "there".
            lambda p: [
                "4 errors:",
                f"  {p}:9: params.prompt: 'product' has no key 'nown'; did you mean 'noun'? "
                f"(keys: id, image, noun) {FOUR_JOBS}",
            ],
        ),
        id="template-undefined-key-of-an-axis-mapping",
    ),
    pytest.param(
        Failing(
            BASE.replace("{{ style }} room", "{{ style.scene }}"),
            # `style` is a plain string with no keys at all: the message says so.
            lambda p: [
                "4 errors:",
                f"  {p}:9: params.prompt: 'style' is 'cozy', not a mapping; it has no key 'scene' "
                "[2 jobs: sofa/cozy, lamp/cozy]",
                f"  {p}:9: params.prompt: 'style' is 'loft', not a mapping; it has no key 'scene' "
                "[2 jobs: sofa/loft, lamp/loft]",
            ],
        ),
        id="template-key-of-a-scalar-axis",
    ),
    pytest.param(
        Failing(
            BASE.replace('"A {{ product.noun }} in a {{ style }} room"', "\"{{ ''.__class__ }}\""),
            # A template the sandbox refuses is not rendered for the other jobs (a limit can take
            # a second to reach: not once per job of a large plan).
            lambda p: [
                "1 error:",
                f"  {p}:9: params.prompt: not allowed in a template: access to attribute "
                "'__class__' of 'str' object is unsafe. (in job sofa/cozy; the template is not "
                "rendered for the other jobs)",
            ],
        ),
        id="template-sandbox-violation",
    ),
    pytest.param(
        Failing(
            BASE + 'output: "../../etc/{{ style }}"\n',
            # Output errors name the `output:` line, not `params:` (line 7).
            lambda p: [
                "4 errors:",
                f"  {p}:10: output: the template gives '../../etc/cozy', which is not a path inside "
                "the output folder [2 jobs: sofa/cozy, lamp/cozy]",
                f"  {p}:10: output: the template gives '../../etc/loft', which is not a path inside "
                "the output folder [2 jobs: sofa/loft, lamp/loft]",
            ],
        ),
        id="output-escapes-with-dot-dot",
    ),
    pytest.param(
        Failing(
            BASE + 'output: "/etc/{{ job_id }}"\n',
            lambda p: [
                "4 errors:",
                *(
                    f"  {p}:10: output: the template gives '/etc/{job}', which is not a path inside "
                    f"the output folder [1 job: {job}]"
                    for job in ("sofa/cozy", "sofa/loft", "lamp/cozy", "lamp/loft")
                ),
            ],
        ),
        id="output-is-absolute",
    ),
    pytest.param(
        Failing(
            BASE + 'output: "{{ product.id }}"\n',
            lambda p: [
                "2 errors:",
                *(
                    f"  {p}:10: output: jobs {a} and {b} both write '{file}'; make the output "
                    "template tell them apart (for example with {{ job_id }}) "
                    f"[1 job: {b}]"
                    for a, b, file in (
                        ("sofa/cozy", "sofa/loft", "sofa.jpg"),
                        ("lamp/cozy", "lamp/loft", "lamp.jpg"),
                    )
                ),
            ],
        ),
        id="output-two-jobs-same-file",
    ),
    pytest.param(
        Failing(
            BASE,
            lambda p: [
                "2 errors:",
                f"  {p}:8: params.image: no such image file 'images/lamp.png' "
                f"(looked for {Path(p).parent / 'images' / 'lamp.png'}) [2 jobs: lamp/cozy, lamp/loft]",
            ],
            images=("sofa",),
        ),
        id="missing-image-file",
    ),
    pytest.param(
        Failing(
            BASE.replace('  prompt: "A {{ product.noun }} in a {{ style }} room"\n', ""),
            lambda p: [
                "1 error:",
                f"  {p}:7: params.prompt: required parameter missing (allowed: a string)",
            ],
        ),
        id="required-param-missing",
    ),
]


@pytest.mark.parametrize("case", FAILING)
def test_a_job_that_cannot_run_is_listed_under_errors(tmp_path: Path, case: Failing) -> None:
    path = write_recipe(tmp_path, case.recipe, images=case.images)
    result = dry_run(path)
    assert (result.exit_code, result.stderr) == (2, "")
    assert result.stdout.startswith(f"r ({path}) · scenecraft · ")
    assert error_section(result.stdout) == case.errors(str(path))


def test_an_over_budget_plan_exits_3_and_says_so(tmp_path: Path) -> None:
    path = write_recipe(
        tmp_path, BASE.replace("model: scenecraft\n", "model: scenecraft\nbudget_usd: 1\n")
    )
    result = dry_run(path)
    assert (result.exit_code, result.stderr) == (3, "")
    assert "\ncost    $1.356 of a $1.00 budget (OVER BUDGET)\n" in result.stdout


def test_budget_flag_overrides_the_recipe_and_exits_3(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, BASE)
    result = dry_run(path, "--budget", "0.5")
    assert (result.exit_code, result.stderr) == (3, "")
    assert "\ncost    $1.356 of a $0.50 budget (OVER BUDGET)\n" in result.stdout


# --- never a traceback --------------------------------------------------------------------------

NASTY = [
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  5: x\n",
    "model: scenecraft\nmatrix:\n  ~: [cozy]\nparams:\n  prompt: x\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: x\nvars:\n  2020-01-01: x\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: x\nvars: !!python/object:os.system ls\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: x\nvars: &v\n  self: *v\n",
    "model: [scenecraft]\nmatrix:\n  style: [cozy]\nparams:\n  prompt: x\n",
    "model: scenecraft\nmatrix:\n  style: [{id: [a]}]\nparams:\n  prompt: x\n",
    "model: scenecraft\nmatrix:\n  style: [[a, b]]\nparams:\n  prompt: x\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\ninclude:\n  - [a]\nparams:\n  prompt: x\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: '{{ 1/0 }}'\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: '{% for i in range(10**9) %}x{% endfor %}'\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: '{{ style | nofilter }}'\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: x\noutput: 5\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: x\nmax_jobs: 0\n",
    "\tmodel: scenecraft\n",
    "model: scenecraft\nmatrix:\n  style: [cozy]\nparams:\n  prompt: x\n  steps: 1e999\n",
]


def test_no_bad_input_ever_shows_a_traceback(tmp_path: Path) -> None:
    refused = [cast(Refused, param.values[0]) for param in REFUSED]
    failing = [cast(Failing, param.values[0]) for param in FAILING]
    runs = [
        *((case.recipe, case.flags, ("sofa", "lamp")) for case in refused),
        *((case.recipe, (), case.images) for case in failing),
        *((text, (), ("sofa", "lamp")) for text in NASTY),
    ]
    crashed = []
    for index, (text, flags, images) in enumerate(runs):
        path = write_recipe(tmp_path / str(index), text, images=images)
        result = dry_run(path, *flags)
        shown = what_a_user_sees(result)
        if "Traceback" in shown or result.exit_code == 1:
            crashed.append(f"--- {path} (exit {result.exit_code})\n{text}\n{shown}")
    assert not crashed, "\n".join(crashed)
