"""Benchmark (issue 14): ledger throughput, jobs claimed and recorded a second, on PostgreSQL
against SQLite, at 1 and 4 worker processes.

Each configuration gets a fresh ledger (a SQLite file in WAL mode, or a new database on the
session's throwaway PostgreSQL 15) and the same plan of JOBS jobs submitted to its queue. W spawned
worker processes open the ledger, start their worker run (``batch`` the submitted run) and wait;
on the start signal each loops, until a claim comes back empty: claim one group under a lease,
then for each of its jobs write the rows a real job writes (engine.journal's order: ``sending``,
``submitted`` with its request, the request settled ``succeeded`` with its cost and outputs), then
mark the group done. The pooled variant first holds each job's price in a budget pool
(``Pools.hold``; the ``sending`` row takes the hold over), as a pooled run does. No request goes
anywhere: only the ledger is measured (the triage's reads before a send are not).

Throughput is jobs over the wall time from the start signal to the last worker's report. Printed,
not asserted (machines here are noisy); asserted: every job claimed once and recorded succeeded
once, and no hold left behind.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue as queues
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.ledger import Ledger, new_run_id
from engine.plan import Plan, build_plan
from engine.pools import Pools
from engine.queue import Queue
from engine.recipe import load_recipe
from engine.triage import payload_sha256
from tests.helpers import write_tree
from tests.postgres import Cluster, fresh_database

JOBS = 2000
WORKERS = (1, 4)
PRICE = 0.01
POOL = "bench-pool"
BACKEND = "segmind"
LEASE_S = 600.0
# How long the parent waits for a worker to be ready or to report, before calling it stuck.
PATIENCE_S = 300.0


@dataclass(frozen=True)
class _Report:
    """What one worker did: its run, the jobs it recorded, and where its time went."""

    run: str
    jobs: tuple[str, ...]
    claims: int
    claim_s: float
    record_s: float
    slowest_claim_s: float
    slowest_job_s: float


@dataclass(frozen=True)
class _Outcome:
    jobs_per_s: float
    wall_s: float
    reports: tuple[_Report, ...]


def _recipe(tmp_path: Path) -> Path:
    width = 50
    rows = -(-JOBS // width)
    write_tree(
        tmp_path,
        {
            "ledger.yaml": f"""\
                model: sd1.5-scifi
                price_usd: {PRICE}
                budget_usd: {JOBS * PRICE * 2}
                max_jobs: {rows * width}
                matrix:
                  row: {list(range(rows))}
                  column: {list(range(width))}
                params:
                  prompt: "city {{{{ row }}}} {{{{ column }}}}"
                """
        },
    )
    return tmp_path / "ledger.yaml"


def _worker(
    target: str,
    home: str,
    batch: str,
    pool: str | None,
    ready: Any,
    start: Any,
    reports: Any,
) -> None:
    """One worker process (spawned): ready once its run is started, then claims and records
    until the queue is empty; reports a _Report, or the traceback that stopped it."""
    try:
        ledger = Ledger(target, home=Path(home))
        try:
            queue, pools = Queue(ledger), Pools(ledger)
            plan = queue.plan(batch)
            run = new_run_id()
            ledger.start_run(
                run,
                recipe=plan.recipe,
                recipe_path=plan.recipe_path,
                model=plan.spec.id,
                backend=BACKEND,
                out_dir=str(Path(home) / "out"),
                budget_usd=plan.budget_usd,
                pool=pool,
                batch=batch,
                worker=f"bench:{multiprocessing.current_process().pid}",
            )
            ready.put(run)
            start.wait()
            report = _work(ledger, queue, pools, plan, batch=batch, run=run, pool=pool)
            ledger.finish_run(run, "done")
        finally:
            ledger.close()
        reports.put(report)
    except BaseException:
        # Said to the parent, so it fails with the worker's traceback rather than wait.
        reports.put(traceback.format_exc())
        ready.put("failed")


def _work(
    ledger: Ledger,
    queue: Queue,
    pools: Pools,
    plan: Plan,
    *,
    batch: str,
    run: str,
    pool: str | None,
) -> _Report:
    model = plan.spec.id
    recorded: list[str] = []
    claims = 0
    claim_s = record_s = slowest_claim = slowest_job = 0.0
    while True:
        began = time.perf_counter()
        claimed = queue.claim(batch, run, lease_s=LEASE_S, count=1)
        took = time.perf_counter() - began
        claim_s += took
        slowest_claim = max(slowest_claim, took)
        if not claimed:
            break
        claims += 1
        (claim,) = claimed
        group = claim.jobs
        for job in group:
            began = time.perf_counter()
            _record(ledger, pools, job.id, payload_sha256(job), model, batch=batch, run=run, pool=pool)  # fmt: skip
            took = time.perf_counter() - began
            record_s += took
            slowest_job = max(slowest_job, took)
            recorded.append(job.id)
        began = time.perf_counter()
        queue.done(batch, group[0].id, run)
        record_s += time.perf_counter() - began
    return _Report(run, tuple(recorded), claims, claim_s, record_s, slowest_claim, slowest_job)


def _record(
    ledger: Ledger,
    pools: Pools,
    job_id: str,
    digest: str,
    model: str,
    *,
    batch: str,
    run: str,
    pool: str | None,
) -> None:
    """The rows one job writes, in engine.journal's order."""
    if pool is not None:
        refused = pools.hold(
            run, job_id, PRICE, pool=pool, batch=batch, stale_before=time.time() - LEASE_S
        )
        assert refused is None, refused
    taken = ledger.sending(
        run,
        job_id,
        model=model,
        backend=BACKEND,
        payload_sha256=digest,
        reserved_usd=PRICE,
        from_hold=pool is not None,
        estimated_usd=PRICE,
        body_sha256="x",
    )
    assert taken, f"{job_id}: its hold was gone"
    request = "req-" + hashlib.sha256(f"{run}/{job_id}".encode()).hexdigest()[:24]
    base = f"https://api.segmind.com/v2/requests/{request}"
    ledger.update(
        run,
        job_id,
        attempts=1,
        status="submitted",
        request_id=request,
        poll_url=f"{base}/status",
        result_url=base,
    )
    ledger.settle_request(
        run,
        job_id,
        "succeeded",
        cost_usd=PRICE,
        request_id=request,
        output_paths=[f"out/{job_id}.png"],
        output_sha256=[hashlib.sha256(job_id.encode()).hexdigest()],
        seconds=0.0,
    )


