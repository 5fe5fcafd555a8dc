"""Ctrl-C: the run stops cleanly, exits 130, records what finished, and the next run completes it."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from engine.simulator import SimulatorConfig, all_specs, create_app, serving
from tests.helpers import SimClock, interruptible, write_tree

RECIPE = """\
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      n: [0, 1, 2, 3, 4, 5, 6, 7]
    params:
      prompt: "city {{ n }}"
      base64: true
    """


class _FirstPolls:
    """Sets ``polled`` once each of ``jobs`` queued requests has been polled. A run writes a
    request's id to its ledger before it first polls it: a poll says the id is on disk."""

    def __init__(self, app: ASGIApp, jobs: int, polled: threading.Event) -> None:
        self.app = app
        self.jobs = jobs
        self.polled = polled
        self.seen: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            request = re.search(r"/requests/([0-9a-f]+)", scope["path"])
            if request:
                self.seen.add(request.group(1))
                if len(self.seen) >= self.jobs:
                    self.polled.set()
        await self.app(scope, receive, send)


def test_ctrl_c_exits_130_and_the_next_run_finishes_without_paying_twice(tmp_path: Path) -> None:
    write_tree(tmp_path, {"r.yaml": RECIPE})
    # Stopped: a queued job finishes when the test moves the clock on, never by itself.
    clock = SimClock(running=False)
    app = create_app(
        SimulatorConfig(specs=all_specs(), latency_s=1.5, unpriced_usd=0.01, images="tiny"),
        clock=clock,
    )
    every_job_polled = threading.Event()
    app.add_middleware(_FirstPolls, jobs=8, polled=every_job_polled)
    render = Path(sys.executable).with_name("render")
    env = {**os.environ, "SEGMIND_API_KEY": "sk-test", "RENDER_HOME": str(tmp_path / "home")}
    with serving(app) as base:
        env["SEGMIND_BASE_URL"] = base
        command = [
            str(render),
            "r.yaml",
            "--backend",
            "segmind",
            "--concurrency",
            "8",
            "--out",
            "out",
        ]
        process = subprocess.Popen(
            interruptible(command),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        state = app.state.simulator.state
        # Every job queued at Segmind with its request id on record; none can have finished. (The
        # timeout only keeps a broken run from hanging the suite.)
        if not every_job_polled.wait(timeout=60):
            process.kill()
            raise AssertionError(f"the run never queued its jobs: {process.communicate()}")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
        assert process.returncode == 130
        assert "interrupted: what finished is recorded" in err
        # Issue 10: the hint is the exact command to run (never with --force, which pays again).
        assert err.endswith(
            "requests already sent are collected, not paid again, by running:\n"
            "  render r.yaml --backend segmind --out out\n"
        ), err
        assert "Traceback" not in err
        ledger = sqlite3.connect(tmp_path / "home" / "ledger.sqlite")
        assert ledger.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
        assert {row[0] for row in ledger.execute("SELECT status FROM jobs")} == {"submitted"}
        ledger.close()
        # The queued jobs finish at Segmind, and are billed, though nobody polls.
        clock.advance(1.5)
        state.settle()
        assert len(state.charges) == 8
        # Issue 10: even with --force, a job with a request id is collected, never sent again.
        done = subprocess.run(
            [*command, "--force"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert len(state.charges) == 8  # collected by polling, not sent again
        assert len({charge.payload_sha256 for charge in state.charges}) == 8
    assert len(list((tmp_path / "out" / "r").glob("*.png"))) == 8
