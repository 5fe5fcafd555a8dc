"""Issue 11: the engine works on Segmind as the evidence shows it, not as our first reading was.

Every shipped recipe runs against the simulator over real loopback, with uploads required (base64
refused in URL fields), a per-key rate limit, injected 429s, files lost for a while and dropped
answers; workflows and v2 authenticate with `x-api-key` alone; and outcomes nobody knew are settled
through request history: queued requests whose ids expired, and submits whose answer never came.
Every charge is read from the simulator's own log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from engine.backends import segmind_backend
from engine.executor import execute
from engine.ledger import Ledger
from engine.plan import Plan, build_plan
from engine.recipe import load_recipe
from engine.results import RunOptions, RunSummary
from engine.simulator import SimulatorConfig, all_specs, create_app, parse_faults, serving
from engine.simulator.config import FaultRates
from engine.uploads import to_upload
from tests.helpers import ROOT, interrupt_when_queued, write_tree

KEY = "sk-real-api"
WINDOW_S = 2.0
FAST = {"backoff_s": 0.02, "max_backoff_s": 0.2, "rate_window_s": WINDOW_S}


class _Drops:
    """Counts the submissions whose answer the simulator dropped (the connection closed mid-answer)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.dropped = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:
            self.dropped += 1
            raise


class _Headers:
    """Remembers the auth headers of every request that reaches the app."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.seen: list[tuple[str, str, bool, bool]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = {name.lower() for name, _ in scope["headers"]}
            self.seen.append(
                (scope["method"], scope["path"], b"x-api-key" in names, b"authorization" in names)
            )
        await self.app(scope, receive, send)


def _app(**config: Any) -> Starlette:
    options: dict[str, Any] = {
        "specs": all_specs(),
        "latency_s": 0.05,
        "images": "tiny",
        "unpriced_usd": 0.01,
        "balance_usd": 1000.0,
        "retry_after_s": 0,
        **config,
    }
    return create_app(SimulatorConfig(**options))


def _log(app: Starlette) -> dict[str, Any]:
    sim = app.state.simulator
    sim.state.settle()
    return {"charges": list(sim.state.charges), "sim": sim}


def _run(plan: Plan, base: str, root: Path, *, home: str = "home", **options: Any) -> RunSummary:
    return execute(
        plan.model_copy(update={"budget_usd": 1000}),
        backend=segmind_backend(KEY, base_url=base),
        out_dir=root / "out",
        options=RunOptions(**{**FAST, "home": root / home, **options}),
    )


@pytest.fixture
def served() -> Iterator[Any]:
    stack: list[Any] = []

    def start(app: Any) -> str:
        context = serving(app)
        stack.append(context)
        return str(context.__enter__())

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


# --- every recipe, on a simulator that behaves like the evidence --------------------------------


@pytest.mark.parametrize("recipe", ["spring", "lighting", "characters", "scifi", "staging"])
def test_every_recipe_finishes_with_uploads_a_rate_limit_and_faults(
    tmp_path: Path, served: Any, recipe: str
) -> None:
    """`--strict-urls --rpm 30 --faults 429=0.1,lost=0.1,drop=0.02`: every job succeeds, or is
    unknown only where a drop made it so; none fails for a 429; nothing is charged twice; each
    product image is uploaded once; every output is there after at most one further run."""
    plan = build_plan(load_recipe(ROOT / "recipes" / f"{recipe}.yaml"))
    assert plan.errors == ()
    app = _app(
        strict_urls=True,
        rpm=30,
        rate_window_s=WINDOW_S,
        faults=parse_faults("429=0.1,lost=0.1,drop=0.02"),
        lost_for_s=0.3,
        seed=3,
    )
    drops = _Drops(app)
    base = served(drops)
    first = _run(plan, base, tmp_path)
    second = _run(plan, base, tmp_path)
    log = _log(app)
    state = log["sim"].state

    statuses = Counter(r.status for r in first.results)
    assert statuses["failed"] == 0, [r.error for r in first.results if r.status == "failed"]
    assert set(statuses) <= {"succeeded", "unknown", "unfetched"}
    assert statuses["unknown"] <= drops.dropped
    if len(plan.jobs) > 30:  # more submissions than a window allows: the limit was met
        assert state.rate_limited > 0
    billed = Counter(charge.payload_sha256 for charge in log["charges"])
    assert max(billed.values()) == 1, "a payload was charged twice"
    # Each distinct local image went to Storage once, however many jobs sent it.
    images = {image.path for job in plan.jobs for image in to_upload(plan.spec, job.payload)}
    assert (state.upload_requests, len(state.assets)) == (len(images), len(images))
    # One further run fetched what the first could not; unknown jobs aside, every file is there.
    after = {r.job: r for r in second.results}
    for job in plan.jobs:
        if first_status(first, job.id) == "unknown" and after[job.id].status == "unknown":
            continue
        assert after[job.id].status in {"skipped", "succeeded"}, after[job.id]
        for output in after[job.id].outputs:
            assert (tmp_path / "out" / output).stat().st_size > 0


def first_status(summary: RunSummary, job: str) -> str:
    return next(r.status for r in summary.results if r.job == job)


# --- x-api-key everywhere --------------------------------------------------------------------------


def test_workflows_and_v2_authenticate_with_x_api_key_alone(tmp_path: Path, served: Any) -> None:
    headers = _Headers(_app(strict_urls=True))
    base = served(headers)
    for recipe in ("characters", "lighting"):
        plan = build_plan(load_recipe(ROOT / "recipes" / f"{recipe}.yaml"), limit=1)
        summary = _run(plan, base, tmp_path / recipe)
        assert summary.count("succeeded") == 1, summary.results
    api = [seen for seen in headers.seen if not seen[1].startswith(("/assets", "/files"))]
    assert {path.split("/")[1] for _, path, _, _ in api} >= {"workflows", "v2", "upload-asset"}
    assert all(key and not bearer for _, _, key, bearer in api), api


# --- settling what nobody knew -----------------------------------------------------------------


class _Clock:
    """The simulator's clock: real time, plus what the test adds (an hour goes by at once)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_requests_resumed_after_their_ids_expired_are_settled_through_history(
    tmp_path: Path, served: Any
) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"))
    app = _app(latency_s=30.0)
    clock = _Clock()
    app.state.simulator.state.clock = clock
    base = served(app)
    asyncio.run(
        interrupt_when_queued(
            plan,
            base=base,
            key=KEY,
            out=tmp_path / "out",
            home=tmp_path / "home",
            options=RunOptions(**FAST),
        )
    )
    state = app.state.simulator.state
    sent = len(state.jobs)  # every submission the simulator accepted, kept in its history
    clock.offset += 2 * 3600  # the jobs finished (and were billed) long ago; their ids expired
    summary = _run(plan, base, tmp_path)
    assert {r.status for r in summary.results} == {"succeeded"}, summary.results
    assert len(state.jobs) == sent, "a request was sent again"
    log = _log(app)
    assert len(log["charges"]) == len(plan.jobs)
    assert summary.spent_usd == pytest.approx(0.01 * len(plan.jobs))
    for result in summary.results:
        assert (tmp_path / "out" / result.outputs[0]).exists()


