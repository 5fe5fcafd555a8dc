"""The executor under faults, against the simulator on a real loopback socket.

What DESIGN.md (Execution, Reliability) promises: the budget cap holds under any concurrency and any
fault, nothing is paid twice, a 401/406 aborts the run (exit 4), 429s are waited out, a FAILED or 400
fails only its job, unknown outcomes are counted and re-sent only on request, a killed v2 run resumes
by polling, and the API key reaches no file the engine writes. Every charge is read from the
simulator's own charge log, never from what the engine says about itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import tenacity
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.backends import segmind_backend
from engine.budget import Budget
from engine.cli import cli
from engine.client import SegmindClient
from engine.executor import execute
from engine.ledger import Ledger
from engine.outputs import OutputStore
from engine.plan import Plan, build_plan
from engine.ratelimit import Pace
from engine.recipe import load_recipe
from engine.results import RunOptions, RunSummary
from engine.retrying import RetryPolicy
from engine.runner import Runner
from engine.simulator import (
    Charge,
    Simulator,
    SimulatorConfig,
    all_specs,
    create_app,
    parse_faults,
    serving,
)
from tests.helpers import ROOT, SimClock, interrupt_when_queued, write_tree

KEY = "sk-test-key"
PRICE = 0.01
SCIFI_PATH = "/v2/sd1.5-scifi"
SOFA = ROOT / "recipes" / "images" / "sofa.png"


# --- helpers ----------------------------------------------------------------------------------


def make_app(
    *,
    clock: Callable[[], float] | None = None,
    now: datetime | None = None,
    **options: Any,
) -> Starlette:
    """A simulator over every spec: fast, tiny images, and the recipe's price for sd1.5-scifi.

    Its clock is a running SimClock unless ``clock`` is given (``now``: the wall-clock time the
    clock's reading 0 stands for): a test moves it on instead of waiting for queued jobs to end.
    """
    config: dict[str, Any] = {
        "specs": all_specs(),
        "latency_s": 0.05,
        "retry_after_s": 0,
        "unpriced_usd": PRICE,
        "images": "tiny",
        **options,
    }
    app = create_app(SimulatorConfig(**config), clock=clock or SimClock(), now=now)
    app.state.posts = []
    app.add_middleware(_CountPosts, seen=app.state.posts)
    return app


class _CountPosts:
    """Counts every POST that reaches the server, refused ones (401) included."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Submissions only: uploads to Storage are never billed.
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] != "/upload-asset"
        ):
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


class _Switch:
    """One server whose behaviour a test changes half-way (Segmind dropping answers, then not)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def sim(app: Starlette) -> Simulator:
    found = app.state.simulator
    assert isinstance(found, Simulator)
    return found


def charges(app: Starlette) -> list[Charge]:
    """The charge log once every queued request has finished (a dropped one still bills): the
    simulator's clock is moved on to the moment the last one ends, never waited for."""
    state = sim(app).state
    clock = state.clock
    assert isinstance(clock, SimClock)
    ends = [job.done_at for job in list(state.jobs.values()) if job.done_at is not None]
    clock.advance_to(max(ends, default=0.0))
    state.settle()
    return list(state.charges)


def posts(app: Starlette) -> int:
    """Every submission that reached the simulator."""
    seen = app.state.posts
    assert isinstance(seen, list)
    return len(seen)


def scifi_recipe(root: Path, count: int, *, name: str = "faults", copies: int = 1) -> Path:
    """``count`` distinct sd1.5-scifi jobs at $0.01; ``copies`` > 1 adds an axis no param uses."""
    numbers = ", ".join(str(i) for i in range(count))
    copy_axis = f"  copy: [{', '.join(f'c{i}' for i in range(copies))}]\n" if copies > 1 else ""
    text = (
        f"name: {name}\n"
        "model: sd1.5-scifi\n"
        f"price_usd: {PRICE}\n"
        "matrix:\n"
        f"  n: [{numbers}]\n"
        f"{copy_axis}"
        "params:\n"
        '  prompt: "a sci-fi city numbered {{ n }}"\n'
    )
    write_tree(root, {f"{name}.yaml": text})
    return root / f"{name}.yaml"


def scenecraft_recipe(root: Path, *, name: str = "shots") -> Path:
    """Three scenecraft jobs (one per aspect ratio) placing sofa.png, beside the recipe."""
    write_tree(
        root,
        {
            "sofa.png": SOFA.read_bytes(),
            f"{name}.yaml": f"""\
                name: {name}
                model: scenecraft
                budget_usd: 5
                matrix:
                  aspect_ratio: ["1:1 (Perfect Square)", "16:9 (Panorama)", "4:5 (Artistic Frame)"]
                params:
                  image: sofa.png
                  prompt: "Product photo of a mid-century sofa in a sunlit living room"
                  aspect_ratio: "{{{{ aspect_ratio }}}}"
                output: "sofa-{{{{ aspect_ratio | slug }}}}"
                """,
        },
    )
    return root / f"{name}.yaml"


