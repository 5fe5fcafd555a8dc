"""Issue 14, "done when": a team's processes sharing one ledger in PostgreSQL.

1. Four `render work` processes, concurrency 16 each, share one pool of $5 against the simulator
   with faults (429=0.1,500=0.05,drop=0.02); two of them are SIGKILLed mid-run, at points reached
   by their own progress (a number of job lines printed), and restarted. The simulator's charge
   log then shows: total charged ≤ $5 plus the unknown amount; no payload charged twice; every job
   either succeeded, is unknown (from a drop), or was not sent because the pool ran out.
2. Two `render` processes against a simulator that takes N submissions a window stay under N
   together (every sliding window of request history's submission times), with no job failed for
   a 429: the account's pace is shared in the ledger (PostgreSQL; SQLite in one RENDER_HOME too).

Everything runs for real: the simulator is `render simulate` in its own process on loopback, every
`render` a subprocess (the workers with the rate window scaled, --rate-window), the ledger a throwaway PostgreSQL server (tests/postgres.py; the tests
that need it skip, saying why, only where none can be had). Nothing waits on time: a test waits on
what the processes print and on their exits, with a generous guard against a process that hangs.

The simulator bills sd1.5-scifi, a spec with no price, $0 a request: a charge costs what the pool
holds for its job, the recipe's price_usd, so "charged" below is the charges times that price.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from engine.client import SegmindClient
from engine.plan import build_plan
from engine.recipe import load_recipe
from tests.helpers import simulator_process, write_tree

RENDER = Path(sys.executable).with_name("render")
KEY = "sk-team"
# A guard against a process that neither progresses nor exits, never a wait for an event.
GUARD_S = 120.0

# A job's line as `render` prints it: "[3/120] 17 succeeded $0.05: 17.png" (engine.progress).
_JOB_LINE = re.compile(r"^\[\d+/\d+\] ")


class _Render:
    """A `render` subprocess whose output (stdout and stderr merged) is read line by line as it
    comes, so a test waits on what it says, never on time."""

    def __init__(self, name: str, command: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        cwd.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, encoding="utf-8",
        )  # fmt: skip
        self.lines: list[str] = []
        self.job_lines = 0
        self._ended = False
        self._said = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"{name} output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # drained to the end: a full pipe would stall it
            with self._said:
                self.lines.append(line)
                self.job_lines += bool(_JOB_LINE.match(line))
                self._said.notify_all()
        with self._said:
            self._ended = True
            self._said.notify_all()

    def wait_for_jobs(self, count: int) -> bool:
        """Once it has printed ``count`` job lines (True), or its output ended first (False)."""
        with self._said:
            self._said.wait_for(lambda: self.job_lines >= count or self._ended, timeout=GUARD_S)
            assert self.job_lines >= count or self._ended, (
                f"{self.name}: neither {count} jobs nor an exit in {GUARD_S:.0f} s:\n{self.tail}"
            )
            return self.job_lines >= count

    def kill(self) -> int:
        """SIGKILL, as a machine that dies."""
        self.process.kill()
        return self.finish()

    def finish(self, timeout: float = GUARD_S) -> int:
        """Its exit code once it exits (killed, and a failure, if it outlives ``timeout``)."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"{self.name}: no exit in {timeout:.0f} s:\n{self.tail}") from None
        finally:
            self._reader.join(timeout=10)
            assert self.process.stdout is not None
            self.process.stdout.close()
        return code

    @property
    def text(self) -> str:
        with self._said:
            return "".join(self.lines)

    @property
    def tail(self) -> str:
        with self._said:
            return "".join(self.lines[-30:])


@contextlib.contextmanager
def _processes() -> Iterator[list[_Render]]:
    """Every process the block starts (it appends them), killed if still running at its end."""
    started: list[_Render] = []
    try:
        yield started
    finally:
        for each in started:
            if each.process.poll() is None:
                each.process.kill()
            with contextlib.suppress(AssertionError):
                each.finish(timeout=10)


