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


def _laughs(levels: int, width: int = 10) -> str:
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        items = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{items}]")
    return "\n".join(lines) + "\n"


def test_aliases_cannot_multiply_a_document_out() -> None:
    # nine levels of ten aliases each: a billion values from a dozen lines ("billion laughs")
    with pytest.raises(YamlError) as caught:
        parse_yaml("params:\n  prompt: hi\n" + _laughs(9), "bomb.yaml")
    assert str(caught.value) == (
        "bomb.yaml:9: invalid YAML: aliases expand this document to more than 1,000,000 values"
    )


def test_aliases_cannot_multiply_out_text() -> None:
    text = (
        'a0: &a0 "'
        + "x" * 10_001
        + '"\n'
        + "\n".join(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, 4))
    )
    with pytest.raises(YamlError) as caught:
        parse_yaml(text + "\n", "bomb.yaml")
    assert str(caught.value) == (
        "bomb.yaml:4: invalid YAML: aliases expand this document to more than 10,000,000 characters"
    )


def test_a_few_aliases_are_fine() -> None:
    doc = parse_yaml(_laughs(3), "ok.yaml")
    assert len(doc.data["a3"]) == 10
    assert doc.data["a3"][0][0] == ["lol"] * 10


@pytest.mark.parametrize(
    "scalar",
    [
        "9" * 5000,
        "-" + "9" * 5000,
        "0x" + "f" * 4000,
        "0b" + "1" * 15000,
        "9" * 5000 + ".5",
        "1_" * 4400 + "1",
    ],
)
def test_numbers_too_long_to_convert_are_refused(scalar: str) -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml(f"a: 1\nb: {scalar}\n", "n.yaml")
    assert str(caught.value) == (
        "n.yaml:2: invalid YAML: a number longer than 4,300 digits (quote it to keep it as text)"
    )


def test_long_numbers_within_the_limit_load() -> None:
    assert parse_yaml("a: " + "9" * 4300 + "\n", "n.yaml").data["a"] == int("9" * 4300)
    assert parse_yaml("a: '" + "9" * 5000 + "'\n", "n.yaml").data["a"] == "9" * 5000


@pytest.mark.parametrize("depth", [150, 990, 10_000])
def test_deep_nesting_is_refused_without_a_traceback(depth: int) -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml("a: " + "[" * depth + "]" * depth + "\n", "deep.yaml")
    assert str(caught.value).startswith("deep.yaml:1: invalid YAML: ")


def test_nesting_deeper_than_the_limit_is_named() -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml("a: " + "[" * 150 + "]" * 150 + "\n", "deep.yaml")
    assert str(caught.value) == "deep.yaml:1: invalid YAML: nested more than 100 levels deep"
    assert parse_yaml("a: " + "[" * 99 + "]" * 99 + "\n", "ok.yaml").data is not None


@pytest.mark.parametrize(
    ("scalar", "message"),
    [
        ("2024-13-45", "'2024-13-45' is not a valid timestamp (quote it to keep it as text)"),
        ("!!int abc", "'abc' is not a valid int (quote it to keep it as text)"),
        ("!!float abc", "'abc' is not a valid float (quote it to keep it as text)"),
        ("!!bool abc", "'abc' is not a valid bool (quote it to keep it as text)"),
    ],
)
def test_scalars_python_cannot_convert_name_the_line(scalar: str, message: str) -> None:
    with pytest.raises(YamlError) as caught:
        parse_yaml(f"a: 1\nb: {scalar}\n", "s.yaml")
    assert str(caught.value) == f"s.yaml:2: invalid YAML: {message}"