def plan_of(path: Path) -> Plan:
    plan = build_plan(load_recipe(path))
    assert plan.errors == ()
    return plan


def bodies(plan: Plan) -> dict[str, bytes]:
    """Each job's request body, exactly as the client sends it (what the simulator hashes)."""

    async def build() -> dict[str, bytes]:
        client = SegmindClient("http://unused.invalid", KEY)
        try:
            return {job.id: await client.body(plan.spec, job.payload) for job in plan.jobs}
        finally:
            await client.aclose()

    return asyncio.run(build())


def body_sha256s(plan: Plan) -> dict[str, str]:
    """Charge-log hash → job id."""
    return {hashlib.sha256(body).hexdigest(): job for job, body in bodies(plan).items()}


def options(**changes: Any) -> RunOptions:
    fast: dict[str, Any] = {
        "concurrency": 8,
        # The simulator's injected 429s are not a rate limit: a short window keeps what the pace
        # learns from them from slowing the run for a whole minute.
        "rate_window_s": 1.0,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        **changes,
    }
    return RunOptions(**fast)


def run(
    plan: Plan,
    base: str,
    root: Path,
    *,
    key: str = KEY,
    budget_usd: float | None = 5.0,
    **changes: Any,
) -> RunSummary:
    return execute(
        plan.model_copy(update={"budget_usd": budget_usd}),
        backend=segmind_backend(key, base_url=base),
        out_dir=root / "out",
        options=options(home=root / "home", **changes),
    )


def statuses(summary: RunSummary) -> dict[str, str]:
    found = {result.job: result.status for result in summary.results}
    assert len(found) == len(summary.results), "a job was reported twice"
    return found


def ledger_rows(root: Path, run_id: str) -> dict[str, dict[str, Any]]:
    ledger = Ledger(root / "home" / "ledger.sqlite")
    try:
        return {row["job_id"]: row for row in ledger.jobs_of(run_id)}
    finally:
        ledger.close()


