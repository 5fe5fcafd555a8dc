"""Adaptive polling: noticed within ~10% of a job's latency, in about 8 polls at most."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from engine.polling import LatencyModel


def notice(model: LatencyModel, latency: float) -> tuple[int, float]:
    """How many polls until a job of ``latency`` is seen done, and when."""
    elapsed = 0.0
    for polls, delay in enumerate(model.delays(), start=1):
        elapsed += delay
        if elapsed >= latency:
            return polls, elapsed
    raise AssertionError


@pytest.mark.parametrize("latency", [0.1, 1.0, 11.67, 33.64, 59.16])
def test_once_learned_completion_is_noticed_within_ten_percent(latency: float) -> None:
    model = LatencyModel(guess_s=33.64)
    model.observe(latency)
    polls, seen = notice(model, latency)
    assert seen <= latency * 1.1
    assert polls <= 8


@pytest.mark.parametrize("latency", [11.67, 33.64, 59.16])
def test_a_right_guess_needs_few_polls_before_anything_is_learned(latency: float) -> None:
    polls, seen = notice(LatencyModel(guess_s=latency), latency)
    assert seen <= latency * 1.1
    assert polls <= 8


def test_a_guess_far_too_slow_is_corrected_by_an_early_probe() -> None:
    polls, seen = notice(LatencyModel(guess_s=33.64), 0.1)
    assert (polls, seen) == (1, 0.25)


def test_a_job_running_long_is_polled_ever_more_rarely() -> None:
    model = LatencyModel(guess_s=None)
    model.observe(10)
    delays = list(itertools.islice(model.delays(), 40))
    assert delays[-1] > delays[5]
    assert max(delays) <= 30


def test_the_model_follows_what_it_observes() -> None:
    model = LatencyModel(guess_s=34)
    for _ in range(20):
        model.observe(2.0)
    assert model.expected_s == pytest.approx(2.0, rel=0.01)
    model.observe(0)  # a preview "took no time": still never a busy loop
    assert (model.expected_s or 0) > 0


def test_waiting_jobs_wake_when_the_model_learns() -> None:
    async def scenario() -> tuple[bool, bool, float]:
        model = LatencyModel(guess_s=34)
        sleeper = asyncio.create_task(model.sleep(30))
        await asyncio.sleep(0)  # one turn of the loop: the sleeper starts waiting on the model
        model.observe(0.2)
        woke = await sleeper
        timed_out = await model.sleep(0.01)
        return woke, timed_out, model.next_delay(0.05, 1)

    woke, timed_out, delay = asyncio.run(scenario())
    assert woke is True
    assert timed_out is False
    assert delay == pytest.approx(0.85 * 0.2 - 0.05)


@pytest.mark.parametrize("latency", [0.1, 1.0, 7.5, 40.0])
def test_with_no_figure_at_all_waits_double_until_done(latency: float) -> None:
    polls, seen = notice(LatencyModel(guess_s=None), latency)
    assert seen <= 2 * latency + 0.25
    assert polls <= 10
