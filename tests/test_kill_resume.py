"""A run killed with SIGKILL at random points, then run again, completes with no job charged twice
and no half-written or lost output (DESIGN.md, Execution).

The simulator runs as a real server in its own process (`render simulate`) and keeps a charge log;
the real `render` console script runs in a subprocess and is killed with SIGKILL, again and again,
at random moments (and at moments picked from what the run is doing: the first send, a picture
being written, after N jobs), then run to the end. The charge log, the ledger (SQLite) and the
output folder are then checked against one another. A second test kills a resumed job between two
ledger writes, a window too narrow for a random delay to find.

KILL_RESUME_SEED=N picks other random delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from engine.client import SegmindClient
from engine.plan import Plan, build_plan
from engine.recipe import load_recipe
from engine.uploads import to_upload
from tests.helpers import ROOT, asset_url, simulator_process, write_tree

RENDER = Path(sys.executable).with_name("render")
KEY = "sk-test"
SEED = int(os.environ.get("KILL_RESUME_SEED", "20261121"))
# The simulator's latency: short, so a whole run takes ~2 s and a kill lands mid-run.
LATENCY_S = "0.2"
# A job's last line; the lines before it (its request leaving, queued) have the first eight.
IN_FLIGHT_KEYS = {"run", "job", "status", "backend", "payload_sha256", "seed", "values", "prompt"}
MANIFEST_KEYS = IN_FLIGHT_KEYS | {"texts", "outputs", "sha256", "cost_usd", "error", "seconds"}

RECIPE = """\
    name: kr
    model: scenecraft
    budget_usd: 100
    matrix:
      product:
        - {id: sofa, image: sofa.png, noun: orange sofa}
        - {id: lamp, image: lamp.png, noun: brass floor lamp}
        - {id: couch, image: sofa.png, noun: green velvet couch}
        - {id: light, image: lamp.png, noun: steel reading light}
      aspect_ratio:
        - "1:1 (Perfect Square)"
        - "4:5 (Artistic Frame)"
        - "16:9 (Panorama)"
        - "9:16 (Slim Vertical)"
        - "3:2 (Golden Landscape)"
        - "2:3 (Classic Portrait)"
    params:
      image: "{{ product.image }}"
      prompt: "Product photo of a {{ product.noun }} in a bright room, sharp focus"
      aspect_ratio: "{{ aspect_ratio }}"
      megapixel: "0.5"
      image_format: png
      seed: auto
    output: "{{ product.id }}/{{ aspect_ratio | slug }}"
    """


def _simulator(logs: Path) -> contextlib.AbstractContextManager[str]:
    """`render simulate` in its own process; yields its base URL once it listens, and always stops
    it (its stderr: logs/simulator.log)."""
    return simulator_process(
        "--latency", LATENCY_S, "--balance", "1000", "--images", "preview",
        log=logs / "simulator.log",
    )  # fmt: skip


def _ledger_rows(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the ledger without writing to it (a run may be writing to it at the same time)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return conn.execute(sql, args).fetchall()


def _sent_yet(db: Path) -> bool:
    """Whether the run has written `sending` (a request is about to leave, or on the wire)."""
    if not db.exists():
        return False
    try:
        return bool(
            _ledger_rows(db, "SELECT 1 FROM jobs WHERE status IN ('sending', 'submitted') LIMIT 1")
        )
    except sqlite3.Error:
        return False  # not created or migrated yet


def _body_hashes(plan: Plan, base: str) -> dict[str, str]:
    """Each job's request body hash, as the simulator's charge log names it (sha256 of the POST
    body): local images go as the URLs the simulator's storage gives them (their sha256)."""

    async def bodies() -> dict[str, str]:
        client = SegmindClient("http://127.0.0.1:9", KEY)
        try:
            found = {}
            for job in plan.jobs:
                urls = {
                    image.path: asset_url(base, image.path)
                    for image in to_upload(plan.spec, job.payload)
                }
                body = await client.body(plan.spec, job.payload, urls=urls)
                found[job.id] = hashlib.sha256(body).hexdigest()
            return found
        finally:
            await client.aclose()

    return asyncio.run(bodies())