def invoke_cli(recipe: Path, base: str, root: Path, *extra: str, key: str = KEY) -> int:
    result = CliRunner().invoke(
        cli,
        [str(recipe), "--backend", "segmind", "--out", str(root / "out"), *extra],
        env={
            "SEGMIND_API_KEY": key,
            "SEGMIND_BASE_URL": base,
            "RENDER_HOME": str(root / "home"),
        },
        prog_name="render",
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code


@pytest.fixture
def served() -> Iterator[Any]:
    """``base = served(app)``: the app on a loopback socket until the test ends."""
    stack: list[Any] = []

    def start(app: Starlette) -> str:
        context = serving(app)
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


# --- 1. the budget cap and "nothing paid twice", under any seeded fault schedule ---------------

JOBS = 150
rate = st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.2])


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    budget=st.floats(0.2, 1.5).map(lambda b: round(b, 3)),
    rates=st.fixed_dictionaries(
        {
            "429": rate,
            "500": rate,
            "502": st.sampled_from([0.0, 0.05]),
            "504": st.sampled_from([0.0, 0.05]),
            "406": st.sampled_from([0.0, 0.0, 0.0, 0.005]),
            "drop": st.sampled_from([0.0, 0.03, 0.1]),
            "failed": st.sampled_from([0.0, 0.05, 0.1]),
        }
    ),
)
def test_the_cap_holds_and_nothing_is_paid_twice_under_faults(
    seed: int, budget: float, rates: dict[str, float]
) -> None:
    faults = parse_faults(",".join(f"{kind}={value}" for kind, value in rates.items()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plan = plan_of(scifi_recipe(root, JOBS))
        app = make_app(faults=faults, seed=seed)
        with serving(app) as base:
            summary = run(plan, base, root, budget_usd=budget, concurrency=64)
            log = charges(app)
        by_sha = body_sha256s(plan)
        rows = ledger_rows(root, summary.run_id)

        status = statuses(summary)
        assert set(status) == {job.id for job in plan.jobs}, "every job is accounted for"
        succeeded = {job for job, s in status.items() if s == "succeeded"}
        unknown = {job for job, s in status.items() if s == "unknown"}

        # What Segmind billed never exceeds the cap, and no payload was billed twice.
        billed = math.fsum(charge.amount_usd for charge in log)
        assert billed <= budget + 1e-9
        shas = [charge.payload_sha256 for charge in log]
        assert len(shas) == len(set(shas)), "a payload was paid twice within one run"
        charged = {by_sha[sha] for sha in shas}

        # Every charge is a job the runner counts as paid (succeeded) or possibly paid (unknown).
        assert charged <= succeeded | unknown
        assert succeeded == charged - unknown
        assert len(succeeded) == len(charged) - len(unknown)

        # The runner's money matches its results, the ledger and the simulator.
        assert summary.spent_usd == pytest.approx(
            math.fsum(r.cost_usd for r in summary.results if r.status == "succeeded")
        )
        assert summary.spent_usd == pytest.approx(PRICE * len(succeeded))
        assert summary.unknown_usd == pytest.approx(PRICE * len(unknown))
        assert summary.spent_usd + summary.unknown_usd <= budget + 1e-9
        assert billed <= summary.spent_usd + summary.unknown_usd + 1e-9
        assert {job for job, row in rows.items() if row["status"] == "succeeded"} == succeeded
        assert math.fsum(
            row["cost_usd"] or 0.0 for row in rows.values() if row["status"] == "succeeded"
        ) == pytest.approx(summary.spent_usd)

        # A job that was not sent was stopped by the cap or by an abort, and each success is on disk.
        if summary.count("not-sent"):
            assert summary.budget_reached or summary.aborted
        out = root / "out"
        for result in summary.results:
            if result.status == "succeeded":
                assert result.outputs
                assert all((out / path).is_file() for path in result.outputs)


# --- 2. 406: out of credits aborts the run ---------------------------------------------------


def test_406_aborts_the_run_and_sends_nothing_more(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 10))
    app = make_app(balance_usd=0.055)  # five jobs' worth
    summary = run(plan, served(app), tmp_path, concurrency=1)
    status = statuses(summary)
    order = [job.id for job in plan.jobs]

    assert [status[job] for job in order] == ["succeeded"] * 5 + ["failed"] + ["not-sent"] * 4
    refused = next(r for r in summary.results if r.job == order[5])
    assert refused.error is not None
    assert refused.error.startswith("406")
    assert summary.aborted is not None
    assert "406" in summary.aborted
    assert posts(app) == 6, "nothing is submitted after the 406"
    assert len(charges(app)) == 5
    assert summary.spent_usd == pytest.approx(0.05)
    rows = ledger_rows(tmp_path, summary.run_id)
    assert rows[order[5]]["status"] == "failed"


def test_406_exits_4_through_the_cli(tmp_path: Path, served: Any) -> None:
    recipe = scifi_recipe(tmp_path, 10)
    app = make_app(balance_usd=0.055)
    code = invoke_cli(recipe, served(app), tmp_path, "--budget", "5", "--concurrency", "1")
    assert code == 4
    assert posts(app) == 6
    assert len(charges(app)) == 5


# --- 3. 401: a refused key aborts the run before anything is paid ------------------------------


def test_401_fails_the_first_job_and_aborts(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 5))
    app = make_app(key="secret")
    summary = run(plan, served(app), tmp_path, key="sk-wrong", concurrency=1)
    status = statuses(summary)
    first, *rest = [job.id for job in plan.jobs]

    assert status[first] == "failed"
    error = next(r.error for r in summary.results if r.job == first)
    assert error is not None
    assert error.startswith("401")
    assert all(status[job] == "not-sent" for job in rest)
    assert summary.aborted is not None
    assert "401" in summary.aborted
    assert posts(app) == 1
    assert charges(app) == []
    assert summary.spent_usd == summary.unknown_usd == 0.0


def test_401_at_concurrency_pays_nothing_and_sends_no_more_than_one_wave(
    tmp_path: Path, served: Any
) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 40))
    app = make_app(key="secret")
    summary = run(plan, served(app), tmp_path, key="sk-wrong", concurrency=8)
    assert summary.aborted is not None
    assert summary.count("succeeded") == summary.count("unknown") == 0
    for result in summary.results:
        assert result.status in {"failed", "not-sent"}
        if result.status == "failed":
            assert (result.error or "").startswith("401")
    assert summary.count("failed") <= 8
    assert posts(app) <= 8
    assert charges(app) == []


def test_401_exits_4_through_the_cli(tmp_path: Path, served: Any) -> None:
    recipe = scifi_recipe(tmp_path, 5)
    app = make_app(key="secret")
    code = invoke_cli(
        recipe, served(app), tmp_path, "--budget", "5", "--concurrency", "1", key="sk-wrong"
    )
    assert code == 4
    assert posts(app) == 1
    assert charges(app) == []