def _measure(target: str, home: Path, plan: Plan, *, workers: int, pool: str | None) -> _Outcome:
    """The plan submitted to a fresh ledger at ``target``, worked by ``workers`` processes;
    checks every job was claimed and recorded once."""
    ledger = Ledger(target, home=home)
    batch = new_run_id()
    try:
        if pool is not None:
            Pools(ledger).set(pool, JOBS * PRICE * 2, "total")
        Queue(ledger).submit(batch, plan, backend=BACKEND, out_dir=str(home / "out"), pool=pool)
    finally:
        ledger.close()

    context = multiprocessing.get_context("spawn")
    ready, reports, start = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(
            target=_worker, args=(target, str(home), batch, pool, ready, start, reports)
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        runs = [ready.get(timeout=PATIENCE_S) for _ in processes]
        began = time.perf_counter()
        start.set()
        found = [reports.get(timeout=PATIENCE_S) for _ in processes]
        wall = time.perf_counter() - began
    except queues.Empty:
        pytest.fail(f"a worker neither finished nor failed in {PATIENCE_S:.0f} s")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    failures = [item for item in found if isinstance(item, str)]
    assert not failures, "\n".join(failures)
    assert "failed" not in runs
    done: list[_Report] = [item for item in found if isinstance(item, _Report)]
    _check(target, home, plan, batch, done, pool=pool)
    return _Outcome(JOBS / wall, wall, tuple(done))


def _check(
    target: str, home: Path, plan: Plan, batch: str, done: list[_Report], *, pool: str | None
) -> None:
    """Every job claimed once, by one worker, and its row recorded succeeded, once."""
    expected = {job.id for job in plan.jobs}
    taken = Counter(job for report in done for job in report.jobs)
    twice = sorted(job for job, times in taken.items() if times > 1)
    assert not twice, f"{len(twice)} jobs recorded by more than one claim: {twice[:5]}"
    assert set(taken) == expected
    ledger = Ledger(target, home=home)
    try:
        queue = Queue(ledger)
        counts = queue.counts(batch)
        assert (counts.queued, counts.claimed, counts.done) == (0, 0, JOBS)
        reclaimed = ledger.db.execute(
            "SELECT COUNT(*) FROM queue WHERE run_id = ? AND claims <> 1", (batch,)
        ).fetchone()[0]
        assert reclaimed == 0, f"{reclaimed} queued groups were claimed more than once"
        assert queue.outcomes(batch) == {"succeeded": JOBS}
        rows = ledger.db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT jobs.job_id), SUM(jobs.cost_usd) FROM jobs "
            "JOIN runs ON runs.id = jobs.run_id WHERE runs.batch = ? AND jobs.status = ?",
            (batch, "succeeded"),
        ).fetchone()
        assert (rows[0], rows[1]) == (JOBS, JOBS)
        assert rows[2] == pytest.approx(JOBS * PRICE)
        held = ledger.db.execute("SELECT COUNT(*) FROM holds").fetchone()[0]
        assert held == 0
        if pool is not None:
            pools = Pools(ledger)
            use = pools.use(pools.need(pool))
            assert use.spent_usd == pytest.approx(JOBS * PRICE)
            assert use.in_flight_usd == use.held_usd == 0
        assert queue.close_if_done(batch)
    finally:
        ledger.close()


