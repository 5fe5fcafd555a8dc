"""Issue 10: nobody pays twice, from any folder, and every count tells the truth.

Each test is a reproduction from the issue, run as a user runs `render`: the CLI against the
simulator on a real loopback socket, with the simulator's own charge log as the judge of what was
paid. The default ledger is the user data folder (the test suite points it at a folder of its own).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from engine.backends import segmind_backend
from engine.cli import cli
from engine.executor import execute
from engine.ledger import Ledger
from engine.plan import build_plan
from engine.recipe import load_recipe
from engine.results import RunOptions
from engine.simulator import SimulatorConfig, all_specs, create_app, parse_faults, serving
from tests.helpers import ROOT, interrupt_when_queued, write_tree

KEY = "sk-test-key"
PRICE = 0.01
SOFA = (ROOT / "recipes" / "images" / "sofa.png").read_bytes()

SCIFI = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      n: [0, 1, 2, 3, 4, 5]
    params:
      prompt: "a sci-fi city numbered {{ n }}"
    """


class Segmind:
    """The simulator on loopback, standing in for Segmind; its behaviour may change mid-test."""

    def __init__(self, **config: Any) -> None:
        self.app = self.make(**config)
        self.posts: list[str] = []

    @staticmethod
    def make(**config: Any) -> Starlette:
        options: dict[str, Any] = {
            "specs": all_specs(),
            "latency_s": 0.05,
            "retry_after_s": 0,
            "unpriced_usd": PRICE,
            "images": "tiny",
            **config,
        }
        return create_app(SimulatorConfig(**options))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Submissions only: uploads to Storage are never billed.
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] != "/upload-asset"
        ):
            self.posts.append(scope["path"])
        await self.app(scope, receive, send)

    def charges(self) -> list[Any]:
        state = self.app.state.simulator.state
        state.settle()
        return list(state.charges)


@pytest.fixture
def segmind() -> Iterator[tuple[Segmind, str]]:
    server = Segmind()
    with serving(server) as base:  # type: ignore[arg-type]
        yield server, base


def render(*args: str, cwd: Path, base: str, **env: str) -> tuple[int, str, str]:
    """`render ARGS...` as a user types it in ``cwd``, against the simulator at ``base``."""
    here = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(
            cli,
            list(args),
            env={"SEGMIND_API_KEY": KEY, "SEGMIND_BASE_URL": base, **env},
            prog_name="render",
        )
    finally:
        os.chdir(here)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


# --- 1. a run from another folder, or with another ledger, pays nothing again -----------------


