"""Progress: counts, money labelled with whose it is, and a time left from observed completions."""

from __future__ import annotations

from engine.plan import build_plan
from engine.progress import ProgressModel
from engine.recipe import load_recipe
from engine.results import Result, RunSummary
from tests.helpers import ROOT


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _model(clock: _Clock, label: str = "segmind") -> ProgressModel:
    plan = build_plan(load_recipe(ROOT / "recipes" / "spring.yaml"), limit=10)
    return ProgressModel(plan, label=label, charges=True, clock=clock)


def test_time_left_comes_from_the_completions_seen() -> None:
    """Issue 10: the bar said 1 s left on a run that took 44 s (its pace counted skipped jobs)."""
    clock = _Clock()
    model = _model(clock)
    assert model.eta_text() == "time left unknown"
    for job in ("a", "b", "c", "d"):
        model.update(Result(job=job, status="skipped"))
    assert model.eta_text() == "time left unknown"  # skipped jobs say nothing of the pace
    clock.now += 34
    model.update(Result(job="e", status="succeeded", cost_usd=0.339))
    assert model.eta_s() == 34 * 5
    assert model.eta_text() == "~2 min 50 s left"
    clock.now += 34
    for job in ("f", "g", "h", "i", "j"):
        model.update(Result(job=job, status="succeeded", cost_usd=0.339))
    assert model.eta_s() == 0.0


def _summary() -> RunSummary:
    return RunSummary(
        run_id="r1",
        out_dir="renders/spring",
        results=(Result(job="a", status="succeeded", cost_usd=0.339),),
        spent_usd=0.339,
        unknown_usd=0.0,
        aborted=None,
        budget_reached=False,
        interrupted=False,
        seconds=34.0,
    )


def test_money_sent_to_a_stand_in_is_labelled_with_its_host() -> None:
    """Issue 10: money sent to a simulator or another base URL is never "spent on Segmind"."""
    stand_in = _model(_Clock(), label="segmind@127.0.0.1:8765").closing(_summary())
    assert stand_in.startswith(
        "spring: 1 succeeded; $0.339 spent on 127.0.0.1:8765 (SEGMIND_BASE_URL, not Segmind); 34 s\n"
    )
    real = _model(_Clock()).closing(_summary())
    assert real.startswith("spring: 1 succeeded; $0.339 spent; 34 s\n")
