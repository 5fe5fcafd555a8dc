"""Issue 10, "done when": random sequences of runs of one recipe, and what Segmind billed for them.

Hypothesis draws sequences of `render` runs against the simulator with dropped answers and 5xx:
plain, `--force`, `--retry-unknown`, `--only`, `--limit`, from two working folders into two output
folders, some with a ledger of their own, some interrupted (Ctrl-C) or killed (SIGKILL) after a
drawn number of ledger writes. After every sequence the simulator's charge log is the judge:

- no payload is charged twice, except by a run that asked to pay again (`--force`) or to re-send
  what nobody knows about (`--retry-unknown`) and selected it, or by a run that shared neither the
  ledger nor the output folder of any run that sent it (nothing could tell it);
- the ledgers' spent total is exactly what was billed for the requests they say succeeded, and
  whatever else was billed is within their unknown total;
- every output file present decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.client import SegmindClient
from engine.plan import build_plan
from engine.recipe import load_recipe
from engine.simulator import SimulatorConfig, all_specs, create_app, parse_faults, serving
from tests.helpers import write_tree

KEY = "sk-property"
JOBS = 5
RECIPE = f"""\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      n: {list(range(JOBS))}
    params:
      prompt: "a sci-fi city numbered {{{{ n }}}}"
      base64: true
    """

# `render`, with a signal to itself after the Nth write to the ledger's jobs table: interruptions
# at points drawn by the test, reached by the run's own progress, never by a timer.
LAUNCHER = """
import os, re, signal, sqlite3, sys

# Ctrl-C as in a terminal, even where the test runs as a background job (SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
LIMIT = int(os.environ.get("STOP_AFTER_JOB_WRITES", "0"))
SIGNAL = getattr(signal, os.environ.get("STOP_WITH", "SIGKILL"))
WRITE = re.compile(r"\\s*(INSERT(\\s+OR\\s+\\w+)?\\s+INTO|UPDATE)\\s+jobs\\b", re.IGNORECASE)


class Connection(sqlite3.Connection):
    writes = 0

    def execute(self, sql, *args):
        cursor = super().execute(sql, *args)
        if LIMIT and WRITE.match(sql):
            Connection.writes += 1
            if Connection.writes == LIMIT:
                os.kill(os.getpid(), SIGNAL)
        return cursor


connect = sqlite3.connect
sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=Connection, **kwargs)
from engine.cli import main

main(sys.argv[1:])
"""


@dataclass(frozen=True)
class Step:
    """One `render` run of the sequence."""

    force: bool
    retry_unknown: bool
    narrow: tuple[str, int] | None  # ("only", n) or ("limit", k)
    from_sub: bool
    out: str
    own_ledger: bool
    stop_after: int  # 0: never
    stop_with: str

    def selected(self) -> set[int]:
        if self.narrow is None:
            return set(range(JOBS))
        kind, value = self.narrow
        return {value} if kind == "only" else set(range(value))

    def args(self) -> list[str]:
        prefix = "../" if self.from_sub else ""
        words = [f"{prefix}city.yaml", "--backend", "segmind", "--out", f"{prefix}{self.out}"]
        words += ["--force"] if self.force else []
        words += ["--retry-unknown"] if self.retry_unknown else []
        if self.narrow is not None:
            kind, value = self.narrow
            words += ["--only", f"n={value}"] if kind == "only" else ["--limit", str(value)]
        return words


steps = st.builds(
    Step,
    force=st.booleans(),
    retry_unknown=st.booleans(),
    narrow=st.one_of(
        st.none(),
        st.tuples(st.just("only"), st.integers(0, JOBS - 1)),
        st.tuples(st.just("limit"), st.integers(1, JOBS)),
    ),
    from_sub=st.booleans(),
    out=st.sampled_from(["o1", "o2"]),
    own_ledger=st.booleans(),
    stop_after=st.sampled_from([0, 0, 1, 2, 3, 5, 8, 12]),
    stop_with=st.sampled_from(["SIGKILL", "SIGINT"]),
)


class _Clock:
    """The simulator's clock: real time, plus whatever the test adds to finish every queued job."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def _body_hashes(root: Path) -> dict[int, str]:
    """Each job's request body hash, as the simulator's charge log names it."""
    plan = build_plan(load_recipe(root / "city.yaml"))

    async def bodies() -> dict[int, str]:
        client = SegmindClient("http://127.0.0.1:9", KEY)
        try:
            return {
                int(job.id): hashlib.sha256(await client.body(plan.spec, job.payload)).hexdigest()
                for job in plan.jobs
            }
        finally:
            await client.aclose()

    return asyncio.run(bodies())


