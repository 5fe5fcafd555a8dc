"""The importer, fed arbitrary text, returns a spec or raises SpecImportError, never anything else."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.docimport
from engine.docimport import ImportResult, import_text
from engine.errors import SpecImportError
from tests.helpers import seed_page

# Lines as the seed pages print them, glued and cut as they are there.
FRAGMENTS = [
    "",
    "Parameters",
    "Attributes",
    "API Endpoint",
    "promptrequired",
    "imageoptional",
    "Character",
    "optionalstring (uri)",
    "requiredinteger",
    "string",
    "string (uri)",
    "integer",
    "number",
    "boolean",
    "array",
    "Default:",
    "Default: 2Range: 1 - 20",
    "Default: 7.5Range: 0.1 - 25",
    'Default: "png"',
    "Default: true",
    "Allowed values:",
    "Allowed values (3 total):",
    '"a""b"+1 more',
    '"png""jpeg""webp"',
    "5127681024",
    "0.10.5",
    "1.01",
    "min : 1,",
    "max : 100",
    "POST",
    "POSThttps://api.segmind.com/v1/x",
    "POSThttps://",
    "https://api.segmind.com/v1/y",
    "POST /v2/x · submit + poll",
    "Asynchronous requests (v2)",
    "~$0.122",
    "~34.0s",
    "Returns: image",
    "Returns: Polling-based asynchronous response",
    "Response Type",
    'url = "https://api.segmind.com/v1/x"',
    "headers = {'x-api-key': api_key}",
    "headers={'Authorization': f'Bearer {api_key}'}",
    "data = {",
    "payload = {",
    "result = segmind.run(",
    '    "sd1.5-scifi",',
    '"k": 1,',
    '"k": "x",',
    '"k": [1, 2],',
    '"k": {"a": 1},',
    '"image": image_url_to_base64("https://x/y.png"),',
    "k=2,",
    "}",
    ")",
]

fragments = st.sampled_from(FRAGMENTS)
line = st.one_of(
    fragments,
    st.text(max_size=20),
    st.from_regex(r"-?[0-9.]{1,6}", fullmatch=True),
    st.tuples(fragments, fragments).map("".join),
    st.tuples(fragments, st.text(max_size=10)).map("".join),
    st.tuples(st.integers(1, 99), fragments).map(lambda numbered: f"{numbered[0]:>2}{numbered[1]}"),
)
# A parameter as the pages print it: name and flag, type, then lines of its body.
block = st.tuples(
    st.sampled_from(["promptrequired", "seedoptional", "Character"]),
    st.sampled_from(["string", "integer", "number", "string (uri)", "optionalstring (uri)"]),
    st.lists(line, max_size=6),
).map(lambda b: [b[0], b[1], *b[2]])
# Most pages need an endpoint (and a "Parameters" line) before their parameters are read at all.
heading = st.sampled_from(
    [
        [],
        ["Title", "", "POSThttps://api.segmind.com/v1/x", ""],
        ["Title", "POSThttps://api.segmind.com/v1/x", "Parameters", ""],
        ["T", "API Endpoint", "POST /v2/t", "Parameters"],
    ]
)
pages = st.tuples(heading, st.lists(line.map(lambda text: [text]) | block, max_size=12)).map(
    lambda page: "\n".join(page[0] + [text for lines in page[1] for text in lines])
)


def imports_or_refuses(text: str) -> None:
    try:
        result = import_text(text, name="page.txt", spec_id="page")
    except SpecImportError:
        return
    assert isinstance(result, ImportResult)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_arbitrary_text_imports_or_is_refused(text: str) -> None:
    imports_or_refuses(text)


@settings(max_examples=300, deadline=None)
@given(text=pages)
def test_pages_made_of_real_fragments_import_or_are_refused(text: str) -> None:
    imports_or_refuses(text)


# --- inputs that escaped as other exceptions (engine bugs found by the fuzzing), smallest found ---

PAGE = "T\n\nPOSThttps://api.segmind.com/v1/x\n\nParameters\n\nkrequired\ninteger\n\n"
SAMPLE = "T\n\nPOSThttps://api.segmind.com/v1/x\n\ndata = {\n"


@pytest.mark.parametrize(
    "text",
    [
        # urlparse raised ValueError("Invalid IPv6 URL") on the endpoint.
        pytest.param("POSThttps://[\n", id="unbalanced-bracket-in-endpoint-url"),
        # codesample._value built a dict whose key is a list: TypeError (unhashable type).
        pytest.param(SAMPLE + '"k": {[]: 0},\n}\n', id="list-as-dict-key-in-code-sample"),
        # split_run_together turned the 310-digit default into a float: OverflowError.
        pytest.param(
            PAGE + "Default: 1" + "0" * 309 + "\nAllowed values:\n5127681024\n",
            id="default-beyond-float-range-with-run-together-values",
        ),
        # number_value called int() on it: ValueError (Python's 4300-digit conversion limit).
        pytest.param(PAGE + "Default: " + "1" * 4301 + "\n", id="default-of-4301-digits"),
        # values._all_readings recursed once per number: RecursionError.
        pytest.param(
            PAGE + "Allowed values:\n" + "5\n" * 1000, id="a-thousand-allowed-value-lines"
        ),
        # codesample._value recursed once per minus sign: RecursionError.
        pytest.param(SAMPLE + '"k": ' + "-" * 2000 + "1,\n}\n", id="deeply-negated-sample-value"),
    ],
)
def test_known_crashes_are_refused_as_import_errors(text: str) -> None:
    imports_or_refuses(text)


# --- inputs that made the importer do pathological work, measured in work rather than time ---

IMPORTER = str(Path(engine.docimport.__file__).parent) + os.sep
# Lines of engine/docimport/ one import may execute. Real pages take about 2 a character (8 kB:
# under 13,000 lines); the search for readings of run-together numbers, capped at 100,000 steps,
# takes about 3 million on the worst input below; before that cap, the same input took over 45
# million (~5 s). Counted, not timed: the same on a loaded machine as on an idle one.
LINE_BUDGET = 10_000_000


class _OverBudget(BaseException):
    """Raised from the tracer: a BaseException, so no ``except Exception`` in the importer hides it."""


def lines_run_by(text: str) -> int:
    """Import ``text`` (refused or not) and count the lines of the importer it executes; stops it
    with _OverBudget past LINE_BUDGET, so a runaway import fails the test at once."""
    count = 0

    def line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > LINE_BUDGET:
                raise _OverBudget
        return line

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        return line if frame.f_code.co_filename.startswith(IMPORTER) else None

    before = sys.gettrace()  # a coverage tool's tracer, say: put back afterwards
    sys.settrace(call)
    try:
        imports_or_refuses(text)
    except _OverBudget:
        pytest.fail(f"the import ran more than {LINE_BUDGET:,} lines of the importer")
    finally:
        sys.settrace(before)
    return count


def test_a_real_page_costs_a_few_lines_a_character() -> None:
    """The yardstick for the budget below: a whole seed page."""
    page = seed_page("scenecraft").read_text(encoding="utf-8")
    assert 0 < lines_run_by(page) < 5 * len(page)


def test_run_together_digits_that_cannot_be_split_are_refused_quickly() -> None:
    # The 20,000-candidate cap counted finished readings only: a last line that fits no reading
    # ("0" after 1s) made _all_readings walk every partition of the first line (~5 s for 50 digits).
    assert lines_run_by(PAGE + "Allowed values:\n" + "1" * 50 + "\n0\n") <= LINE_BUDGET
