"""A submitted run's queue (issue 14): the plan survives the ledger whole, twins are one claim,
claims are exclusive (SKIP LOCKED on PostgreSQL, the write lock on SQLite) and leased, and a job
a dead worker ended is not rendered again."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import LedgerError
from engine.ledger import Ledger
from engine.localimage import LocalImage
from engine.plan import Plan, build_plan
from engine.queue import Queue
from engine.recipe import load_recipe
from tests.helpers import ROOT, write_tree

RECIPE = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 5
    matrix:
      n: {jobs}
      take: [1, 2]
    params:
      prompt: "a sci-fi city numbered {{{{ n }}}}"
    """
SOFA = ROOT / "recipes" / "images" / "sofa.png"


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return str(request.getfixturevalue("pg_url"))


def _plan(tmp_path: Path, jobs: int = 3) -> Plan:
    """``jobs`` payloads, each twice (the `take` axis is in no template: twins)."""
    write_tree(tmp_path, {"city.yaml": RECIPE.format(jobs=list(range(jobs)))})
    return build_plan(load_recipe(tmp_path / "city.yaml"))


def _submitted(target: str, plan: Plan, run: str = "batch") -> tuple[Ledger, Queue]:
    book = Ledger(target)
    queue = Queue(book)
    queue.submit(run, plan, backend="segmind", out_dir="/o", pool=None)
    return book, queue


def test_the_plan_comes_back_whole_and_twins_are_one_group(target: str, tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    book, queue = _submitted(target, plan)
    again = queue.plan("batch")
    assert again == plan
    assert queue.counts("batch").total == 6
    claim = queue.claim("batch", "w1", lease_s=60)[0]
    assert [job.id for job in claim.jobs] == ["0/1", "0/2"]
    book.close()


def test_a_local_image_travels_as_its_path(target: str, tmp_path: Path) -> None:
    plan = _plan(tmp_path, jobs=1)
    job = plan.jobs[0].model_copy(
        update={"payload": {**plan.jobs[0].payload, "image": LocalImage(SOFA)}}
    )
    book, queue = _submitted(target, plan.model_copy(update={"jobs": (job,)}))
    assert queue.plan("batch").jobs[0].payload["image"] == LocalImage(SOFA)
    book.close()


def test_a_claim_is_leased_and_a_lease_that_ran_out_is_claimed_again(
    target: str, tmp_path: Path
) -> None:
    book, queue = _submitted(target, _plan(tmp_path, jobs=2))
    first = queue.claim("batch", "w1", lease_s=60)[0]
    second = queue.claim("batch", "w2", lease_s=60)[0]
    assert first.jobs[0].id != second.jobs[0].id
    assert queue.claim("batch", "w2", lease_s=60) == []
    assert queue.next_expiry("batch", "w2") is not None
    book.db.execute("UPDATE queue SET lease_until = ? WHERE worker = 'w1'", (time.time() - 1,))
    assert queue.counts("batch").expired == 2
    taken = queue.claim("batch", "w2", lease_s=60)[0]
    assert (taken.jobs[0].id, taken.claims) == (first.jobs[0].id, 2)
    book.close()


def test_done_put_back_and_what_a_dead_worker_ended(target: str, tmp_path: Path) -> None:
    book, queue = _submitted(target, _plan(tmp_path, jobs=2))
    a = queue.claim("batch", "w1", lease_s=60)[0].jobs[0].id
    b = queue.claim("batch", "w1", lease_s=60)[0].jobs[0].id
    queue.put_back("batch", b, "w1")
    queue.done("batch", a, "w2")  # not w2's claim: nothing changes
    assert queue.counts("batch").claimed == 2
    queue.done("batch", a, "w1")
    assert queue.ended_elsewhere("batch", a) is False
    book.start_run("w1", recipe="city", recipe_path="r", model="m", backend="segmind",
                   out_dir="/o", budget_usd=None, batch="batch")  # fmt: skip
    book.job("w1", a, model="m", backend="segmind", payload_sha256="h", status="succeeded",
             reserved_usd=0)  # fmt: skip
    assert queue.ended_elsewhere("batch", a) is True
    assert queue.close_if_done("batch") is False
    again = queue.claim("batch", "w3", lease_s=60)[0]
    assert again.jobs[0].id == b
    queue.done("batch", b, "w3")
    assert queue.close_if_done("batch") is True
    assert book.run("batch")["status"] == "done"  # type: ignore[index]
    book.close()


def test_a_run_that_was_not_submitted_is_refused_by_name(target: str) -> None:
    book = Ledger(target)
    with pytest.raises(LedgerError) as caught:
        Queue(book).plan("nope")
    assert str(caught.value) == (
        f"no submitted run 'nope' in the ledger {book.where} "
        "(`render submit RECIPE` submits one and prints its id)"
    )
    book.close()


def _claimer(target: str, worker: str, start: Any, done: Any) -> None:
    book = Ledger(target)
    queue = Queue(book)
    start.wait()
    taken = []
    while claims := queue.claim("batch", worker, lease_s=60):
        taken += [claim.jobs[0].id for claim in claims]
    done.put(taken)
    book.close()


def test_workers_claiming_at_once_never_take_one_job_twice(target: str, tmp_path: Path) -> None:
    book, _ = _submitted(target, _plan(tmp_path, jobs=100))
    context = multiprocessing.get_context("spawn")
    start, done = context.Event(), context.Queue()
    workers = [
        context.Process(target=_claimer, args=(target, f"w{n}", start, done)) for n in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    taken = [job for _ in workers for job in done.get(timeout=5)]
    assert len(taken) == 100
    assert len(set(taken)) == 100
    book.close()