# --- 4. 429 with Retry-After is waited out -----------------------------------------------------


def _rate_limit_schedule(plan: Plan, *, attempts: int) -> tuple[int, dict[str, int]]:
    """A seed under which some job is rate limited at first and none beyond 2 times in a row;
    returns it with each job's number of 429s before it gets through."""
    config = SimulatorConfig(specs=all_specs(), faults=parse_faults("429=0.5"))
    sent = bodies(plan)
    for seed in range(1000):
        seeded = config.model_copy(update={"seed": seed})
        limited = {}
        for job, body in sent.items():
            count = 0
            while seeded.fault(SCIFI_PATH, body, count) == "429":
                count += 1
            limited[job] = count
        if 1 <= max(limited.values()) <= 2 and max(limited.values()) < attempts:
            return seed, limited
    raise AssertionError("no suitable seed")


class _VirtualTime(SimClock):
    """One time for the simulator and the engine: it stands still, and moves only when the engine
    waits, by exactly as long as it waits, at once. Its reading 0 is START, a whole second, so the
    reset moments a 429 names (whole seconds) are exact."""

    START = datetime(2026, 11, 30, 18, 30, tzinfo=UTC)

    def __init__(self) -> None:
        super().__init__(running=False)

    def utc(self) -> datetime:
        """The wall-clock time now, as the engine reads it to know how long a reset is away."""
        return self.START + timedelta(seconds=self())

    async def sleep(self, seconds: float) -> None:
        # On the microsecond grid datetimes keep: a wait to a reset lands exactly on it.
        self.offset = round(self.offset + max(0.0, seconds), 6)
        await asyncio.sleep(0)


class _WaitsOn(RetryPolicy):
    """The run's retry policy, waiting on virtual time."""

    def __init__(self, options: RunOptions, pace: Pace, virtual: _VirtualTime) -> None:
        super().__init__(options, pace)
        self.virtual = virtual

    def attempts(self, *, submission: bool = False) -> tenacity.AsyncRetrying:
        return super().attempts(submission=submission).copy(sleep=self.virtual.sleep)


def run_on_virtual_time(
    plan: Plan, base: str, root: Path, virtual: _VirtualTime, **changes: Any
) -> RunSummary:
    """``run``, with every wait of the run (a 429's, a retry's backoff, the pace's) on ``virtual``
    and the rate limit's reset moments read against it: no wait takes real time."""
    opts = options(home=root / "home", **changes)

    async def main() -> RunSummary:
        client = SegmindClient(base, KEY, now=virtual.utc)
        ledger = Ledger(root / "home" / "ledger.sqlite")
        try:
            runner = Runner(
                plan.model_copy(update={"budget_usd": 5.0}),
                client=client,
                ledger=ledger,
                store=OutputStore(root / "out"),
                budget=Budget(5.0),
                options=opts,
                backend=segmind_backend(KEY, base_url=base),
            )
            # The pace and the retry policy, on virtual time (sd1.5-scifi uploads nothing, so the
            # uploader's hold on the policy it was built with does not matter).
            runner.pace = Pace(
                opts.rpm, window_s=opts.rate_window_s, clock=virtual, sleep=virtual.sleep
            )
            runner.retry = _WaitsOn(opts, runner.pace, virtual)
            return await runner.run()
        finally:
            await client.aclose()
            ledger.close()

    return asyncio.run(main())


@dataclass
class _Arrival:
    """A submission as the simulator saw it: when (its clock), how it was answered, and for a 429
    the reset moment it named (on the same clock)."""

    at: float
    status: int = 0
    reset_at: float | None = None


class _Arrivals:
    """Records every submission's arrival and answer."""

    def __init__(self, app: ASGIApp, virtual: _VirtualTime, seen: list[_Arrival]) -> None:
        self.app = app
        self.virtual = virtual
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        arrival = _Arrival(at=self.virtual())
        self.seen.append(arrival)

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                arrival.status = message["status"]
                headers = {name.decode(): value.decode() for name, value in message["headers"]}
                if "x-rate-limit-reset-at-utc" in headers:
                    reset = datetime.fromisoformat(
                        headers["x-rate-limit-reset-at-utc"].replace("Z", "+00:00")
                    )
                    arrival.reset_at = (reset - self.virtual.START).total_seconds()
            await send(message)

        await self.app(scope, receive, answer)


# The longest a retry waits once a reset is past: one backoff, at most its cap plus its jitter.
BACKOFF_S = options().max_backoff_s + options().backoff_s


