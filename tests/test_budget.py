"""The budget: reserve before sending, settle on the outcome, and never let the cap be crossed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.budget import Budget


def test_reserve_spend_release_unknown() -> None:
    budget = Budget(1.0)
    assert budget.reserve(0.4)
    assert budget.reserve(0.4)
    assert not budget.reserve(0.4)  # 1.2 would cross the cap: nothing held
    assert budget.reserved_usd == pytest.approx(0.8)
    budget.spend(0.4)
    budget.release(0.4)
    assert (budget.spent_usd, budget.reserved_usd) == (pytest.approx(0.4), pytest.approx(0.0))
    assert budget.reserve(0.3)
    budget.mark_unknown(0.3)
    assert budget.committed_usd == pytest.approx(0.7)
    assert budget.remaining_usd() == pytest.approx(0.3)


def test_spend_records_what_segmind_charged() -> None:
    budget = Budget(1.0)
    budget.reserve(0.5)
    budget.spend(0.5, charged=0.45)
    assert budget.spent_usd == 0.45


def test_no_cap_reserves_anything() -> None:
    budget = Budget(None)
    assert budget.reserve(1e9)
    assert budget.remaining_usd() is None


@settings(max_examples=200)
@given(
    cap=st.floats(0.01, 10),
    steps=st.lists(
        st.tuples(st.floats(0, 2), st.sampled_from(["spend", "release", "unknown"])), max_size=60
    ),
)
def test_committed_never_exceeds_the_cap(cap: float, steps: list[tuple[float, str]]) -> None:
    budget = Budget(cap)
    for price, outcome in steps:
        if budget.reserve(price):
            {"spend": budget.spend, "release": budget.release, "unknown": budget.mark_unknown}[
                outcome
            ](price)
        assert budget.committed_usd <= cap + 1e-6
