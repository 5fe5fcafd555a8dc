"""YAML reading keeps lines for every key and item and refuses duplicate keys; writing is stable."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import YamlError
from engine.yamlfile import dump_yaml, load_yaml, parse_yaml


def test_lines_of_keys_and_items() -> None:
    doc = parse_yaml("a: 1\nb:\n  - x\n  - {y: 2}\n", "f.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"y": 2}]}
    assert (doc.line(["a"]), doc.line(["b", 0]), doc.line(["b", 1, "y"])) == (1, 3, 4)
    assert doc.line(["b", 1, "nope", 3]) == 4
    assert str(doc.location(["b", 1])) == "f.yaml:4"


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml("name: a\nother: 1\nname: b\n", "r.yaml")
    assert str(caught.value) == "r.yaml:3: duplicate key 'name' (first on line 1)"


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml("a: 1\nb: [1, 2\n", "r.yaml")
    assert str(caught.value).startswith("r.yaml:3: invalid YAML: ")


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml("a: !!python/object/apply:os.system [echo hi]\n", "r.yaml")
    assert str(caught.value).startswith("r.yaml:1: invalid YAML: could not determine a constructor")


def test_empty_document_is_none() -> None:
    assert parse_yaml("", "e.yaml").data is None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(YamlError, match="no such file"):
        load_yaml(tmp_path / "none.yaml")


def test_dump_keeps_order_and_unicode() -> None:
    assert dump_yaml({"b": 1, "a": ["é", 2.0]}) == "b: 1\na:\n  - é\n  - 2.0\n"