@pytest.mark.parametrize("retry_after_s", [1, 0])
def test_429_retry_after_is_honoured(tmp_path: Path, served: Any, retry_after_s: int) -> None:
    """Each rate-limited submission comes back at the reset its 429 named: not before it, and (a
    reset already here, retry_after_s=0) no later than one short backoff after. Time is virtual,
    so the waits are exact and no test waits for them. One job at a time: waits never overlap,
    so the one clock they move is each job's own."""
    plan = plan_of(scifi_recipe(tmp_path, 4))
    seed, limited = _rate_limit_schedule(plan, attempts=8)
    virtual = _VirtualTime()
    app = make_app(
        faults=parse_faults("429=0.5"),
        seed=seed,
        retry_after_s=retry_after_s,
        latency_s=0,
        clock=virtual,
        now=virtual.START,
    )
    arrivals: list[_Arrival] = []
    app.add_middleware(_Arrivals, virtual=virtual, seen=arrivals)
    summary = run_on_virtual_time(plan, served(app), tmp_path, virtual, concurrency=1)

    assert set(statuses(summary).values()) == {"succeeded"}
    assert posts(app) == len(plan.jobs) + sum(limited.values())
    assert len(charges(app)) == len(plan.jobs)
    refused = [pair for pair in itertools.pairwise(arrivals) if pair[0].status == 429]
    assert len(refused) == sum(limited.values())
    for limit, retry in refused:
        assert limit.reset_at is not None
        assert retry.at >= limit.reset_at, f"came back at {retry.at}, before the reset: {limit}"
        assert retry.at <= max(limit.reset_at, limit.at) + BACKOFF_S, (
            f"came back at {retry.at}, long after the reset: {limit}"
        )


# --- 5. a 400 or a FAILED job fails only itself ------------------------------------------------


def test_a_400_fails_only_its_job(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 5))
    broken = plan.jobs[2]
    jobs = list(plan.jobs)
    jobs[2] = broken.model_copy(update={"payload": {**broken.payload, "samples": 9}})
    plan = plan.model_copy(update={"jobs": tuple(jobs)})
    app = make_app()
    summary = run(plan, served(app), tmp_path)
    status = statuses(summary)

    assert status.pop(broken.id) == "failed"
    error = next(r.error for r in summary.results if r.job == broken.id)
    assert (error or "").startswith("400")
    assert set(status.values()) == {"succeeded"}
    assert summary.count("failed") == 1
    assert summary.aborted is None
    assert not summary.budget_reached
    assert len(charges(app)) == 4
    assert summary.spent_usd == pytest.approx(0.04)


def test_failed_jobs_fail_alone_and_are_not_charged(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 12))
    sent = bodies(plan)
    faults = parse_faults("failed=0.3")
    config = SimulatorConfig(specs=all_specs(), faults=faults)
    for seed in range(1000):
        doomed = {
            job
            for job, body in sent.items()
            if config.model_copy(update={"seed": seed}).fault(SCIFI_PATH, body, 0) == "failed"
        }
        if 2 <= len(doomed) <= 6:
            break
    app = make_app(faults=faults, seed=seed)
    summary = run(plan, served(app), tmp_path)
    status = statuses(summary)

    assert {job for job, s in status.items() if s == "failed"} == doomed
    assert {job for job, s in status.items() if s == "succeeded"} == set(sent) - doomed
    by_sha = body_sha256s(plan)
    assert {by_sha[c.payload_sha256] for c in charges(app)} == set(sent) - doomed
    assert summary.aborted is None
    assert summary.unknown_usd == 0.0
    assert summary.spent_usd == pytest.approx(PRICE * (len(sent) - len(doomed)))
    rows = ledger_rows(tmp_path, summary.run_id)
    assert {job for job, row in rows.items() if row["status"] == "failed"} == doomed


# --- 6. the key reaches no file ---------------------------------------------------------------


