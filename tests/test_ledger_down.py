"""Issue 14: the ledger's own database failing. Unreachable at the start, a run says so and sends
nothing (exit 2); lost mid-run, no new request is sent, the jobs in flight finish and their rows
wait in a local journal that the next run replays. The simulator's charge log is the judge."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from engine.backends import segmind_backend
from engine.executor import execute
from engine.ledger import Ledger
from engine.plan import build_plan
from engine.recipe import load_recipe
from engine.results import Result, RunOptions
from engine.simulator import SimulatorConfig, all_specs, create_app, serving
from tests.helpers import Render, write_tree
from tests.postgres import Cluster

KEY = "sk-ledger-down"
RECIPE = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      n: [0, 1, 2, 3, 4, 5, 6, 7]
    params:
      prompt: "a sci-fi city numbered {{ n }}"
    """


def test_a_database_unreachable_at_the_start_sends_nothing(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"city.yaml": RECIPE})
    dead = "postgresql://render:secret@127.0.0.1:1/ledger"
    with render.simulator() as segmind:
        code, out, err = render("city.yaml", "--ledger", dead, "--yes", **segmind.env(KEY))
        assert segmind.state.charges == []
        assert segmind.state.jobs == {}
    assert code == 2
    assert out == ""
    assert err.startswith(
        "error: the ledger's database postgresql://render:***@127.0.0.1:1/ledger is unreachable: "
    )
    assert err.endswith(
        "Nothing was sent; start the server, or check RENDER_LEDGER_URL (--ledger)\n"
    )
    assert "secret" not in err


def test_a_database_lost_mid_run_stops_sending_and_the_next_run_records_what_was_in_flight(
    pg_cluster: Cluster, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(tmp_path, {"city.yaml": RECIPE})
    home = tmp_path / "home"
    monkeypatch.setenv("RENDER_LEDGER_URL", pg_url)
    plan = build_plan(load_recipe(tmp_path / "city.yaml"))
    app = create_app(
        SimulatorConfig(specs=all_specs(), latency_s=0.5, unpriced_usd=0.01, images="preview")
    )
    killed = threading.Event()

    def kill_at_the_first_result(result: Result) -> None:
        del result
        if not killed.is_set():
            killed.set()
            pg_cluster.kill_server()

    try:
        with serving(app) as base:
            backend = segmind_backend(KEY, base_url=base)
            first = execute(
                plan,
                backend=backend,
                out_dir=tmp_path / "out",
                options=RunOptions(concurrency=4, home=home, on_result=kill_at_the_first_result),
            )
            sent_while_down = len(app.state.simulator.state.charges)
            pending = sorted((home / "pending").glob("*.jsonl"))
            pg_cluster.start()
            second = execute(
                plan,
                backend=backend,
                out_dir=tmp_path / "out",
                options=RunOptions(concurrency=4, home=home),
            )
            charges = list(app.state.simulator.state.charges)
    finally:
        if not pg_cluster.running:
            pg_cluster.start()

    # The first run: the four jobs in flight finished; nothing new went out once it was lost.
    assert Counter(r.status for r in first.results) == {"succeeded": 4, "not-sent": 4}
    assert first.aborted is not None
    assert "stopped answering" in first.aborted
    assert sent_while_down == 4
    assert pending, "the jobs in flight were journaled locally"
    # The second run replayed the journal first: it reused the four, and sent only the rest.
    assert Counter(r.status for r in second.results) == {"skipped": 4, "succeeded": 4}
    assert list((home / "pending").glob("*.jsonl")) == []
    assert len(charges) == 8
    assert max(Counter(c.payload_sha256 for c in charges).values()) == 1
    book = Ledger(pg_url, home=home)
    try:
        rows = list(book.jobs_of(first.run_id))
        # The four jobs in flight, as their journaled rows said (jobs never begun have none).
        assert Counter(r["status"] for r in rows) == {"succeeded": 4}
        assert round(sum(r["cost_usd"] or 0 for r in rows), 6) == 0.04
    finally:
        book.close()
