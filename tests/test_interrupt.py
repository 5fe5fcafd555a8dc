"""Ctrl-C: the run stops cleanly, exits 130, records what finished, and the next run completes it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine.simulator import SimulatorConfig, all_specs, create_app, serving
from tests.helpers import write_tree

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


def _submitted(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    connection = sqlite3.connect(ledger)
    try:
        return int(
            connection.execute("SELECT COUNT(*) FROM jobs WHERE status = 'submitted'").fetchone()[0]
        )
    except sqlite3.OperationalError:  # the run has not created its tables yet
        return 0
    finally:
        connection.close()


def test_ctrl_c_exits_130_and_the_next_run_finishes_without_paying_twice(tmp_path: Path) -> None:
    write_tree(tmp_path, {"r.yaml": RECIPE})
    app = create_app(
        SimulatorConfig(specs=all_specs(), latency_s=1.5, unpriced_usd=0.01, images="tiny")
    )
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
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        charges = app.state.simulator.state.charges
        deadline = time.monotonic() + 20
        while _submitted(tmp_path / "home" / "ledger.sqlite") < 8:
            # Every job queued at Segmind with its request id on record; none finished yet.
            assert time.monotonic() < deadline, "the run never queued its jobs"
            time.sleep(0.02)
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
        time.sleep(1.6)  # the queued jobs finish at Segmind, and are billed, though nobody polls
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
        assert len(charges) == 8  # collected by polling, not sent again
        assert len({charge.payload_sha256 for charge in charges}) == 8
    assert len(list((tmp_path / "out" / "r").glob("*.png"))) == 8