def _line(name: str, workers: int, outcome: _Outcome) -> str:
    reports = outcome.reports
    claims = sum(r.claims for r in reports)
    spread = "/".join(str(len(r.jobs)) for r in sorted(reports, key=lambda r: -len(r.jobs)))
    claim_ms = 1000 * sum(r.claim_s for r in reports) / max(claims, 1)
    record_ms = 1000 * sum(r.record_s for r in reports) / JOBS
    slowest_claim = 1000 * max(r.slowest_claim_s for r in reports)
    slowest_job = 1000 * max(r.slowest_job_s for r in reports)
    return (
        f"  {name:<10} {workers} worker{'s' if workers > 1 else ' '} {outcome.jobs_per_s:8,.0f} jobs/s "
        f"({outcome.wall_s:5.2f} s); claim {claim_ms:5.2f} ms (max {slowest_claim:6.1f}), "
        f"record {record_ms:5.2f} ms a job (max {slowest_job:6.1f}); jobs per worker {spread}"
    )


@pytest.mark.parametrize("variant", ["plain", "pooled"])
def test_ledger_throughput_postgresql_against_sqlite(
    variant: str, tmp_path: Path, pg_cluster: Cluster
) -> None:
    plan = build_plan(load_recipe(_recipe(tmp_path)))
    assert len(plan.jobs) == JOBS
    assert not plan.errors
    assert len({payload_sha256(job) for job in plan.jobs}) == JOBS  # one group a job
    pool = POOL if variant == "pooled" else None
    results: dict[tuple[str, int], _Outcome] = {}
    lines = [
        f"\nledger throughput ({variant}: "
        + ("hold in a pool, " if pool else "")
        + f"sending, submitted, settled, done), {JOBS:,} jobs, one group a claim:"
    ]
    for workers in WORKERS:
        for kind in ("sqlite", "postgresql"):
            name = f"{variant}-{kind}-{workers}"
            home = tmp_path / name
            target = (
                str(home / "ledger.sqlite")
                if kind == "sqlite"
                else fresh_database(pg_cluster, f"ledger_bench_{name}")
            )
            results[kind, workers] = _measure(target, home, plan, workers=workers, pool=pool)
            lines.append(_line(kind, workers, results[kind, workers]))
    speed = {key: outcome.jobs_per_s for key, outcome in results.items()}
    one, four = WORKERS
    lines += [
        f"  PostgreSQL/SQLite: {speed['postgresql', one] / speed['sqlite', one]:.2f}x at {one} "
        f"worker, {speed['postgresql', four] / speed['sqlite', four]:.2f}x at {four} workers",
        f"  {four} workers/{one}: SQLite {speed['sqlite', four] / speed['sqlite', one]:.2f}x, "
        f"PostgreSQL {speed['postgresql', four] / speed['postgresql', one]:.2f}x",
    ]
    print("\n".join(lines))
