"""`render RECIPE --dry-run`: what a user reads, the JSON object, and the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli
from tests.helpers import ROOT, write_tree

SPRING = str(ROOT / "recipes" / "spring.yaml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="render")
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a folder of the test's own: renders/ of the project may hold a developer's outputs,
    which a dry run would rightly count as already rendered."""
    monkeypatch.chdir(tmp_path)


def test_dry_run_prints_the_jobs_cost_and_time(tmp_path: Path) -> None:
    out_dir = tmp_path / "shots"
    code, out, err = run(
        SPRING, "--dry-run", "--only", "product=sofa", "--only", "style=cozy", "--out", str(out_dir)
    )
    assert (code, err) == (0, "")
    assert out == (
        f"spring ({SPRING}) · scenecraft · 4 jobs\n"
        f"outputs → {out_dir}/spring/ · backend preview (free local renders; the costs are Segmind's prices)\n"
        "\n"
        "  job             cost    output\n"
        "  sofa/cozy/1x1   $0.339  sofa/cozy-1x1.jpg\n"
        "  sofa/cozy/4x5   $0.339  sofa/cozy-4x5.jpg\n"
        "  sofa/cozy/16x9  $0.339  sofa/cozy-16x9.jpg\n"
        "  sofa/cozy/9x16  $0.339  sofa/cozy-9x16.jpg\n"
        "\n"
        "jobs    4 to send ($1.356)\n"
        "cost    $1.356 of a $15.00 budget (within budget)\n"
        "time    ~34 s at concurrency 8 (~33.64 s a job)\n"
    )


def test_a_large_plan_is_summarised_by_axis(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "big.yaml": """\
                model: sd1.5-scifi
                price_usd: 0.01
                matrix:
                  city: [paris, rome, oslo, lima, kyiv, doha, riga, bern, baku, lome]
                  hour: [dawn, noon, dusk, night, storm]
                params:
                  prompt: "{{ city }} at {{ hour }}"
                  samples: 2
                """
        },
    )
    code, out, _ = run(str(tmp_path / "big.yaml"), "--dry-run")
    assert code == 0
    assert "  50 jobs by axis (--only or --limit lists them one by one):\n" in out
    assert (
        "  hour: dawn 10 ($0.20) · noon 10 ($0.20) · dusk 10 ($0.20) · night 10 ($0.20) · storm 10 ($0.20)\n"
        in out
    )
    assert "  first jobs: paris/dawn, paris/noon, paris/dusk, …\n" in out
    assert "cost    $1.00 (no budget set: give `budget_usd` or --budget)" in out


def test_options_may_come_before_the_recipe() -> None:
    code, out, _ = run("--dry-run", "--limit", "1", SPRING, "--concurrency", "1", "--rpm", "5")
    assert code == 0
    assert "time    ~34 s at concurrency 1, 5 requests a minute (~33.64 s a job)" in out


def test_json_matches_the_design_object() -> None:
    code, out, _ = run(SPRING, "--dry-run", "--json", "--limit", "2")
    assert code == 0
    data = json.loads(out)
    assert data["recipe"] == "spring"
    assert data["job_count"] == 2
    assert data["jobs"][0]["payload"]["image"] == str(ROOT / "recipes" / "images" / "sofa.png")
    assert data["errors"] == []


def test_several_recipes_give_a_json_list() -> None:
    lighting = str(ROOT / "recipes" / "lighting.yaml")
    code, out, _ = run(SPRING, lighting, "--dry-run", "--json", "--limit", "1")
    assert code == 0
    assert [plan["model"] for plan in json.loads(out)] == ["scenecraft", "ai-product-photography"]


def test_over_budget_exits_3() -> None:
    code, out, _ = run(SPRING, "--dry-run", "--budget", "5")
    assert code == 3
    assert "cost    $11.526 of a $5.00 budget (OVER BUDGET)" in out


def test_an_unpriced_plan_says_so() -> None:
    code, out, _ = run(str(ROOT / "recipes" / "scifi.yaml"), "--dry-run")
    assert code == 0
    assert (
        "cost    unpriced (sd1.5-scifi has no price: set `price_usd` in the recipe to run it)"
        in out
    )
    assert "time    unknown (sd1.5-scifi gives no latency)" in out


def test_schema_is_the_recipe_json_schema() -> None:
    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["title"] == "Recipe"
    assert set(schema["required"]) == {"model", "matrix", "params"}
    assert schema["additionalProperties"] is False


def test_help_lists_the_recipe_form_and_commands() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "Usage: render [RECIPE...] [OPTIONS] | COMMAND [ARGS]..." in out
    # Issue 10: the top-level help lists the run options, and the commands in full.
    flat = " ".join(out.split())
    assert "Run options (render RECIPE... [OPTIONS]): --dry-run Validate and price" in flat
    assert "--retry-unknown Send again jobs an earlier run sent but never heard back" in flat
    assert (
        "ledger Show spend by day, recipe and model, and the runs with their ids, from the ledger."
        in flat
    )
    assert "..." not in out.split("Commands:")[1]
    assert (
        "Outputs go to renders/<recipe name>/ under the folder you run render from (or --out "
        "DIR); a recipe's image paths are read relative to the recipe file." in flat
    )
    code, out, _ = run("run", "--help")
    assert "--dry-run" in out
    assert "--only AXIS=VALUE" in out


def test_the_console_script_plans_the_flagship(tmp_path: Path) -> None:
    render = Path(sys.executable).with_name("render")
    done = subprocess.run(
        [str(render), "recipes/spring.yaml", "--dry-run", "--limit", "1"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("spring (recipes/spring.yaml) · scenecraft · 1 job\n")