def _manifest(path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The manifest's entries, and the lines that are not a JSON object (cut by a kill)."""
    entries: list[dict[str, Any]] = []
    broken: list[bytes] = []
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            broken.append(line)
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            broken.append(line)
    return entries, broken


class _Runs:
    """The real `render` console script against the simulator, in a subprocess per run."""

    def __init__(self, tmp: Path, base: str) -> None:
        self.tmp = tmp
        self.recipe = tmp / "kr.yaml"
        self.out = tmp / "out"
        self.home = tmp / "home"
        self.db = self.home / "ledger.sqlite"
        self.env = {
            **os.environ,
            "SEGMIND_API_KEY": KEY,
            "SEGMIND_BASE_URL": base,
            "RENDER_HOME": str(self.home),
        }
        self.count = 0
        self.log: list[str] = []

    def start(
        self,
        *extra: str,
        command: tuple[str, ...] = (str(RENDER),),
        env: dict[str, str] | None = None,
    ) -> tuple[subprocess.Popen[bytes], Path]:
        self.count += 1
        output = self.tmp / f"run-{self.count}.log"
        with output.open("wb") as log:
            process = subprocess.Popen(
                [*command, str(self.recipe), "--backend", "segmind", "--concurrency", "6",
                 "--yes", "--out", str(self.out), *extra],
                cwd=self.tmp, env={**self.env, **(env or {})}, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        return process, output

    def killed_when(
        self,
        what: str,
        moment: Callable[[], bool],
        extra: float = 0.0,
        *,
        args: tuple[str, ...] = (),
    ) -> bool:
        """Start a run and SIGKILL it ``extra`` seconds after ``moment()`` holds; False if the run
        ended by itself first."""
        process, output = self.start(*args)
        try:
            deadline = time.monotonic() + 30
            while process.poll() is None and not moment():
                assert time.monotonic() < deadline, f"{what}: not within 30 s"
                time.sleep(0.001)
            if extra:
                time.sleep(extra)
            process.kill()
            code = process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.log.append(f"run {self.count}: kill {what} (+{extra * 1000:.0f} ms) -> {code}")
        assert code in {0, 1, -9}, output.read_text(errors="replace")
        return code == -9

    def killed_after(self, delay: float) -> bool:
        started = time.monotonic()
        return self.killed_when(f"after {delay:.2f} s", lambda: time.monotonic() - started >= delay)

    def unsure_jobs(self) -> set[str]:
        """Jobs a killed run left `sending` (reported unknown by the runs after it)."""
        rows = _ledger_rows(
            self.db, "SELECT DISTINCT job_id FROM jobs WHERE status IN ('sending', 'unknown')"
        )
        return {job for (job,) in rows}

    def unsure(self) -> int:
        return len(self.unsure_jobs())

    def succeeded(self) -> int:
        try:
            return int(
                _ledger_rows(self.db, "SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'")[0][0]
            )
        except sqlite3.Error:
            return 0

    def to_the_end(self, *extra: str) -> tuple[int, str]:
        process, output = self.start(*extra)
        try:
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.log.append(f"run {self.count}: {' '.join(extra) or 'to the end'} -> {code}")
        return code, output.read_text(errors="replace")

    def newest_run(self) -> str:
        return str(_ledger_rows(self.db, "SELECT id FROM runs ORDER BY rowid DESC LIMIT 1")[0][0])


def test_runs_killed_at_random_points_resume_without_paying_twice_or_losing_outputs(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    images = ROOT / "recipes" / "images"
    write_tree(
        tmp_path,
        {
            "kr.yaml": RECIPE,
            "sofa.png": (images / "sofa.png").read_bytes(),
            "lamp.png": (images / "lamp.png").read_bytes(),
        },
    )
    plan = build_plan(load_recipe(tmp_path / "kr.yaml"))
    assert not plan.errors
    assert len(plan.jobs) == 24

    with _simulator(tmp_path) as base:
        bodies = _body_hashes(plan, base)
        assert len(set(bodies.values())) == 24, "every job must send a different body"
        by_body = {digest: job for job, digest in bodies.items()}
        runs = _Runs(tmp_path, base)

        # --- kill, re-run, kill again ---------------------------------------------------------
        kills = 0
        # Very early: the process may still be starting, opening the ledger, or planning.
        kills += runs.killed_after(rng.uniform(0.05, 0.25))
        # Just as the first requests leave: nothing has finished, requests are on the wire.
        kills += runs.killed_when(
            "at the first send", lambda: _sent_yet(runs.db), rng.uniform(0.0, 0.03)
        )
        finished = _ledger_rows(
            runs.db, "SELECT job_id FROM jobs WHERE status IN ('succeeded', 'skipped')"
        )
        assert finished == [], f"the early kills came after jobs finished: {finished}"
        # Anywhere in a run (a whole run takes ~2 s).
        kills += runs.killed_after(rng.uniform(0.4, 1.6))
        # While a job's picture is being written (its temporary file exists): the window the atomic
        # write is for. Tried up to three times, until a kill lands in it (or, if no temporary file
        # ever shows in the output folder, after two more jobs).
        parts = runs.out / "kr"

        def writing(done: int) -> Callable[[], bool]:
            return lambda: any(parts.rglob("*.part")) or runs.succeeded() >= done + 2

        for _ in range(3):
            kills += runs.killed_when("while a picture is written", writing(runs.succeeded()))
            if any(parts.rglob("*.part")):
                break
        # After a random number of this run's jobs have finished (mid-poll, mid-download, mid-write).
        done = runs.succeeded()
        more = rng.randint(1, max(1, min(6, 24 - done - runs.unsure() - 1)))
        kills += runs.killed_when(
            f"after {more} more jobs finished",
            lambda: runs.succeeded() >= done + more,
            rng.uniform(0.0, 0.15),
        )
        assert kills >= 4, f"too few runs were actually killed: {runs.log}"

        # Jobs a killed run left `sending` (and the runs after it reported unknown): a request may
        # have gone out for them, so each may have been billed without its answer being seen.
        unsure = runs.unsure_jobs()

        # --- a run to the end -----------------------------------------------------------------
        code, output = runs.to_the_end()
        final_run = runs.newest_run()
        entries, _ = _manifest(runs.out / "kr" / "manifest.jsonl")
        final = {e["job"]: e for e in entries if e["run"] == final_run}
        assert sorted(final) == sorted(job.id for job in plan.jobs), (
            f"the final run's manifest lacks jobs: {sorted(set(bodies) - set(final))}\n{output}"
        )
        statuses = Counter(e["status"] for e in final.values())
        assert set(statuses) <= {"succeeded", "skipped", "unknown"}, f"{statuses}\n{output}"
        unknown_at_end = {job for job, e in final.items() if e["status"] == "unknown"}
        assert unknown_at_end <= unsure, "a job no killed run left `sending` was reported unknown"
        if unknown_at_end:
            assert code == 1, output
            assert "unknown" in output, output
            code, output = runs.to_the_end("--retry-unknown")
        assert code == 0, f"{runs.log}\n{output}"
        last_run = runs.newest_run()

        charges = httpx.get(base + "/_simulator/charges", timeout=10).json()

    # --- nothing charged twice ----------------------------------------------------------------
    counts = Counter(charge["payload_sha256"] for charge in charges["charges"])
    strangers = set(counts) - set(by_body)
    assert not strangers, f"charges for bodies no job sends: {strangers}"
    never = sorted(job for job, digest in bodies.items() if counts[digest] == 0)
    assert not never, f"jobs that were never charged, yet are done: {never}"
    twice = {by_body[digest]: n for digest, n in counts.items() if n > 1}
    assert all(n == 2 for n in twice.values()), f"charged more than twice: {twice}"
    assert set(twice) <= unknown_at_end, (
        f"charged twice though the engine knew the request: {sorted(set(twice) - unknown_at_end)} "
        f"(reported unknown, so re-sent on --retry-unknown: {sorted(unknown_at_end)}); {runs.log}"
    )
    assert charges["balance_usd"] == pytest.approx(
        1000 - sum(c["amount_usd"] for c in charges["charges"])
    )

    # The ledger agrees: each job succeeded exactly once, by a request the simulator billed for it.
    billed = {c["request_id"]: c["payload_sha256"] for c in charges["charges"]}
    succeeded = _ledger_rows(
        runs.db, "SELECT job_id, request_id FROM jobs WHERE status = 'succeeded' ORDER BY rowid"
    )
    assert sorted(job for job, _ in succeeded) == sorted(bodies), (
        f"jobs that did not succeed exactly once: {Counter(j for j, _ in succeeded)}"
    )
    for job, request_id in succeeded:
        assert billed.get(request_id) == bodies[job], f"{job}: request {request_id} was not billed"
    runs_table = dict(_ledger_rows(runs.db, "SELECT id, status FROM runs"))
    assert runs_table[last_run] == "done"

    # --- every output whole, where the plan put it, as the ledger says ---------------------------
    root = runs.out / "kr"
    for job in plan.jobs:
        rows = _ledger_rows(
            runs.db,
            "SELECT output_paths, output_sha256 FROM jobs WHERE job_id = ? "
            "AND status IN ('succeeded', 'skipped') ORDER BY rowid DESC LIMIT 1",
            (job.id,),
        )
        assert rows, f"{job.id}: no succeeded or skipped row in the ledger"
        paths, hashes = (json.loads(value) for value in rows[0])
        assert paths == [job.output], f"{job.id}: the ledger has {paths}"
        assert job.output.endswith(".png")
        data = (root / job.output).read_bytes()
        assert [hashlib.sha256(data).hexdigest()] == hashes, (
            f"{job.id}: the file is not the ledger's"
        )
        with Image.open(root / job.output) as image:
            image.verify()
        with Image.open(root / job.output) as image:
            image.load()
            assert image.format == "PNG"
    # Besides the pictures and the manifest, a run leaves its report: index.html, its thumbnails in
    # .thumbs/ and one runs/<id>.json per run that got to its end.
    found = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith((".thumbs/", "runs/"))
    }
    found.discard("index.html")
    # Temporary files (`.NAME.xxxx.part`, or anything hidden) are checked last, below.
    leftovers = sorted(
        name
        for name in found
        if name.endswith(".part") or any(part.startswith(".") for part in name.split("/"))
    )
    assert not [p for p in (root / ".thumbs").rglob("*") if p.name.endswith(".part")]
    assert set(found) - set(leftovers) == {"manifest.jsonl"} | {job.output for job in plan.jobs}

    # --- the manifest: whole lines, one per job of each run that was not killed ----------------
    entries, broken = _manifest(root / "manifest.jsonl")
    assert len(broken) <= kills, f"more cut manifest lines than kills: {broken}"
    for entry in entries:
        if entry["status"] in {"sending", "submitted"}:
            assert set(entry) - {"request"} == IN_FLIGHT_KEYS, entry
        else:
            assert set(entry) == MANIFEST_KEYS, entry
        assert entry["run"] in runs_table, entry
        assert entry["job"] in bodies, entry
    last = {
        e["job"]: e
        for e in entries
        if e["run"] == last_run and e["status"] not in {"sending", "submitted"}
    }
    assert sorted(last) == sorted(bodies)
    for job in plan.jobs:
        assert last[job.id]["status"] in {"succeeded", "skipped"}, last[job.id]
        assert last[job.id]["outputs"] == [job.output], last[job.id]

    print(
        f"\nkill/resume: {kills} kills, {len(unsure)} jobs left sending/unknown by kills, "
        f"{len(unknown_at_end)} unknown at the end, {len(twice)} charged twice; "
        + "; ".join(runs.log)
    )

    # --- no half-written file left behind -----------------------------------------------------
    # A kill between the temporary file's creation and its rename leaves it: the next run must not
    # keep it (it is a half-written picture, and every killed write adds one more).
    assert not leftovers, f"temporary files left in the output folder: {leftovers}; {runs.log}"


# `render`, with SIGKILL after the Nth statement that writes the jobs table (committed: the ledger
# writes in autocommit). A kill between two ledger writes is too narrow a window for a random delay
# to find, and every prefix of a run's writes must be a state the next run resumes from correctly.
KILL_AFTER_WRITES = """
import os, re, signal, sqlite3, sys

LIMIT = int(os.environ["KILL_AFTER_JOB_WRITES"])
WRITE = re.compile(r"\\s*(INSERT(\\s+OR\\s+\\w+)?\\s+INTO|UPDATE)\\s+jobs\\b", re.IGNORECASE)


class Connection(sqlite3.Connection):
    writes = 0

    def execute(self, sql, *args):
        cursor = super().execute(sql, *args)
        if WRITE.match(sql):
            Connection.writes += 1
            if Connection.writes == LIMIT:
                os.kill(os.getpid(), signal.SIGKILL)
        return cursor


connect = sqlite3.connect
sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=Connection, **kwargs)
from engine.cli import main

main(sys.argv[1:])
"""


@pytest.mark.parametrize("writes", [1, 2, 3])
def test_a_resumed_job_killed_between_ledger_writes_is_not_sent_again(
    tmp_path: Path, writes: int
) -> None:
    """Run A is killed once its job's request id is on disk; run B resumes polling that request and
    is killed after its ``writes``-th write to the jobs table; run C must poll the same request,
    not pay for a new one."""
    images = ROOT / "recipes" / "images"
    write_tree(
        tmp_path,
        {
            "kr.yaml": RECIPE,
            "sofa.png": (images / "sofa.png").read_bytes(),
            "lamp.png": (images / "lamp.png").read_bytes(),
        },
    )
    plan = build_plan(load_recipe(tmp_path / "kr.yaml"), limit=1)
    (job,) = plan.jobs

    with _simulator(tmp_path) as base:
        body = _body_hashes(plan, base)[job.id]
        runs = _Runs(tmp_path, base)

        def queued() -> bool:
            try:
                return bool(
                    _ledger_rows(
                        runs.db,
                        "SELECT 1 FROM jobs WHERE status = 'submitted' AND request_id IS NOT NULL",
                    )
                )
            except sqlite3.Error:
                return False

        assert runs.killed_when("once the request id is on disk", queued, args=("--limit", "1"))
        (request_id,) = _ledger_rows(runs.db, "SELECT request_id FROM jobs")[0]

        process, output = runs.start(
            "--limit",
            "1",
            command=(sys.executable, "-c", KILL_AFTER_WRITES),
            env={"KILL_AFTER_JOB_WRITES": str(writes)},
        )
        try:
            code_b = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        assert code_b in {0, -9}, output.read_text(errors="replace")
        rows_b = _ledger_rows(runs.db, "SELECT run_id, status, request_id FROM jobs ORDER BY rowid")

        code, text = runs.to_the_end("--limit", "1")
        charges = httpx.get(base + "/_simulator/charges", timeout=10).json()["charges"]

    assert code == 0, text
    billed = [c for c in charges if c["payload_sha256"] == body]
    assert [c["request_id"] for c in billed] == [request_id], (
        f"run B killed after {writes} jobs-table write(s) (exit {code_b}) left {rows_b}; "
        f"the next run paid again: {billed}"
    )
    data = (runs.out / "kr" / job.output).read_bytes()
    (stored,) = _ledger_rows(
        runs.db,
        "SELECT output_sha256 FROM jobs WHERE status IN ('succeeded', 'skipped') "
        "ORDER BY rowid DESC LIMIT 1",
    )[0]
    assert [hashlib.sha256(data).hexdigest()] == json.loads(stored)