def test_a_run_from_another_folder_pays_nothing_again(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    server, base = segmind
    write_tree(tmp_path, {"recipes/city.yaml": SCIFI, "sub/.keep": ""})
    code, _, err = render("recipes/city.yaml", "--out", "o9", cwd=tmp_path, base=base)
    assert code == 0, err
    assert len(server.charges()) == 6
    code, out, err = render(
        "../recipes/city.yaml", "--out", "../o9", cwd=tmp_path / "sub", base=base
    )
    assert code == 0, err
    assert out.startswith("city: 0 succeeded, 6 skipped (already rendered); $0.00 spent on ")
    assert len(server.posts) == 6
    assert len(server.charges()) == 6


def test_unknown_jobs_are_not_resent_from_another_folder(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    server, base = segmind
    server.app = Segmind.make(faults=parse_faults("drop=1.0"))
    write_tree(tmp_path, {"recipes/city.yaml": SCIFI, "sub/.keep": ""})
    code, _, _ = render("recipes/city.yaml", "--out", "o9", "--limit", "2", cwd=tmp_path, base=base)
    assert code == 1
    assert len(server.posts) == 2
    server.app = Segmind.make()
    code, out, _ = render(
        "../recipes/city.yaml", "--out", "../o9", "--limit", "2", cwd=tmp_path / "sub", base=base
    )
    assert code == 1
    assert "0 succeeded, 2 unknown" in out
    assert len(server.posts) == 2, "an unknown job was sent again without --retry-unknown"


def test_the_output_folder_guards_a_run_with_another_ledger(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    """The manifest is a second record: a run that lacks the ledger rows pays for nothing it says
    succeeded (with intact files) or sent with no answer."""
    server, base = segmind
    write_tree(tmp_path, {"city.yaml": SCIFI})
    server.app = Segmind.make(faults=parse_faults("drop=1.0"))
    render("city.yaml", "--limit", "2", cwd=tmp_path, base=base, RENDER_HOME=str(tmp_path / "h1"))
    server.app = Segmind.make()
    render("city.yaml", cwd=tmp_path, base=base, RENDER_HOME=str(tmp_path / "h1"))
    assert len(server.posts) == 6  # 2 dropped, then the 4 others
    code, out, _ = render("city.yaml", cwd=tmp_path, base=base, RENDER_HOME=str(tmp_path / "h2"))
    assert code == 1
    assert "0 succeeded, 4 skipped (already rendered), 2 unknown" in out
    assert len(server.posts) == 6


def test_a_failure_in_its_own_ledger_does_not_hide_what_another_ledger_rendered_here(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    """The second ledger's newest word on the payload is "failed" (elsewhere, unbilled); the
    output folder holds the picture a run with the first ledger paid for: it is reused."""
    server, base = segmind
    write_tree(tmp_path, {"city.yaml": SCIFI})
    h1, h2 = str(tmp_path / "h1"), str(tmp_path / "h2")
    code, _, err = render("city.yaml", "--limit", "1", cwd=tmp_path, base=base, RENDER_HOME=h1)
    assert code == 0, err
    server.app = Segmind.make(faults=parse_faults("500=1.0"))
    # Through the API, to fail at once rather than after the CLI's eight backed-off attempts.
    plan = _plan(tmp_path / "city.yaml")
    failed = execute(
        plan.model_copy(update={"jobs": plan.jobs[:1]}),
        backend=segmind_backend(KEY, base_url=base),
        out_dir=tmp_path / "elsewhere",
        options=RunOptions(max_attempts=1, home=Path(h2)),
    )
    assert [result.status for result in failed.results] == ["failed"]
    server.app = Segmind.make()
    posts = len(server.posts)
    code, out, err = render("city.yaml", "--limit", "1", cwd=tmp_path, base=base, RENDER_HOME=h2)
    assert code == 0, err
    assert out.startswith("city: 0 succeeded, 1 skipped (already rendered); $0.00 spent")
    assert len(server.posts) == posts, "a picture in the output folder was paid for again"


# --- 2. the same payload rendered before is copied, not paid again ----------------------------


def test_an_identical_payload_is_copied_from_another_recipe_and_folder(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    server, base = segmind
    write_tree(
        tmp_path,
        {
            "a/city.yaml": SCIFI,
            "b/town.yaml": SCIFI.replace("name: city", "name: town").replace(
                "n: [0, 1, 2, 3, 4, 5]", "n: [5, 6]"
            ),
        },
    )
    render("a/city.yaml", "--out", "first", cwd=tmp_path, base=base)
    assert len(server.posts) == 6
    code, out, _ = render("b/town.yaml", "--out", "second", "--dry-run", cwd=tmp_path, base=base)
    assert code == 0
    assert "jobs    1 to send ($0.01), 1 already rendered (free)\n" in out
    assert "  5    free   5.png\n" in out
    code, out, _ = render("b/town.yaml", "--out", "second", cwd=tmp_path, base=base)
    assert code == 0
    assert out.startswith("town: 1 succeeded, 1 skipped (already rendered); $0.01 spent")
    assert len(server.posts) == 7
    copied = tmp_path / "second" / "town" / "5.png"
    assert copied.read_bytes() == (tmp_path / "first" / "city" / "5.png").read_bytes()
    # --force is the way to pay again.
    render("b/town.yaml", "--out", "second", "--force", cwd=tmp_path, base=base)
    assert len(server.posts) == 9


# --- 3. --force after an interrupt collects what is queued --------------------------------------


def _plan(path: Path) -> Any:
    plan = build_plan(load_recipe(path))
    assert plan.errors == ()
    return plan


def _interrupt(plan: Any, base: str, out: Path) -> None:
    home = Path(os.environ["XDG_DATA_HOME"]) / "render"
    asyncio.run(interrupt_when_queued(plan, base=base, key=KEY, out=out, home=home))


def test_force_after_an_interrupt_collects_queued_jobs_and_unknown_money_clears(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    server, base = segmind
    server.app = Segmind.make(latency_s=0.5)
    write_tree(tmp_path, {"city.yaml": SCIFI})
    plan = _plan(tmp_path / "city.yaml")
    _interrupt(plan, base, tmp_path / "renders" / "city")
    code, out, _ = render("ledger", "--json", cwd=tmp_path, base=base)
    (before,) = json.loads(out)["spend"]
    assert (before["spent_usd"], round(before["unknown_usd"], 6)) == (0, 0.06)

    code, out, err = render("city.yaml", "--force", cwd=tmp_path, base=base)
    assert code == 0, err
    assert out.startswith("city: 6 succeeded; $0.06 spent on ")
    assert len(server.posts) == 6, "--force sent a queued job again"
    assert len(server.charges()) == 6

    # 4. The unknown money of the interrupted run moved to spent, once.
    code, out, _ = render("ledger", "--json", cwd=tmp_path, base=base)
    (after,) = json.loads(out)["spend"]
    assert (round(after["spent_usd"], 6), after["unknown_usd"], after["jobs"]) == (0.06, 0, 6)


# --- 5. estimates, confirmations and budget checks count only what will be sent ----------------


def test_a_finished_recipe_costs_nothing_to_run_again(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    server, base = segmind
    write_tree(tmp_path, {"city.yaml": SCIFI})
    render("city.yaml", cwd=tmp_path, base=base)
    code, out, _ = render("city.yaml", "--dry-run", "--budget", "0.01", cwd=tmp_path, base=base)
    assert code == 0
    assert "jobs    0 to send ($0.00), 6 already rendered (free)\n" in out
    assert "cost    $0.00 of a $0.01 budget (within budget)\n" in out
    code, out, _ = render(
        "city.yaml", "--dry-run", "--json", "--budget", "0.01", cwd=tmp_path, base=base
    )
    data = json.loads(out)
    assert (data["to_send"], data["already_rendered"], data["estimated_cost_usd"]) == (0, 6, 0.0)
    assert {job["action"] for job in data["jobs"]} == {"reuse"}
    code, out, err = render("city.yaml", "--budget", "0.01", cwd=tmp_path, base=base)
    assert code == 0, err
    assert len(server.posts) == 6


# --- 6. an output path with a comma is rendered once --------------------------------------------


def test_an_output_path_with_a_comma_is_not_rendered_again(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    server, base = segmind
    write_tree(tmp_path, {"city.yaml": SCIFI + 'output: "{{ n }}, night"\n'})
    render("city.yaml", "--limit", "1", cwd=tmp_path, base=base)
    code, out, err = render("city.yaml", "--limit", "1", cwd=tmp_path, base=base)
    assert code == 0, err
    assert out.startswith("city: 0 succeeded, 1 skipped (already rendered)")
    assert len(server.posts) == 1


# --- 7. an image deleted between plan and send fails its job alone -----------------------------


SHOTS = """\
    name: shots
    model: scenecraft
    budget_usd: 5
    matrix:
      product:
        - {id: sofa, image: sofa.png}
        - {id: chair, image: chair.png}
    params:
      image: "{{ product.image }}"
      prompt: "a product photo of a {{ product.id }}"
    """


def test_an_image_deleted_after_planning_fails_only_its_job(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    server, base = segmind
    write_tree(tmp_path, {"shots.yaml": SHOTS, "sofa.png": SOFA, "chair.png": SOFA[:-1] + b"\0"})
    plan = _plan(tmp_path / "shots.yaml")
    (tmp_path / "chair.png").unlink()
    summary = execute(
        plan.model_copy(update={"budget_usd": 5}),
        backend=segmind_backend(KEY, base_url=base),
        out_dir=tmp_path / "out",
        options=RunOptions(),
    )
    results = {result.job: result for result in summary.results}
    assert results["sofa"].status == "succeeded"
    assert results["chair"].status == "failed"
    assert results["chair"].error == (
        f"the image file {tmp_path / 'chair.png'} cannot be read now (No such file or directory): "
        "it changed after the plan was made; nothing was sent"
    )
    assert len(server.posts) == 1
    book = Ledger(Path(os.environ["XDG_DATA_HOME"]) / "render" / "ledger.sqlite")
    rows = {row["job_id"]: row for row in book.jobs_of(summary.run_id)}
    book.close()
    assert (rows["chair"]["status"], rows["chair"]["reserved_usd"]) == ("failed", 0.0)
    assert summary.unknown_usd == 0


# --- 8. a preview says when Segmind would refuse the run ----------------------------------------


def test_a_preview_over_budget_says_segmind_would_refuse_it(tmp_path: Path) -> None:
    write_tree(tmp_path, {"shots.yaml": SHOTS, "sofa.png": SOFA, "chair.png": SOFA})
    here = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(
            cli, ["shots.yaml", "--budget", "0.5"], env={"SEGMIND_API_KEY": ""}, prog_name="render"
        )
    finally:
        os.chdir(here)
    assert result.exit_code == 0
    assert (
        "note: the preview renders anyway, but on Segmind this run would be refused: the 2 jobs "
        "to send cost $0.678, more than the $0.50 budget: raise the budget, or narrow the run "
        "with --only or --limit\n"
    ) in result.stderr


# --- 9. a plan with errors does not read as fine -----------------------------------------------


def test_a_plan_with_errors_says_how_many_jobs_failed(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "city.yaml": SCIFI.replace(
                'numbered {{ n }}"', 'numbered {{ n }}"\n      samples: "{{ n }}"'
            )
        },
    )
    result = CliRunner().invoke(cli, [str(tmp_path / "city.yaml"), "--dry-run"], prog_name="render")
    assert result.exit_code == 2
    first = result.stdout.splitlines()[0]
    assert first.endswith("· sd1.5-scifi · 6 jobs, 2 with errors"), first
    assert (
        "cost    not estimated: 2 jobs cannot run until the errors below are fixed\n"
        in result.stdout
    )
    result = CliRunner().invoke(
        cli, [str(tmp_path / "city.yaml"), "--dry-run", "--json"], prog_name="render"
    )
    data = json.loads(result.stdout)
    assert (data["job_count"], data["jobs_with_errors"], data["within_budget"]) == (4, 2, None)


# --- the newest record of a job decides --------------------------------------------------------


def test_a_newer_queued_record_wins_over_an_older_success_whose_file_is_gone(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    """The job succeeds, its file is deleted, a re-run is killed while the job is queued: the next
    run collects that request. It POSTed it a third time."""
    server, base = segmind
    write_tree(tmp_path, {"city.yaml": SCIFI.replace("n: [0, 1, 2, 3, 4, 5]", "n: [0]")})
    render("city.yaml", cwd=tmp_path, base=base)
    (tmp_path / "renders" / "city" / "0.png").unlink()
    server.app = Segmind.make(latency_s=0.5)
    plan = _plan(tmp_path / "city.yaml")
    server.posts.clear()
    _interrupt(plan, base, tmp_path / "renders" / "city")
    code, out, err = render("city.yaml", cwd=tmp_path, base=base)
    assert code == 0, err
    assert out.startswith("city: 1 succeeded; $0.01 spent")
    assert len(server.posts) == 1, "the queued job was sent again"


def test_a_newer_sending_record_wins_over_an_older_success_whose_file_is_gone(
    tmp_path: Path, segmind: tuple[Segmind, str]
) -> None:
    server, base = segmind
    write_tree(tmp_path, {"city.yaml": SCIFI.replace("n: [0, 1, 2, 3, 4, 5]", "n: [0]")})
    render("city.yaml", cwd=tmp_path, base=base)
    (tmp_path / "renders" / "city" / "0.png").unlink()
    book = Ledger(Path(os.environ["XDG_DATA_HOME"]) / "render" / "ledger.sqlite")
    (earlier,) = list(book.db.execute("SELECT * FROM jobs"))
    # A later run killed after it wrote "sending": the request may have left.
    book.start_run(
        "20991231-000000-000-dead",
        recipe="city",
        recipe_path="city.yaml",
        model="sd1.5-scifi",
        backend=earlier["backend"],
        out_dir=str(tmp_path / "renders" / "city"),
        budget_usd=1,
    )
    book.job(
        "20991231-000000-000-dead",
        "0",
        model="sd1.5-scifi",
        backend=earlier["backend"],
        payload_sha256=earlier["payload_sha256"],
        status="sending",
        reserved_usd=0.01,
    )
    book.close()
    code, out, _ = render("city.yaml", cwd=tmp_path, base=base)
    assert code == 1
    assert "unknown  0: sent by run 20991231-000000-000-dead but never answered" in out
    assert len(server.posts) == 1