def _env(base: str, home: Path, ledger: str | None) -> dict[str, str]:
    """`render` pointed at the simulator, with its own RENDER_HOME and, given, a ledger URL."""
    env = {**os.environ, "SEGMIND_API_KEY": KEY, "SEGMIND_BASE_URL": base, "RENDER_HOME": str(home)}
    for name in ("RENDER_LEDGER_URL", "RENDER_SPECS_PATH"):
        env.pop(name, None)
    if ledger is not None:
        env["RENDER_LEDGER_URL"] = ledger
    return env


def _render(args: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    """`render ARGS` to its end, which must be a success; what it printed on stdout."""
    done = subprocess.run(
        [str(RENDER), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=GUARD_S,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"render {' '.join(args)} -> {done.returncode}:\n{done.stdout}{done.stderr}"  # fmt: skip
    return done.stdout


def _charges(base: str) -> dict[str, Any]:
    """The simulator's charge log (engine/simulator/app.py: balance, charges, 429s answered)."""
    answer = httpx.get(f"{base}/_simulator/charges", timeout=30)
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def _rows(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql, args).fetchall()


def _body_hashes(recipe: Path) -> dict[str, str]:
    """Each job's request body hash, as the simulator's charge log names it (sha256 of the POST)."""
    plan = build_plan(load_recipe(recipe))

    async def bodies() -> dict[str, str]:
        client = SegmindClient("http://127.0.0.1:9", KEY)
        try:
            return {
                job.id: hashlib.sha256(await client.body(plan.spec, job.payload)).hexdigest()
                for job in plan.jobs
            }
        finally:
            await client.aclose()

    return asyncio.run(bodies())


# --- 1. four workers, one pool, two of them killed ------------------------------------------------

POOL_USD = 5.0
PRICE_USD = 0.05
JOBS = 120  # $6 of jobs against the $5 pool: it runs out (100 jobs fit)
WORKERS = 4
# Worker → the job lines it prints before it is SIGKILLed (each one's share of the 100 is ~25).
KILL_AFTER = {0: 6, 1: 12}
# Segmind's rate window ("a minute"), scaled for the workers as test_real_api scales it: at 60 s
# every injected 429 (its reset 1-2 s away) would be learned as the account's limit.
WORKER_WINDOW_S = "1"
RENDER = str(Path(sys.executable).with_name("render"))

TEAM_RECIPE = f"""\
    name: team
    model: sd1.5-scifi
    price_usd: {PRICE_USD}
    budget_usd: 100
    matrix:
      n: {list(range(JOBS))}
    params:
      prompt: "a sci-fi city, district number {{{{ n }}}}"
      base64: true
    """

# The error of a job the pool refused (engine.pools).
_POOL_SPENT = "the pool team ($5.00 in all) is spent"
# A job's rows whose request left, or was about to, with no answer: the money is in flight.
_IN_FLIGHT = ("sending", "submitted", "unknown")
_OUTCOMES = {"succeeded", "unknown", "not sent: the pool ran out"}


def test_four_workers_two_killed_share_one_pool_without_passing_it_or_paying_twice(
    tmp_path: Path, pg_url: str
) -> None:
    started_at = time.monotonic()
    write_tree(tmp_path, {"team.yaml": TEAM_RECIPE})
    bodies = _body_hashes(tmp_path / "team.yaml")
    assert len(set(bodies.values())) == JOBS, "every job a payload of its own"
    with (
        simulator_process(
            "--latency", "0.05", "--faults", "429=0.1,500=0.05,drop=0.02", "--seed", "14",
            "--balance", "1000", "--images", "tiny", log=tmp_path / "simulator.log",
        ) as base,
        _processes() as started,
    ):  # fmt: skip
        admin = _env(base, tmp_path / "admin", pg_url)
        _render(["budget", "set", "team", str(POOL_USD), "--period", "total"], cwd=tmp_path, env=admin)  # fmt: skip
        said = _render(["submit", "team.yaml", "--pool", "team", "--yes"], cwd=tmp_path, env=admin)
        found = re.search(r"^submitted (\S+):", said, re.MULTILINE)
        assert found is not None, said
        run = found.group(1)

        def worker(number: int, life: int) -> _Render:
            folder = tmp_path / f"worker-{number}"  # its working folder, outputs and RENDER_HOME
            env = _env(base, folder / "home", pg_url)
            command = [RENDER, "work", "--run", run, "--concurrency", "16", "--lease", "3",
                       "--rate-window", WORKER_WINDOW_S]  # fmt: skip
            process = _Render(f"worker {number}.{life}", command, cwd=folder, env=env)
            started.append(process)
            return process

        current = {number: worker(number, 1) for number in range(WORKERS)}
        kills: list[str] = []
        for number, lines in KILL_AFTER.items():
            victim = current[number]
            assert victim.wait_for_jobs(lines), (
                f"{victim.name} ended before its kill:\n{victim.tail}"
            )
            code = victim.kill()
            kills.append(f"{victim.name} killed after {victim.job_lines} job lines ({code})")
            current[number] = worker(number, 2)
        codes = {each.name: each.finish() for each in started if each.process.returncode is None}
        said_by = {each.name: each.text for each in started}
        for name, text in said_by.items():
            assert "Traceback" not in text, f"{name}:\n{text}"
        charges = _charges(base)
        (pool,) = json.loads(_render(["budget", "show", "--json"], cwd=tmp_path, env=admin))

    # 3: the pool refused jobs (1: some unknown); anything else is a crash, or a worker that died.
    assert set(codes.values()) <= {1, 3}, codes

    # --- the judge: the simulator's charge log, and the ledger -------------------------------------
    charged = [charge["payload_sha256"] for charge in charges["charges"]]
    billed = Counter(charged)
    twice = {body: times for body, times in billed.items() if times > 1}
    assert not twice, f"payloads charged more than once: {twice}"
    assert set(billed) <= set(bodies.values()), "a charge for a payload of no job of the recipe"

    # Each job's newest row over the workers of the submitted run.
    newest: dict[str, tuple[str, str | None]] = {}
    for job_id, state, error in _rows(
        pg_url,
        "SELECT jobs.job_id, jobs.status, jobs.error FROM jobs "
        "JOIN runs ON runs.id = jobs.run_id WHERE runs.batch = %s AND runs.id <> %s "
        "ORDER BY jobs.rowid",
        (run, run),
    ):
        newest[job_id] = (state, error)
    queue = dict(_rows(pg_url, "SELECT job_id, state FROM queue WHERE run_id = %s", (run,)))
    assert sorted(queue) == sorted(bodies), "the queue holds every job of the recipe, once"
    # What nobody knows the fate of: the rows sent (or about to be) and never answered.
    ((unknown_usd,),) = _rows(
        pg_url,
        "SELECT COALESCE(SUM(jobs.reserved_usd), 0) FROM jobs JOIN runs ON runs.id = jobs.run_id "
        f"WHERE runs.batch = %s AND jobs.status IN {_IN_FLIGHT}",
        (run,),
    )
    charged_usd = len(charged) * PRICE_USD
    assert charged_usd <= POOL_USD + unknown_usd + 1e-9, (charged_usd, unknown_usd)
    # The engine's own claim: the pool's money as the ledger keeps it never passed the cap.
    assert pool["spent_usd"] + pool["in_flight_usd"] + pool["held_usd"] <= POOL_USD + 1e-9, pool
    assert pool["left_usd"] < PRICE_USD, (
        f"the pool did not run out: the test proves nothing: {pool}"
    )
    # And it was used to its last job: what the killed workers held came back to the others
    # (they wait for holds of other processes rather than stop), none of it is still held.
    assert pool["held_usd"] == 0, pool
    assert pool["spent_usd"] + pool["in_flight_usd"] > POOL_USD - PRICE_USD, pool

    outcome: dict[str, str] = {}
    for job_id, body in bodies.items():
        state, error = newest.get(job_id, ("", None))
        if state == "succeeded":
            assert billed[body] == 1, f"job {job_id} succeeded; billed {billed[body]} times"
            outcome[job_id] = "succeeded"
        elif state in {*_IN_FLIGHT, "held"}:  # held: another row of it is unknown
            outcome[job_id] = "unknown"
        elif state in {"", "not-sent", "waiting"} and queue[job_id] in {"queued", "claimed"}:
            # Refused by the pool (it stays queued, for a raised pool), or never taken, or taken by
            # a worker killed before it sent it (no row, or `waiting`: its tries were refused) and
            # not taken again, the pool spent meanwhile.
            assert not billed[body], f"job {job_id} was not sent ({error}), but it was billed"
            outcome[job_id] = "not sent: the pool ran out"
        else:
            outcome[job_id] = f"{state or 'no row'}, queue {queue[job_id]}: {error}"
    tally = Counter(outcome.values())
    # The jobs the pool refused, as the workers said (such a job leaves no row: it stays queued).
    refused = sum(text.count(_POOL_SPENT) for text in said_by.values())
    # Unknown jobs whose request Segmind never took: no drop lost their answer.
    never_sent = Counter(
        newest[job][0]
        for job, what in outcome.items()
        if what == "unknown" and not billed[bodies[job]]
    )
    print(
        f"\npool: {len(charged)} charges = ${charged_usd:.2f} charged (the simulator's amounts: "
        f"${sum(c['amount_usd'] for c in charges['charges']):.2f}), ${unknown_usd:.2f} unknown; "
        f"ledger's pool {pool}; jobs {dict(tally)}, {refused} refused by the pool; unknown, never "
        f"sent: {dict(never_sent)}; 429s answered {charges['rate_limited']}; {'; '.join(kills)}; "
        f"exit codes {codes}; {time.monotonic() - started_at:.1f} s"
    )
    odd = {job: what for job, what in outcome.items() if what not in _OUTCOMES}
    assert not odd, (
        f"jobs that neither succeeded, are unknown, nor were left by a spent pool: {odd}"
    )
    assert refused, "no job was refused by the pool"
    # Unknown is what a drop leaves: Segmind took the request (and billed it), its answer lost. A
    # worker killed with a request on the wire may leave one of its own unknown and unbilled (it
    # never arrived): at most one a kill, the pace spacing the requests. A job waiting for its
    # turn, or for its next try, is not on the wire: it must not be left unknown by a kill.
    assert sum(never_sent.values()) <= len(KILL_AFTER), (
        f"unknown jobs whose request never reached Segmind: {dict(never_sent)}"
    )


# --- 2. two processes, one account's rate limit -----------------------------------------------------

RATE_N = 20  # submissions the simulator takes per key in any RATE_WINDOW_S
RATE_WINDOW_S = 2.0
RATE_JOBS = 40  # each process's: 80 submissions together, four windows' worth
HISTORY_SLACK_S = 0.1


def _rate_recipe(name: str) -> str:
    return f"""\
        name: {name}
        model: sd1.5-scifi
        price_usd: 0.01
        budget_usd: 5
        matrix:
          n: {list(range(RATE_JOBS))}
        params:
          prompt: "{name}: a sci-fi harbour, pier number {{{{ n }}}}"
          base64: true
        """


def _submissions(base: str) -> list[tuple[datetime, str]]:
    """When each request the simulator took was made, and its prompt (request history: every
    accepted submission, newest first, a page at a time)."""
    found: list[tuple[datetime, str]] = []
    with httpx.Client(base_url=base, headers={"x-api-key": KEY}, timeout=30) as client:
        for page in range(1, 100):
            answer = client.get(
                "/inference-request/request-history", params={"page": page, "per_page": 100}
            )
            answer.raise_for_status()
            data = answer.json()
            found += [
                (datetime.fromisoformat(row["created_at"]), str(row["request_body"]["prompt"]))
                for row in data["data"]
            ]
            if page * 100 >= data["total"]:
                break
    return sorted(found)


def _most_in_a_window(times: list[datetime], window_s: float) -> int:
    """The most submissions in any sliding window of ``window_s`` (the simulator's: a submission
    taken at t holds a slot until t + window_s)."""
    seconds = [moment.timestamp() for moment in times]
    return max(
        (sum(1 for later in seconds[i:] if later - first < window_s) for i, first in enumerate(seconds)),
        default=0,
    )  # fmt: skip


@pytest.mark.parametrize("ledger", ["postgresql", "sqlite"])
def test_two_processes_on_one_account_stay_under_its_rate_limit_together(
    tmp_path: Path, request: pytest.FixtureRequest, ledger: str
) -> None:
    started_at = time.monotonic()
    # PostgreSQL: each process a RENDER_HOME of its own, one ledger URL. SQLite: one RENDER_HOME.
    url = request.getfixturevalue("pg_url") if ledger == "postgresql" else None
    names = ("harbour-a", "harbour-b")
    write_tree(tmp_path, {f"{name}.yaml": _rate_recipe(name) for name in names})
    window = f"{RATE_WINDOW_S:g}"
    with (
        simulator_process(
            "--rpm", str(RATE_N), "--rate-window", window, "--latency", "0.05",
            "--images", "tiny", "--balance", "1000", log=tmp_path / "simulator.log",
        ) as base,
        _processes() as started,
    ):  # fmt: skip
        homes = {name: tmp_path / (f"home-{name}" if url else "home") for name in names}
        if url is None:
            # The shared ledger made first, as a team's folder has one: two processes creating a
            # new SQLite file at the same moment can fail, "database is locked" (its switch to
            # WAL), which is not what this test is about.
            _render(["ledger", "migrate"], cwd=tmp_path, env=_env(base, homes[names[0]], None))
        for name in names:
            command = [str(RENDER), f"{name}.yaml", "--backend", "segmind", "--yes", "--rpm",
                       str(RATE_N), "--rate-window", window, "--concurrency", "8"]  # fmt: skip
            started.append(_Render(name, command, cwd=tmp_path, env=_env(base, homes[name], url)))
        codes = {each.name: each.finish() for each in started}
        charges = _charges(base)
        submitted = _submissions(base)
        runs = json.loads(
            _render(["ledger", "--json"], cwd=tmp_path, env=_env(base, homes[names[0]], url))
        )["runs"]

    for each in started:
        assert codes[each.name] == 0, f"{each.name} -> {codes[each.name]}:\n{each.tail}"
        assert f"{each.name}: {RATE_JOBS} succeeded;" in each.text, each.tail
    billed = Counter(charge["payload_sha256"] for charge in charges["charges"])
    assert len(billed) == sum(billed.values()) == 2 * RATE_JOBS, "each job billed once"
    assert len(submitted) == 2 * RATE_JOBS, "every submission Segmind took became a job"
    # Both ran at once: each one's submissions began before the other's ended.
    spans = {
        name: [moment for moment, prompt in submitted if prompt.startswith(f"{name}:")]
        for name in names
    }
    assert all(len(times) == RATE_JOBS for times in spans.values())
    assert max(t[0] for t in spans.values()) < min(t[-1] for t in spans.values()), "not at once"
    # History's time is the job's creation, a moment after the simulator counted its submission
    # against the window (it reads the body in between): a little slack for that moment.
    times = [moment for moment, _ in submitted]
    most = _most_in_a_window(times, RATE_WINDOW_S - HISTORY_SLACK_S)
    assert most <= RATE_N, f"{most} submissions in {RATE_WINDOW_S:g} s: the limit is {RATE_N}"
    # Every 429 the simulator answered, each run counted: none was lost, none failed a job.
    ours = [run for run in runs if run["recipe"] in names]
    assert sorted(run["recipe"] for run in ours) == sorted(names)
    told = sum(run["rate_limited"] or 0 for run in ours)
    assert told == charges["rate_limited"], (told, charges["rate_limited"])
    print(
        f"\nrate ({ledger}): {len(submitted)} submissions, at most {most} in any "
        f"{RATE_WINDOW_S - HISTORY_SLACK_S:g} s ({_most_in_a_window(times, RATE_WINDOW_S)} in "
        f"{RATE_WINDOW_S:g} s; limit {RATE_N}); 429s answered {charges['rate_limited']} (the runs counted "
        f"{[run['rate_limited'] for run in ours]}, learned {[run['learned_rpm'] for run in ours]}); "
        f"{time.monotonic() - started_at:.1f} s"
    )
    # Shared, the pace keeps the two together under the limit: a 429 is an accident of timing.
    assert charges["rate_limited"] <= 3, f"{charges['rate_limited']} submissions answered 429"
