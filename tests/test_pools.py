"""Budget pools (issue 14): a cap shared by every run that names it, held in the ledger on SQLite
and PostgreSQL alike; a job's hold becomes its `sending` row in one transaction; the holds of a
process taken for dead are let go, and that process can no longer send on them."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import LedgerError
from engine.ledger import Ledger
from engine.pools import Pools, period_start

LEASE_S = 60.0


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return str(request.getfixturevalue("pg_url"))


def _run(book: Ledger, run: str, *, pool: str | None = None, batch: str | None = None) -> None:
    book.start_run(
        run,
        recipe="spring",
        recipe_path="r.yaml",
        model="sd1.5-scifi",
        backend="segmind",
        out_dir="/o",
        budget_usd=1.0 if batch == run else None,
        pool=pool,
        batch=batch,
    )


def _hold(pools: Pools, run: str, job: str, amount: float, **where: Any) -> str | None:
    where.setdefault("pool", "team")
    where.setdefault("batch", None)
    return pools.hold(run, job, amount, stale_before=time.time() - LEASE_S, **where)


def _send(book: Ledger, run: str, job: str, amount: float) -> bool:
    return book.sending(
        run,
        job,
        model="sd1.5-scifi",
        backend="segmind",
        payload_sha256=job,
        reserved_usd=amount,
        from_hold=True,
    )


@pytest.mark.parametrize(
    ("period", "start"),
    [
        ("day", "2026-11-26T00:00:00.000+00:00"),
        ("week", "2026-11-23T00:00:00.000+00:00"),
        ("month", "2026-11-01T00:00:00.000+00:00"),
        ("total", ""),
    ],
)
def test_a_period_starts_at_midnight_utc_on_its_first_day(period: str, start: str) -> None:
    thursday = dt.datetime(2026, 11, 26, 15, 30, tzinfo=dt.UTC)
    assert period_start(period, thursday) == start


def test_a_pool_holds_until_its_cap_and_says_why_not(target: str) -> None:
    book = Ledger(target)
    pools = Pools(book)
    pools.set("team", 0.03, "total")
    _run(book, "r1", pool="team")
    assert [_hold(pools, "r1", job, 0.01) for job in ("a", "b", "c")] == [None] * 3
    assert _hold(pools, "r1", "d", 0.01) == "the pool team ($0.03 in all) is spent"
    use = pools.use(pools.need("team"))
    assert (use.held_usd, use.in_flight_usd, use.spent_usd, use.left_usd) == (0.03, 0, 0, 0)
    pools.drop("r1", "c")  # not sent after all: its money goes back
    assert _hold(pools, "r1", "d", 0.01) is None
    book.close()


def test_a_hold_becomes_its_sending_row_and_its_money_is_counted_once(target: str) -> None:
    book = Ledger(target)
    pools = Pools(book)
    pools.set("team", 1, "month")
    _run(book, "r1", pool="team")
    assert _hold(pools, "r1", "a", 0.25) is None
    assert _send(book, "r1", "a", 0.25) is True
    use = pools.use(pools.need("team"))
    assert (use.held_usd, use.in_flight_usd, use.spent_usd) == (0, 0.25, 0)
    book.settle_request("r1", "a", "succeeded", cost_usd=0.3, request_id="q1")
    use = pools.use(pools.need("team"))
    assert (use.held_usd, use.in_flight_usd, use.spent_usd) == (0, 0, 0.3)
    assert round(use.left_usd, 6) == 0.7
    book.close()


def test_a_process_taken_for_dead_loses_its_holds_and_cannot_send_on_them(target: str) -> None:
    book = Ledger(target)
    pools = Pools(book)
    pools.set("team", 0.02, "total")
    for run in ("frozen", "alive"):
        _run(book, run, pool="team")
    assert _hold(pools, "frozen", "a", 0.02) is None
    assert _hold(pools, "alive", "b", 0.01) == "the pool team ($0.02 in all) is spent"
    book.db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = 'frozen'", (time.time() - 120,))
    assert _hold(pools, "alive", "b", 0.01) is None  # the frozen run's hold was let go
    assert _send(book, "frozen", "a", 0.02) is False  # it wakes up: it may not send
    assert book.row("frozen", "a") is None
    book.close()


def test_a_submitted_runs_budget_caps_all_its_workers(target: str) -> None:
    book = Ledger(target)
    pools = Pools(book)
    _run(book, "batch", batch="batch")  # budget_usd 1.0
    for worker in ("w1", "w2"):
        _run(book, worker, batch="batch")
    holds = [
        _hold(pools, worker, f"{worker}-{n}", 0.3, pool=None, batch="batch")
        for n in range(2)
        for worker in ("w1", "w2")
    ]
    assert holds == [None, None, None, "the run's budget ($1.00) is reached"]
    book.close()


def test_an_unknown_pool_names_the_pools_there_are(target: str) -> None:
    book = Ledger(target)
    pools = Pools(book)
    with pytest.raises(LedgerError) as caught:
        pools.need("team")
    assert str(caught.value) == (
        f"no budget pool 'team' in the ledger {book.where} (there are no pools yet): "
        "create it with `render budget set team USD`"
    )
    pools.set("catalog", 5, "month")
    pools.set("ci", 1, "day")
    with pytest.raises(LedgerError, match=r"\(the pools are catalog, ci\)"):
        pools.need("team")
    book.close()


def _holder(target: str, run: str, start: Any, done: Any) -> None:
    """One process holding a cent at a time from the pool until it is refused."""
    book = Ledger(target)
    pools = Pools(book)
    start.wait()
    held = 0
    while _hold(pools, run, f"{run}-{held}", 0.01) is None:
        held += 1
    done.put(held)
    book.close()


def test_processes_holding_at_once_never_hold_more_than_the_pool(target: str) -> None:
    book = Ledger(target)
    pools = Pools(book)
    pools.set("team", 0.5, "total")
    runs = [f"p{n}" for n in range(4)]
    for run in runs:
        _run(book, run, pool="team")
    context = multiprocessing.get_context("spawn")
    start, done = context.Event(), context.Queue()
    workers = [context.Process(target=_holder, args=(target, run, start, done)) for run in runs]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    held = [done.get(timeout=5) for _ in workers]
    assert sum(held) == 50
    assert pools.use(pools.need("team")).left_usd == pytest.approx(0, abs=1e-9)
    book.close()


# --- the running totals a pool's money is read from ----------------------------------------------

_OPS = st.lists(
    st.tuples(
        st.sampled_from(["send", "bill", "fail", "unknown", "rewrite", "settle", "collect"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from([0.01, 0.25, 0.339, 1.0]),
    ),
    max_size=40,
)


def _brute(book: Ledger, column: str, name: str) -> float:
    """What the triggers' totals must equal: every billed row of the scope, summed."""
    (found,) = book.db.execute(
        f"SELECT COALESCE(SUM(jobs.cost_usd), 0) FROM jobs JOIN runs ON runs.id = jobs.run_id "
        f"WHERE runs.{column} = ? AND jobs.status IN ('succeeded', 'unfetched')",
        (name,),
    ).fetchone()
    return round(float(found), 9)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_a_pools_running_totals_always_equal_its_rows(target: str, ops: list[Any]) -> None:
    book = Ledger(target)
    try:
        for table in ("jobs", "runs", "money_days", "holds", "pools"):
            book.db.execute(f"DELETE FROM {table}")
        pools = Pools(book)
        pools.set("team", 1000, "total")
        _run(book, "batch", batch="batch")
        for run in ("w1", "w2"):
            book.start_run(run, recipe="r", recipe_path="r", model="m", backend="segmind",
                           out_dir="/o", budget_usd=None, pool="team", batch="batch")  # fmt: skip
        for op, job, amount in ops:
            run = "w1" if job in "ab" else "w2"
            if op == "send":
                book.job(run, job, model="m", backend="segmind", payload_sha256=job,
                         status="sending", reserved_usd=amount)  # fmt: skip
            elif op == "bill":
                book.finish_job(run, job, "succeeded", cost_usd=amount)
            elif op == "fail":
                book.finish_job(run, job, "failed", cost_usd=None)
            elif op == "unknown":
                book.update(run, job, status="unknown")
            elif op == "rewrite":  # a row written again (INSERT OR REPLACE, or DELETE + INSERT)
                book.job(run, job, model="m", backend="segmind", payload_sha256=job,
                         status="unfetched", reserved_usd=0, cost_usd=amount)  # fmt: skip
            elif op == "settle":
                book.settle_request(run, job, "succeeded", cost_usd=amount, request_id=f"q-{job}")
            else:
                book.take_over("w2", job, model="m", backend="segmind", payload_sha256=job,
                               reserved_usd=amount, request_id=f"q-{job}")  # fmt: skip
            assert pools.use(pools.need("team")).spent_usd == _brute(book, "pool", "team")
            assert pools._money("batch", "batch", "")[0] == _brute(book, "batch", "batch")
    finally:
        book.close()