def _ledger_money(db: Path) -> tuple[dict[str, float], float]:
    """Billed request ids (succeeded, or paid and not fetched yet) with their recorded cost, and
    the unknown total, of one ledger. A request's money is on one row; a later run that fetched
    or reused its outputs records them at no cost."""
    if not db.exists():
        return {}, 0.0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        spent: dict[str, float] = {}
        for request_id, cost in conn.execute(
            "SELECT request_id, cost_usd FROM jobs WHERE status IN ('succeeded', 'unfetched')"
        ):
            assert not (cost and spent.get(request_id)), f"request {request_id} spent twice"
            spent[request_id] = spent.get(request_id, 0.0) + (cost or 0.0)
        (unknown,) = conn.execute(
            "SELECT COALESCE(SUM(reserved_usd), 0) FROM jobs "
            "WHERE status IN ('sending', 'submitted', 'unknown')"
        ).fetchone()
    return spent, float(unknown)


@contextlib.contextmanager
def _segmind(clock: _Clock) -> Iterator[tuple[Any, str]]:
    app = create_app(
        SimulatorConfig(
            specs=all_specs(),
            latency_s=0.1,
            retry_after_s=0,
            unpriced_usd=0.01,
            images="tiny",
            faults=parse_faults("500=0.1,drop=0.1"),
            seed=11,
        )
    )
    app.state.simulator.state.clock = clock
    with serving(app) as base:
        yield app, base


def _paid_again_allowed(step: Step, earlier: list[Step]) -> set[int]:
    """The jobs ``step`` may pay for again: those it asks to (``--force``, ``--retry-unknown``),
    and those no earlier run could have told it of: none shared its ledger or its output folder."""
    if step.force or step.retry_unknown:
        return step.selected()
    return {
        n
        for n in step.selected()
        if any(n in before.selected() for before in earlier)
        and not any(
            n in before.selected()
            and (before.own_ledger == step.own_ledger or before.out == step.out)
            for before in earlier
        )
    }


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(steps, min_size=2, max_size=4))
def test_random_runs_never_pay_twice_and_the_ledger_matches_the_bill(
    tmp_path_factory: Any, sequence: list[Step]
) -> None:
    root = tmp_path_factory.mktemp("property")
    write_tree(root, {"city.yaml": RECIPE, "sub/.keep": ""})
    bodies = _body_hashes(root)
    clock = _Clock()
    allowed: Counter[str] = Counter(dict.fromkeys(bodies.values(), 1))
    log: list[str] = []
    earlier: list[Step] = []
    with _segmind(clock) as (app, base):
        for step in sequence:
            for n in _paid_again_allowed(step, earlier):
                allowed[bodies[n]] += 1
            earlier.append(step)
            env = {
                **os.environ,
                "SEGMIND_API_KEY": KEY,
                "SEGMIND_BASE_URL": base,
                "XDG_DATA_HOME": str(root / "data"),
                "STOP_AFTER_JOB_WRITES": str(step.stop_after),
                "STOP_WITH": step.stop_with,
            }
            env.pop("RENDER_HOME", None)
            if step.own_ledger:
                env["RENDER_HOME"] = str(root / "other-home")
            done = subprocess.run(
                [sys.executable, "-c", LAUNCHER, *step.args()],
                cwd=root / "sub" if step.from_sub else root,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            log.append(f"{step} -> {done.returncode}")
            assert done.returncode in {0, 1, 130, -signal.SIGKILL}, (done.stdout, done.stderr, log)
            assert "Traceback" not in done.stderr, (done.stderr, log)
        # Every request still queued finishes (and is billed) as if an hour went by.
        clock.offset += 3600
        state = app.state.simulator.state
        state.settle()
        charges = list(state.charges)

    billed = Counter(charge.payload_sha256 for charge in charges)
    for body, count in billed.items():
        assert count <= allowed[body], f"charged {count} times, allowed {allowed[body]}: {log}"
    spent, unknown = _ledger_money(root / "data" / "render" / "ledger.sqlite")
    other_spent, other_unknown = _ledger_money(root / "other-home" / "ledger.sqlite")
    by_request = {charge.request_id: charge.amount_usd for charge in charges}
    recorded = {**spent, **other_spent}
    for request_id, cost in recorded.items():
        assert by_request.get(request_id) == cost, f"{request_id}: not billed as recorded; {log}"
    unexplained = sum(a for r, a in by_request.items() if r not in recorded)
    assert unexplained <= unknown + other_unknown + 1e-9, (unexplained, unknown, other_unknown, log)

    if os.environ.get("MONEY_PROPERTY_VERBOSE"):
        print(f"\n{len(charges)} charges, {unexplained:.2f} unexplained; " + "; ".join(log))
    for picture in root.glob("o*/city/*.png"):
        with Image.open(picture) as image:
            image.load()
