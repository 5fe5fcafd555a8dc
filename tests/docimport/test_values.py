"""Literal values on pages: defaults, quoted lists, and run-together numbers."""

from __future__ import annotations

import pytest

from engine.docimport.values import number_value, parse_literal, quoted_values, split_run_together

MEGAPIXELS = ["0.10.5", "1.01", "1.5", "2.02", "2.12.22.32.42.5"]


def test_megapixels_split_as_segmind_prints_them() -> None:
    split = split_run_together(MEGAPIXELS, [1.5, "1.5"])
    assert split.values == (0.1, 0.5, 1.0, 1, 1.5, 2.0, 2, 2.1, 2.2, 2.3, 2.4, 2.5)


def test_evidence_rules_out_readings_that_lack_it() -> None:
    # "1.0" from a code sample rules out reading "1.01" as one number.
    split = split_run_together(["1.01"], ["1.0"])
    assert split.values == (1.0, 1)
    assert split.others == ()


def test_integers_split_around_the_default() -> None:
    split = split_run_together(["5127681024"], [512])
    assert split.values == (512, 768, 1024)
    assert split.others == ((512, 7681024),)


def test_without_evidence_an_ambiguous_run_is_not_guessed() -> None:
    split = split_run_together(["5127681024"], [])
    assert split.values is None
    assert (512, 768, 1024) in split.others


def test_a_single_reading_needs_no_evidence() -> None:
    assert split_run_together(["0.10.5"], []).values == (0.1, 0.5)


@pytest.mark.parametrize("runs", [["abc"], ["1" * 200], [], ["1-2"]])
def test_unreadable_runs_give_no_values(runs: list[str]) -> None:
    assert split_run_together(runs, [1]).values is None


def test_evidence_absent_from_every_reading_gives_no_values() -> None:
    assert split_run_together(["5127681024"], [640]).values is None


@pytest.mark.parametrize(
    ("text", "value"),
    [('"png"', "png"), ("2", 2), ("0.63", 0.63), ("true", True), ("false", False), ("null", None)],
)
def test_literals(text: str, value: object) -> None:
    assert parse_literal(text) == (True, value)
    assert type(parse_literal(text)[1]) is type(value)


def test_number_spelling_decides_its_type() -> None:
    assert (number_value("2"), number_value("2.0"), number_value("02")) == (2, 2.0, None)
    assert type(number_value("2.0")) is float


def test_quoted_lists_with_and_without_more() -> None:
    assert quoted_values('"a""b c"+13 more') == (["a", "b c"], 13)
    assert quoted_values('"jpeg""png""webp"') == (["jpeg", "png", "webp"], None)
    assert quoted_values("plain words") is None
    assert quoted_values('"a" and then') is None
