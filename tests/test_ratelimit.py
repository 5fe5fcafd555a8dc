"""The run's pace: submissions spaced to --rpm, and a rate learned from 429s, raised carefully.

Time is a fake clock that the fake sleep advances: no test waits for real time.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from engine.ledger import Ledger
from engine.ratelimit import Pace, SharedPace, account_id


class _Time:
    """A clock and a sleep that only move when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _pace(rpm: int | None = None, window_s: float = 60.0) -> tuple[Pace, _Time]:
    clock = _Time()
    return Pace(rpm, window_s=window_s, clock=clock, sleep=clock.sleep), clock


def _starts(pace: Pace, clock: _Time, count: int) -> list[float]:
    async def go() -> list[float]:
        moments = []
        for _ in range(count):
            await pace.wait()
            moments.append(clock.now)
            pace.accepted()
        return moments

    return asyncio.run(go())


def test_a_ceiling_spaces_starts_by_a_minute_over_rpm() -> None:
    pace, clock = _pace(rpm=30)
    moments = _starts(pace, clock, 5)
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert all(abs(gap - 2.04) < 1e-9 for gap in gaps)  # 60 / 30, and a 2% margin


def test_no_limit_and_no_429_waits_for_nothing() -> None:
    pace, clock = _pace()
    assert _starts(pace, clock, 1000) == [1000.0] * 1000
    assert pace.learned is None


def test_a_429_teaches_the_whole_run_the_accounts_rate() -> None:
    pace, clock = _pace()
    _starts(pace, clock, 5)  # a free account takes five...
    pace.limited(retry_after=60.0)  # ...and refuses the sixth until its window frees a slot
    pace.limited(retry_after=59.0)  # more of the same crowd: nothing new to learn
    assert (pace.learned, pace.limited_count) == (5.0, 2)
    moments = _starts(pace, clock, 3)
    assert moments[0] == 1060.0  # nothing before the reset
    assert [b - a for a, b in itertools.pairwise(moments)] == pytest.approx([12.24, 12.24])


def test_a_full_window_without_a_429_raises_the_rate_by_a_quarter() -> None:
    pace, clock = _pace(rpm=9)
    _starts(pace, clock, 4)
    pace.limited(retry_after=2.0)
    assert pace.learned == 4.0
    _starts(pace, clock, 4)
    assert pace.learned == 5.0  # at least one more
    _starts(pace, clock, 5)
    assert pace.learned == 6.25
    _starts(pace, clock, 30)
    assert pace.learned == 9.0  # never past --rpm
    assert pace.rpm == 9.0


def test_a_429_at_the_learned_rate_lowers_it_a_little() -> None:
    pace, clock = _pace(window_s=10.0)
    _starts(pace, clock, 10)
    pace.limited(retry_after=10.0)
    assert pace.learned == 10.0
    clock.now += 100  # the window has emptied: what it holds says nothing any more
    _starts(pace, clock, 3)
    pace.limited(retry_after=2.0)
    assert pace.learned == 3.0
    _starts(pace, clock, 2)  # fewer than a window's worth: no rise yet
    pace.limited(retry_after=2.0)
    assert pace.learned == pytest.approx(3.0 * 0.9)


def test_a_429_without_a_reset_time_waits_a_few_seconds() -> None:
    pace, clock = _pace()
    _starts(pace, clock, 2)
    pace.limited(retry_after=None)
    assert _starts(pace, clock, 1) == [1005.0]


def test_a_429_whose_reset_is_within_a_second_teaches_nothing() -> None:
    pace, clock = _pace()
    _starts(pace, clock, 3)
    assert pace.limited(retry_after=0.6) is False
    assert (pace.learned, pace.limited_count) == (None, 1)
    assert _starts(pace, clock, 1) == [1000.0]


# --- one pace per account, shared through the ledger (issue 14) ----------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return str(request.getfixturevalue("pg_url"))


def test_two_processes_on_one_key_take_turns_at_the_accounts_rate(ledger_target: str) -> None:
    """Two paces (two processes) on one account: together they are spaced as one run would be."""
    clock = _Time()
    first, second = Ledger(ledger_target), Ledger(ledger_target)
    account = account_id("sk-team", "http://127.0.0.1:1")
    paces = [
        SharedPace(book, account, 30, clock=clock, sleep=clock.sleep) for book in (first, second)
    ]

    async def go() -> list[float]:
        moments = []
        for pace in paces * 3:  # alternately, as two processes would
            await pace.wait()
            moments.append(clock.now)
            pace.accepted()
        return moments

    moments = asyncio.run(go())
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert all(abs(gap - 2.04) < 1e-9 for gap in gaps)
    first.close()
    second.close()


def test_what_one_process_learns_from_a_429_paces_the_other(ledger_target: str) -> None:
    clock = _Time()
    first, second = Ledger(ledger_target), Ledger(ledger_target)
    account = account_id("sk-team", "http://127.0.0.1:1")
    one = SharedPace(first, account, clock=clock, sleep=clock.sleep)
    other = SharedPace(second, account, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        one.accepted()
    assert one.limited(30.0) is True
    assert other.rpm is None  # not read until its next turn
    asyncio.run(other.wait())
    assert other.learned == 10.0
    assert clock.now == 1030.0  # it waited for the reset the 429 gave
    stored = first.db.execute("SELECT account, state FROM paces").fetchall()
    assert [row[0] for row in stored] == [account]
    assert "sk-team" not in stored[0][1]
    first.close()
    second.close()


def test_an_account_is_named_by_a_hash_of_its_key_and_host() -> None:
    name = account_id("sk-team", "https://api.segmind.com")
    assert len(name) == 32
    assert "sk-team" not in name
    assert name != account_id("sk-team", "http://127.0.0.1:8765")
    assert name != account_id("sk-other", "https://api.segmind.com")
