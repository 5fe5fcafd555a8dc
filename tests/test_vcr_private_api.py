"""The private corner of vcrpy that engine.cassettes overrides, checked so that an upgrade which moves
it fails here, by name, instead of silently replaying through vcrpy's slow scan (or not at all).

engine.cassettes._IndexedCassette replaces ``Cassette._responses(self, request)``, vcrpy's internal
"every recording matching this request, as (position, response)", with a dict lookup. pyproject pins
vcrpy below its next major for the same reason.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path

import pytest
from vcr.cassette import Cassette
from vcr.request import Request

from engine.cassettes import _IndexedCassette

USED_BY = ("play_response", "responses_of", "__contains__")


def test_vcrpy_is_a_version_the_override_was_written_for() -> None:
    major = int(version("vcrpy").split(".")[0])
    assert 7 <= major < 10, f"vcrpy {version('vcrpy')}: check Cassette._responses, then the pin"


def test_cassette_still_has_the_private_method_we_override() -> None:
    method = getattr(Cassette, "_responses", None)
    assert method is not None, "vcrpy's Cassette._responses is gone: engine.cassettes must change"
    assert list(inspect.signature(method).parameters) == ["self", "request"]
    assert inspect.isgeneratorfunction(method)


@pytest.mark.parametrize("name", USED_BY)
def test_vcrpy_still_finds_recordings_through_it(name: str) -> None:
    """Our override only matters if vcrpy's playback goes through it."""
    assert "self._responses(" in inspect.getsource(getattr(Cassette, name))


def test_the_override_plays_what_vcrpy_would(tmp_path: Path) -> None:
    """Same recordings, same order, through the index: two identical requests play in turn."""
    cassette = _IndexedCassette(str(tmp_path / "c.yaml"), match_on=("method", "uri", "body"))
    first = Request("POST", "http://x/v1/a", b'{"n":1}', {})
    other = Request("POST", "http://x/v1/a", b'{"n":2}', {})
    for request, answer in ((first, "one"), (other, "two"), (first, "three")):
        cassette.append(request, {"body": answer})
    assert first in cassette
    assert [cassette.play_response(first), cassette.play_response(first)] == [
        {"body": "one"},
        {"body": "three"},
    ]
    assert cassette.responses_of(other) == [{"body": "two"}]