def test_the_api_key_is_in_no_file_the_engine_writes(tmp_path: Path, served: Any) -> None:
    key = "sk-canary-7f3a91c4e5d2b8"
    app = make_app(
        faults=parse_faults("429=0.2,500=0.1,drop=0.15,failed=0.15"),
        seed=7,
        key=key,
        images="preview",
    )
    base = served(app)
    scifi = plan_of(scifi_recipe(tmp_path / "recipes", 20))
    shots = plan_of(scenecraft_recipe(tmp_path / "recipes"))
    for plan in (scifi, shots, scifi):
        summary = run(plan, base, tmp_path, key=key, budget_usd=5.0)
        assert summary.aborted is None
    # And a refused key (the error path) writes it nowhere either.
    refused = run(scifi, base, tmp_path, key="sk-canary-wrong-0000", force=True, budget_usd=5.0)
    assert refused.aborted is not None

    written = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    written += [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert "ledger.sqlite" in names
    assert "manifest.jsonl" in names
    assert any(p.suffix == ".png" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in (key, "sk-canary-wrong-0000"):
            assert secret.encode() not in data, f"the key is in {path}"


# --- 7. re-runs: skipped for free, --force pays again, twins are paid once ----------------------


def test_a_rerun_is_free_and_force_renders_again(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scenecraft_recipe(tmp_path))
    app = make_app()
    base = served(app)
    price = plan.spec.price_usd
    assert price is not None

    first = run(plan, base, tmp_path)
    assert set(statuses(first).values()) == {"succeeded"}
    assert len(charges(app)) == 3
    files = {
        path: (tmp_path / "out" / path).read_bytes() for r in first.results for path in r.outputs
    }
    assert len(files) == 3

    again = run(plan, base, tmp_path)
    assert set(statuses(again).values()) == {"skipped"}
    assert again.spent_usd == again.unknown_usd == 0.0
    assert len(charges(app)) == 3, "a re-run paid again"
    assert posts(app) == 3
    assert {path: (tmp_path / "out" / path).read_bytes() for path in files} == files

    # A lost output is rendered again, and only that one.
    lost = next(iter(files))
    (tmp_path / "out" / lost).unlink()
    repaired = run(plan, base, tmp_path)
    assert sorted(statuses(repaired).values()) == ["skipped", "skipped", "succeeded"]
    assert (tmp_path / "out" / lost).is_file()
    assert len(charges(app)) == 4

    forced = run(plan, base, tmp_path, force=True)
    assert set(statuses(forced).values()) == {"succeeded"}
    assert forced.spent_usd == pytest.approx(3 * price)
    assert len(charges(app)) == 7


def test_identical_payloads_in_one_run_are_paid_once(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 3, copies=2))
    assert len(plan.jobs) == 6
    app = make_app()
    summary = run(plan, served(app), tmp_path)
    status = statuses(summary)

    log = charges(app)
    assert len(log) == 3
    assert len({c.payload_sha256 for c in log}) == 3
    assert posts(app) == 3
    assert sorted(status.values()) == ["skipped"] * 3 + ["succeeded"] * 3
    assert summary.spent_usd == pytest.approx(0.03)
    out = tmp_path / "out"
    for n in range(3):
        pair = [r for r in summary.results if r.job.startswith(f"{n}/")]
        assert len(pair) == 2
        contents = [(out / r.outputs[0]).read_bytes() for r in pair]
        assert contents[0] == contents[1]
        assert pair[0].outputs != pair[1].outputs


# --- 8. unknown outcomes: counted, reported, re-sent only on request --------------------------


def test_unknown_outcomes_are_counted_and_resent_only_on_request(
    tmp_path: Path, served: Any
) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 5))
    dropping = make_app(faults=parse_faults("drop=1.0"))
    # One host throughout (the ledger tells hosts apart): Segmind drops answers, then recovers.
    segmind = _Switch(dropping)
    base = served(segmind)
    first = run(plan, base, tmp_path, budget_usd=0.03)
    status = statuses(first)
    unknown = {job for job, s in status.items() if s == "unknown"}
    assert len(unknown) == 3, "the cap lets three $0.01 jobs out, and each stays counted"
    assert {job for job, s in status.items() if s == "not-sent"} == set(status) - unknown
    assert first.unknown_usd == pytest.approx(0.03)
    assert first.spent_usd == 0.0
    assert first.budget_reached
    assert posts(dropping) == 3
    assert len(charges(dropping)) == 3, "Segmind bills a dropped answer"

    # The next run does not send them again (even to a healthy server) and says so.
    healthy = make_app()
    segmind.app = healthy
    second = run(plan, base, tmp_path, budget_usd=1.0)
    status = statuses(second)
    assert {job for job, s in status.items() if s == "unknown"} == unknown
    assert {job for job, s in status.items() if s == "succeeded"} == set(status) - unknown
    assert posts(healthy) == 2
    assert len(charges(healthy)) == 2
    for result in second.results:
        if result.status == "unknown":
            assert "--retry-unknown" in (result.error or "")

    # Asked to, it sends them again; the rest are skipped.
    third = run(plan, base, tmp_path, budget_usd=1.0, retry_unknown=True)
    status = statuses(third)
    assert {job for job, s in status.items() if s == "succeeded"} == unknown
    assert {job for job, s in status.items() if s == "skipped"} == set(status) - unknown
    assert posts(healthy) == 5
    assert len(charges(healthy)) == 5
    assert third.spent_usd == pytest.approx(0.03)


