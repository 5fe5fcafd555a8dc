"""The ten more pages cut anywhere and their whitespace collapsed, as readers store pages: every import
gives a spec or refuses a page cut before any endpoint could be known, and no default is invented.

"Invented" means not printed anywhere in the (cut, collapsed) text the importer was given: a string
default must be there as printed (or JSON-escaped), a number as some number of equal value, a
boolean as true/false.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.docimport import import_page, import_text
from engine.errors import SpecImportError
from engine.specs import Spec

MORE = Path(__file__).resolve().parent / "more"
NAMES = sorted(p.name for p in MORE.glob("*.txt"))

# The forms a page names its endpoint in, whole: the sample's URL with its closing quote, a POST
# line followed by more text (so its last character is not where the page was cut), the SDK's call.
_ENDPOINT_FORMS = (
    re.compile(r"""url\s*=\s*["']https?://[^"'\s]+/(?:v\d+|workflows)/[^"'\s]+["']"""),
    re.compile(r"POST\s*(?:https?://\S+|/(?:v\d+|workflows)/\S+)(?=\s)"),
    re.compile(r"API Endpoint\s+https?://\S+(?=\s)"),
    re.compile(r"""\.(?:run|submit_async|submit)\(\s*(?:\d{1,3}\s*)?["'][\w.\-]+["']"""),
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@cache
def _text(name: str) -> str:
    return (MORE / name).read_text(encoding="utf-8")


@cache
def _whole(name: str) -> Spec:
    return import_page(MORE / name).spec


def _collapsed(text: str, how: str) -> str:
    if how == "one line":
        return re.sub(r"\s+", " ", text)
    if how == "compact":
        # Runs of spaces to one, blank lines dropped: a compact rendering's shape.
        return re.sub(r"\n\s*\n", "\n", re.sub(r"[ \t]+", " ", text))
    return text


@st.composite
def stored_pages(draw: st.DrawFn) -> tuple[str, str]:
    """A page as some reader stored it: its head perhaps lost (whole lines), cut anywhere after,
    and its whitespace perhaps collapsed."""
    name = draw(st.sampled_from(NAMES))
    text = _text(name)
    lines = text.split("\n")
    first = draw(st.one_of(st.just(0), st.integers(0, len(lines) - 1)))
    text = "\n".join(lines[first:])
    text = text[: draw(st.integers(0, len(text)))]
    return name, _collapsed(text, draw(st.sampled_from(["as stored", "one line", "compact"])))


def _appears(value: object, text: str) -> bool:
    """Whether the page ``text`` prints ``value`` (see the module's docstring)."""
    if isinstance(value, bool):
        return str(value).lower() in text.lower()
    if isinstance(value, int | float):
        return any(math.isclose(float(n), value) for n in _NUMBER.findall(text))
    if isinstance(value, str):
        escaped = (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1])
        return value in text or any(form in text for form in escaped)
    if isinstance(value, list):
        return all(_appears(item, text) for item in value)
    if isinstance(value, dict):
        return all(_appears(k, text) and _appears(v, text) for k, v in value.items())
    return False


def _endpoint_known(text: str) -> bool:
    return any(form.search(text) for form in _ENDPOINT_FORMS)


def _check(name: str, text: str) -> None:
    try:
        result = import_text(text, name=name, spec_id=name.removesuffix(".txt"))
    except SpecImportError as refused:
        message = str(refused)
        assert message.startswith(f"{name}:"), message
        assert "found no API endpoint" in message, message
        assert not _endpoint_known(text), message
        return
    spec, whole = result.spec, _whole(name)
    # The model is the page's: only the protocol may change when the v2 line was lost.
    assert spec.endpoint.rsplit("/", 1)[-1] == whole.endpoint.rsplit("/", 1)[-1]
    assert set(spec.params) <= set(whole.params), sorted(set(spec.params) - set(whole.params))
    for param_name, param in spec.params.items():
        if param.default is not None:
            assert _appears(param.default, text), (param_name, param.default)
    assert all(note.line is None or note.line >= 1 for note in result.notes)


@settings(max_examples=600, deadline=None)
@given(page=stored_pages())
def test_a_stored_page_imports_or_is_refused_for_want_of_an_endpoint(
    page: tuple[str, str],
) -> None:
    _check(*page)


@pytest.mark.parametrize("name", NAMES, ids=lambda name: name.removesuffix(".txt"))
@pytest.mark.parametrize("how", ["as stored", "one line", "compact"])
def test_every_line_a_page_can_be_cut_after(name: str, how: str) -> None:
    """The cuts a reader makes most, at each line's end and in the middle of each line."""
    text = _text(name)
    ends = [m.start() for m in re.finditer("\n", text)] + [len(text)]
    starts = [0, *(end + 1 for end in ends[:-1])]
    for start, end in zip(starts, ends, strict=True):
        for cut in {end, (start + end) // 2}:
            _check(name, _collapsed(text[:cut], how))