def test_submits_whose_answer_never_came_are_matched_in_history_by_their_body(
    tmp_path: Path, served: Any
) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"))
    app = _app(faults=parse_faults("drop=1.0"), latency_s=30.0)
    clock = _Clock()
    app.state.simulator.state.clock = clock
    base = served(app)
    first = _run(plan, base, tmp_path)
    assert {r.status for r in first.results} == {"unknown"}
    # While they still run, request history says so: they stay unknown, with their ids found.
    early = _run(plan, base, tmp_path)
    assert {r.status for r in early.results} == {"unknown"}
    clock.offset += 60  # then they finish, billed though nobody heard
    sim = app.state.simulator
    sim.config = sim.config.model_copy(update={"faults": FaultRates()})
    sent = len(sim.state.jobs)
    second = _run(plan, base, tmp_path)
    assert {r.status for r in second.results} == {"succeeded"}, second.results
    assert len(sim.state.jobs) == sent, "a dropped submit was sent again"
    assert len(_log(app)["charges"]) == 3
    book = Ledger(tmp_path / "home" / "ledger.sqlite")
    try:
        (spend,) = book.spend()
    finally:
        book.close()
    assert (spend.spent_usd, spend.unknown_usd) == (pytest.approx(0.03), 0)


SCIFI = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    matrix:
      n: [0, 1, 2]
    params:
      prompt: "a sci-fi city numbered {{ n }}"
    """


@pytest.mark.parametrize("reset_format", ["iso", "epoch", "http-date"])
def test_a_free_account_finishes_every_job_and_none_fails_for_a_429(
    tmp_path: Path, served: Any, reset_format: str
) -> None:
    """Five submissions a window (a free account's minute, scaled), the default settings otherwise,
    and the reset time written in each format a 429 might use."""
    numbers = ", ".join(str(n) for n in range(15))
    write_tree(tmp_path, {"city.yaml": SCIFI.replace("n: [0, 1, 2]", f"n: [{numbers}]")})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"), budget_usd=1)
    app = _app(rpm=5, rate_window_s=1.0, reset_format=reset_format)
    base = served(app)
    summary = execute(
        plan,
        backend=segmind_backend(KEY, base_url=base),
        out_dir=tmp_path / "out",
        options=RunOptions(rate_window_s=1.0, home=tmp_path / "home"),
    )
    assert summary.count("succeeded") == 15, [r.error for r in summary.results if r.error]
    assert summary.rate_limited > 0
    assert summary.learned_rpm is not None
    assert summary.learned_rpm >= 5
    assert len(_log(app)["charges"]) == 15


# --- paid outputs kept, strange statuses bounded, charges reconciled -------------------------------


@pytest.mark.parametrize("ledger", ["same", "another"])
def test_outputs_that_cannot_be_fetched_are_fetched_by_the_next_run_without_paying(
    tmp_path: Path, served: Any, ledger: str
) -> None:
    """With another ledger, the output folder's manifest names the files to fetch."""
    write_tree(tmp_path, {"city.yaml": SCIFI})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"))
    app = _app(faults=parse_faults("lost=1.0"), lost_for_s=600.0)
    clock = _Clock()
    app.state.simulator.state.clock = clock
    base = served(app)
    first = _run(plan, base, tmp_path, max_attempts=2)
    assert {r.status for r in first.results} == {"unfetched"}
    assert all("paid, output not fetched" in (r.error or "") for r in first.results)
    assert first.spent_usd == pytest.approx(0.03)  # paid, and counted as paid
    clock.offset += 601  # the file host serves them again
    sent = len(app.state.simulator.state.jobs)
    second = _run(plan, base, tmp_path, home="home" if ledger == "same" else "other")
    assert {r.status for r in second.results} == {"succeeded"}
    assert second.spent_usd == 0.0
    assert len(app.state.simulator.state.jobs) == sent, "a paid job was sent again"
    assert all((tmp_path / "out" / r.outputs[0]).exists() for r in second.results)


def test_outputs_still_missing_stay_named_in_the_manifest_for_a_run_with_another_ledger(
    tmp_path: Path, served: Any
) -> None:
    """A second run that cannot fetch either must leave the URLs on its own manifest line: the
    newest line is what a third ledger reads."""
    write_tree(tmp_path, {"city.yaml": SCIFI})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"))
    app = _app(faults=parse_faults("lost=1.0"), lost_for_s=600.0)
    clock = _Clock()
    app.state.simulator.state.clock = clock
    base = served(app)
    _run(plan, base, tmp_path, max_attempts=2)
    again = _run(plan, base, tmp_path, home="other", max_attempts=2)
    assert {r.status for r in again.results} == {"unfetched"}
    lines = [
        json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    ]
    newest = {line["job"]: line for line in lines if line["run"] == again.run_id}
    assert all(line["status"] == "unfetched" and line["urls"] for line in newest.values())
    clock.offset += 601
    sent = len(app.state.simulator.state.jobs)
    third = _run(plan, base, tmp_path, home="third")
    assert {r.status for r in third.results} == {"succeeded"}
    assert len(app.state.simulator.state.jobs) == sent, "a paid job was sent again"


class _Strange:
    """The simulator, with every status poll answering a state nobody documented."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return

        async def strange(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k != b"content-length"]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                for state in (b'"QUEUED"', b'"PROCESSING"'):
                    body = body.replace(state, b'"WARMING_UP"')
                message = {**message, "body": body}
            await send(message)

        await self.app(scope, receive, strange)


def test_a_status_render_does_not_know_ends_as_unknown_and_is_never_resent(
    tmp_path: Path, served: Any
) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI.replace("n: [0, 1, 2]", "n: [0]")})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"))
    app = _app(latency_s=60.0)
    base = served(_Strange(app))
    summary = _run(plan, base, tmp_path, max_unknown_status_s=0.3)
    (result,) = summary.results
    assert result.status == "unknown"
    assert "Segmind answered status 'WARMING_UP', which render does not know" in (
        result.error or ""
    )
    again = _run(plan, base, tmp_path, max_unknown_status_s=0.3)
    assert len(app.state.simulator.state.jobs) == 1
    assert again.results[0].status == "unknown"


def test_what_segmind_charged_is_reconciled_with_the_estimates(tmp_path: Path, served: Any) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"))
    base = served(_app(charge_factor=1.5, report_cost=True))
    summary = _run(plan, base, tmp_path)
    assert (summary.charged_usd, summary.charged_estimate_usd, summary.charged_jobs) == (
        pytest.approx(0.045),
        pytest.approx(0.03),
        3,
    )
    book = Ledger(tmp_path / "home" / "ledger.sqlite")
    try:
        (run,) = book.run_rows()
        rows = list(book.jobs_of(run.id))
    finally:
        book.close()
    assert (run.charged_usd, run.estimated_usd, run.spent_usd) == (
        pytest.approx(0.045),
        pytest.approx(0.03),
        pytest.approx(0.045),
    )
    assert {row["charge_source"] for row in rows} == {"metrics.cost"}