# --- 9. a v2 job left queued by an earlier run is polled, not re-sent --------------------------


def test_a_queued_job_is_polled_by_the_next_run_not_resent(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 4))
    # Stopped: the jobs stay queued through the first run, however slowly it goes.
    clock = SimClock(running=False)
    app = make_app(latency_s=1.0, clock=clock)
    base = served(app)
    first = run(plan, base, tmp_path, max_poll_s=0.1)
    assert set(statuses(first).values()) == {"unknown"}
    assert first.unknown_usd == pytest.approx(0.04)
    assert posts(app) == 4
    rows = ledger_rows(tmp_path, first.run_id)
    assert {row["status"] for row in rows.values()} == {"submitted"}
    request_ids = {job: row["request_id"] for job, row in rows.items()}
    assert all(request_ids.values())

    clock.advance(1.0)  # the jobs are done at Segmind
    second = run(plan, base, tmp_path)
    assert set(statuses(second).values()) == {"succeeded"}
    assert posts(app) == 4, "a queued request was sent again"
    log = charges(app)
    assert len(log) == 4
    assert {c.request_id for c in log} == set(request_ids.values())
    assert second.spent_usd == pytest.approx(0.04)
    again = ledger_rows(tmp_path, second.run_id)
    assert {job: row["request_id"] for job, row in again.items()} == request_ids
    assert all(r.polls >= 1 for r in second.results)
    out = tmp_path / "out"
    assert all((out / path).is_file() for r in second.results for path in r.outputs)


def test_the_charge_log_endpoint_agrees_with_the_state(tmp_path: Path, served: Any) -> None:
    """The HTTP view of the charge log (what an out-of-process check would read) is the same."""
    plan = plan_of(scifi_recipe(tmp_path, 3))
    app = make_app()
    base = served(app)
    run(plan, base, tmp_path)
    logged = httpx.get(f"{base}/_simulator/charges").json()
    assert [c["request_id"] for c in logged["charges"]] == [c.request_id for c in charges(app)]
    assert logged["balance_usd"] == pytest.approx(100.0 - 0.03)


# --- more faults: aborts while others retry, exhausted retries, sync drops, kills, records ------


def _schedule(plan: Plan, kinds: list[list[str]], faults: str) -> int:
    """A seed under which job i's attempts meet faults ``kinds[i]`` in order ("" for none)."""
    config = SimulatorConfig(specs=all_specs(), faults=parse_faults(faults))
    sent = [bodies(plan)[job.id] for job in plan.jobs]
    for seed in range(5000):
        seeded = config.model_copy(update={"seed": seed})
        if all(
            (seeded.fault(SCIFI_PATH, body, attempt) or "") == kind
            for body, wanted in zip(sent, kinds, strict=True)
            for attempt, kind in enumerate(wanted)
        ):
            return seed
    raise AssertionError("no suitable seed")


def test_no_retry_is_submitted_after_an_abort(tmp_path: Path, served: Any) -> None:
    """Job 0 is rate limited (Retry-After: 1 s); job 1 meets a 406 meanwhile: the run aborts, and
    job 0's retry (which would be accepted and billed) is a new submission an aborted run must
    not make."""
    plan = plan_of(scifi_recipe(tmp_path, 2))
    seed = _schedule(plan, [["429", ""], ["406"]], "429=0.4,406=0.2")
    app = make_app(faults=parse_faults("429=0.4,406=0.2"), seed=seed, retry_after_s=1)
    summary = run(plan, served(app), tmp_path, concurrency=2)
    status = statuses(summary)

    assert summary.aborted is not None
    assert status[plan.jobs[1].id] == "failed"
    assert status[plan.jobs[0].id] in {"failed", "not-sent"}
    assert posts(app) == 2, "a request was submitted after the run was aborted"
    assert charges(app) == []


def test_exhausted_retries_fail_the_job_unpaid(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 3))
    app = make_app(faults=parse_faults("500=1.0"))
    summary = run(plan, served(app), tmp_path, max_attempts=3)
    assert set(statuses(summary).values()) == {"failed"}
    assert all((r.error or "").startswith("500") for r in summary.results)
    assert posts(app) == 3 * 3
    assert charges(app) == []
    assert summary.spent_usd == summary.unknown_usd == 0.0
    assert summary.aborted is None


