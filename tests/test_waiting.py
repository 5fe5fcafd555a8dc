"""Issue 14 (found by the pool test): a job's row says `sending` only while a try of its request
may be on the wire. A try refused without a bill (a 429) turns it back to `waiting`, its money held
in the pool again; a process killed then leaves a job the next run sends, not one it holds as
unknown for ever."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from engine.backends import segmind_backend
from engine.budget import Budget
from engine.client import SegmindClient
from engine.ledger import Ledger
from engine.outputs import OutputStore
from engine.plan import build_plan
from engine.pools import Pools
from engine.recipe import load_recipe
from engine.results import RunOptions
from engine.runner import Runner
from engine.simulator import SimulatorConfig, all_specs, create_app, serving
from engine.triage import Triage
from tests.helpers import write_tree

KEY = "sk-waiting"
RECIPE = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    budget_pool: team
    matrix:
      n: [0, 1]
    params:
      prompt: "a sci-fi city numbered {{ n }}"
    """


class _Watched(Ledger):
    """The ledger, telling the test the moment a job's try is refused and it waits."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.waits = asyncio.Event()

    def waiting(self, run_id: str, job_id: str, **fields: Any) -> None:
        super().waiting(run_id, job_id, **fields)
        self.waits.set()


def test_a_job_killed_while_it_waits_for_its_next_try_is_sent_by_the_next_run(
    tmp_path: Path,
) -> None:
    write_tree(tmp_path, {"city.yaml": RECIPE})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"))
    path = tmp_path / "ledger.sqlite"
    # One submission a minute: the second job's first try is answered 429, reset a minute later.
    app = create_app(
        SimulatorConfig(
            specs=all_specs(), unpriced_usd=0.01, rpm=1, rate_window_s=60, images="tiny"
        )
    )

    async def until_it_waits(base: str) -> None:
        book = _Watched(path)
        Pools(book).set("team", 1, "total")
        client = SegmindClient(base, KEY)
        runner = Runner(
            plan,
            client=client,
            ledger=book,
            store=OutputStore(tmp_path / "out"),
            budget=Budget(1.0),
            options=RunOptions(concurrency=2),
            backend=segmind_backend(KEY, base_url=base),
        )
        task = asyncio.create_task(runner.run())
        await book.waits.wait()
        # What a SIGKILL now would leave: the ledger as it is, copied whole.
        with sqlite3.connect(tmp_path / "killed.sqlite") as copy:
            book.db.db.backup(copy)  # type: ignore[attr-defined]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()
        book.close()

    with serving(app) as base:
        asyncio.run(until_it_waits(base))

    killed = Ledger(tmp_path / "killed.sqlite")
    rows = {row["job_id"]: row for row in killed.jobs_of(killed.runs()[0]["id"])}
    waiting = next(job for job, row in rows.items() if row["status"] == "waiting")
    assert rows[waiting]["reserved_usd"] == 0
    # Its money is held in the pool, not on its row; the holder's heartbeat stops with it.
    pools = Pools(killed)
    use = pools.use(pools.need("team"))
    assert use.held_usd == 0.01
    assert use.in_flight_usd + use.spent_usd == 0.01  # the other job, sent
    job = next(job for job in plan.jobs if job.id == waiting)
    triage = Triage(killed, segmind_backend(KEY, base_url=base).label, OutputStore(tmp_path / "o2"),
                    model=plan.spec.id)  # fmt: skip
    assert triage.decide(job).action == "send"
    # Once the dead run's lease has run out its hold goes, at the next hold in the pool.
    killed.start_run("next", recipe="city", recipe_path="r", model="m", backend="b", out_dir="/o",
                     budget_usd=None, pool="team")  # fmt: skip
    assert (
        pools.hold("next", "x", 0.01, pool="team", batch=None, stale_before=time.time() + 1) is None
    )
    assert pools.use(pools.need("team")).held_usd == 0.01  # only the new one
    killed.close()