def test_a_dropped_sync_answer_is_unknown_and_not_resent(tmp_path: Path, served: Any) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 3))
    sync = plan.spec.model_copy(update={"protocol": "sync", "endpoint": "/v1/sd1.5-scifi"})
    plan = plan.model_copy(update={"spec": sync})
    app = make_app(faults=parse_faults("drop=1.0"))
    base = served(app)
    summary = run(plan, base, tmp_path)
    assert set(statuses(summary).values()) == {"unknown"}
    assert posts(app) == 3, "an ambiguous sync POST was sent again"
    assert len(charges(app)) == 3
    assert summary.unknown_usd == pytest.approx(0.03)

    # The next run asks request history, which knows them: settled and fetched, never sent again.
    again = run(plan, base, tmp_path)
    assert set(statuses(again).values()) == {"succeeded"}
    assert posts(app) == 3
    assert again.spent_usd == 0.0  # billed to the first run, whose unknown money is now spent


def test_every_job_has_a_manifest_line_and_a_ledger_row_even_a_failed_twin(
    tmp_path: Path, served: Any
) -> None:
    """DESIGN: a manifest line per job; the ledger records every job's payload hash and status."""
    plan = plan_of(scifi_recipe(tmp_path, 2, copies=2))
    app = make_app(faults=parse_faults("failed=1.0"))
    summary = run(plan, served(app), tmp_path)
    status = statuses(summary)
    assert set(status.values()) == {"failed"}
    assert len(status) == 4
    assert posts(app) == 2, "twins are sent once"

    manifest = [
        line
        for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
        if summary.run_id in line
    ]
    # Each job's last line says how it ended (earlier lines: its request leaving, queued).
    lines = [entry for line in manifest if (entry := json.loads(line))["status"] == "failed"]
    assert sorted(entry["job"] for entry in lines) == sorted(status)
    assert {entry["status"] for entry in lines} == {"failed"}
    rows = ledger_rows(tmp_path, summary.run_id)
    assert set(rows) == set(status)
    assert {row["status"] for row in rows.values()} == {"failed"}


def test_remaining_credits_are_recorded_for_queued_jobs(tmp_path: Path, served: Any) -> None:
    """DESIGN (Execution): `x-remaining-credits` is recorded; the simulator sends it on every answer."""
    plan = plan_of(scifi_recipe(tmp_path, 2))
    app = make_app()
    summary = run(plan, served(app), tmp_path, concurrency=1)
    rows = ledger_rows(tmp_path, summary.run_id)
    seen = [row["credits_seen"] for row in rows.values()]
    assert all(value is not None for value in seen), f"credits_seen: {seen}"
    assert all(100.0 - 0.03 <= value <= 100.0 for value in seen)


async def _interrupted(plan: Plan, base: str, root: Path) -> Runner:
    """Start a run, and cancel it (Ctrl-C) once every job is queued and none is collected."""
    return await interrupt_when_queued(
        plan, base=base, key=KEY, out=root / "out", home=root / "home", options=options()
    )


def test_a_killed_run_resumes_by_polling_and_pays_nothing_twice(
    tmp_path: Path, served: Any
) -> None:
    plan = plan_of(scifi_recipe(tmp_path, 4))
    # Stopped: no job can finish before the run is interrupted, however slowly it goes.
    clock = SimClock(running=False)
    app = make_app(latency_s=1.0, clock=clock)
    base = served(app)
    runner = asyncio.run(_interrupted(plan, base, tmp_path))
    assert runner.summary.interrupted
    assert posts(app) == 4
    rows = ledger_rows(tmp_path, runner.run_id)
    assert {row["status"] for row in rows.values()} == {"submitted"}
    assert all(row["request_id"] for row in rows.values())

    clock.advance(1.0)  # the jobs are done at Segmind
    resumed = run(plan, base, tmp_path)
    assert set(statuses(resumed).values()) == {"succeeded"}
    assert posts(app) == 4, "a queued request was sent again after a kill"
    log = charges(app)
    assert len(log) == 4
    assert {c.request_id for c in log} == {row["request_id"] for row in rows.values()}


def test_an_interrupted_run_still_counts_the_money_it_sent(tmp_path: Path, served: Any) -> None:
    """Four requests went out and will be billed: the interrupted run's summary must not say $0."""
    plan = plan_of(scifi_recipe(tmp_path, 4))
    app = make_app(latency_s=1.0, clock=SimClock(running=False))  # none can finish meanwhile
    runner = asyncio.run(_interrupted(plan, served(app), tmp_path))
    summary = runner.summary
    assert summary.interrupted
    assert posts(app) == 4
    assert summary.spent_usd + summary.unknown_usd == pytest.approx(0.04)
