"""`render RECIPE`: the main job through the CLI, with the preview backend and the money gates."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import ROOT, Render, write_tree

RECIPE = """\
    model: scenecraft
    budget_usd: 2
    matrix:
      product:
        - {id: sofa, image: images/sofa.png}
      aspect_ratio: ["1:1 (Perfect Square)", "16:9 (Panorama)"]
    params:
      image: "{{ product.image }}"
      prompt: "a {{ product.id }}"
      aspect_ratio: "{{ aspect_ratio }}"
      megapixel: "0.5"
      seed: auto
    """


@pytest.fixture
def project(tmp_path: Path, render: Render) -> Path:
    """The recipe and its image in the working folder, where ``render`` runs."""
    write_tree(
        tmp_path,
        {
            "r.yaml": RECIPE,
            "images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
        },
    )
    return tmp_path


def user_ledger() -> Path:
    """The default ledger: in the user data folder (the tests point XDG_DATA_HOME at their own)."""
    return Path(os.environ["XDG_DATA_HOME"]) / "render" / "ledger.sqlite"


def test_without_a_key_it_renders_free_previews_with_a_notice(
    project: Path, render: Render
) -> None:
    code, out, err = render("r.yaml")
    assert code == 0, err
    assert err.startswith("note: SEGMIND_API_KEY is not set: rendering free local previews")
    assert "[2/2] " in err  # a plain line per job off a terminal
    assert out.startswith("r: 2 succeeded; $0 spent (local preview); ")
    assert sorted(p.name for p in (project / "renders" / "r" / "sofa").iterdir()) == [
        "16x9.jpg",
        "1x1.jpg",
    ]
    manifest = [
        json.loads(line)
        for line in (project / "renders" / "r" / "manifest.jsonl").read_text().splitlines()
    ]
    # A line as each request leaves, another when it is queued, and one when it ends.
    assert [entry["status"] for entry in manifest].count("succeeded") == 2
    assert {entry["status"] for entry in manifest} == {"sending", "submitted", "succeeded"}
    # The ledger is the user's, not the working folder's: another folder finds it too.
    assert not (project / ".render").exists()
    rows = sqlite3.connect(user_ledger()).execute("SELECT status, backend FROM jobs").fetchall()
    assert rows == [("succeeded", "preview"), ("succeeded", "preview")]


def test_a_second_run_skips_what_is_done_and_force_renders_again(
    project: Path, render: Render
) -> None:
    render("r.yaml")
    code, out, _ = render("r.yaml")
    assert code == 0
    assert out.startswith("r: 0 succeeded, 2 skipped (already rendered); ")
    code, out, _ = render("r.yaml", "--force")
    assert out.startswith("r: 2 succeeded; ")
    (project / "renders" / "r" / "sofa" / "1x1.jpg").write_bytes(b"damaged")
    code, out, _ = render("r.yaml")
    assert out.startswith(
        "r: 1 succeeded, 1 skipped (already rendered); "
    )  # a damaged output is redone


def test_out_and_render_home_move_the_outputs_and_the_ledger(project: Path, render: Render) -> None:
    code, _, _ = render("r.yaml", "--out", "shots", RENDER_HOME=str(project / "home"))
    assert code == 0
    assert (project / "shots" / "r" / "sofa" / "1x1.jpg").exists()
    assert (project / "home" / "ledger.sqlite").exists()
    assert not (project / ".render").exists()


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (
            ("--backend", "segmind"),
            {},
            2,
            "Error: --backend segmind needs SEGMIND_API_KEY in the environment",
        ),
        (
            ("--budget", "0.5"),
            {"SEGMIND_API_KEY": "sk-test"},
            3,
            "error: r.yaml: the 2 jobs to send cost $0.678, more than the $0.50 budget: raise the budget, or narrow the run with --only or --limit",
        ),
    ],
)
def test_money_gates_before_anything_is_sent(
    project: Path,
    render: Render,
    args: tuple[str, ...],
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    got, _, err = render("r.yaml", *args, SEGMIND_BASE_URL="http://127.0.0.1:9", **env)
    assert got == code
    assert message in err
    assert not (project / "renders").exists()


def test_no_budget_and_an_unpriced_model_are_refused_for_segmind(
    project: Path, render: Render
) -> None:
    write_tree(
        project,
        {
            "nobudget.yaml": RECIPE.replace("    budget_usd: 2\n", ""),
            "unpriced.yaml": "model: sd1.5-scifi\nbudget_usd: 1\nmatrix: {n: [1]}\nparams: {prompt: a city}\n",
        },
    )
    env = {"SEGMIND_API_KEY": "sk-test", "SEGMIND_BASE_URL": "http://127.0.0.1:9"}
    code, _, err = render("nobudget.yaml", **env)
    assert (code, err) == (
        2,
        "error: nobudget.yaml: no budget: set `budget_usd` in the recipe or pass --budget (the run would send 2 jobs for $0.678)\n",
    )
    code, _, err = render("unpriced.yaml", **env)
    assert (code, err) == (
        2,
        "error: unpriced.yaml: sd1.5-scifi has no price: set `price_usd` in the recipe (or use --backend preview) to run it\n",
    )


def test_above_five_dollars_without_a_terminal_needs_yes(project: Path, render: Render) -> None:
    write_tree(
        project,
        {
            "big.yaml": RECIPE.replace("budget_usd: 2", "budget_usd: 50").replace(
                '["1:1 (Perfect Square)", "16:9 (Panorama)"]',
                '["1:1 (Perfect Square)", "16:9 (Panorama)", "4:5 (Artistic Frame)", "2:3 (Classic Portrait)", "3:4 (Golden Ratio)", "3:5 (Elegant Vertical)", "5:7 (Balanced Portrait)", "5:8 (Tall Portrait)", "7:9 (Modern Portrait)", "9:16 (Slim Vertical)", "9:19 (Tall Slim)", "9:21 (Ultra Tall)", "9:32 (Skyline)", "3:2 (Golden Landscape)", "4:3 (Classic Landscape)", "5:3 (Wide Horizon)"]',
            )
        },
    )
    code, _, err = render(
        "big.yaml", SEGMIND_API_KEY="sk-test", SEGMIND_BASE_URL="http://127.0.0.1:9"
    )
    assert code == 2
    assert (
        err
        == "error: big.yaml: the run costs $5.424 (over $5.00): pass --yes to run it without a terminal to confirm on\n"
    )


def test_a_plan_with_errors_runs_nothing(project: Path, render: Render) -> None:
    write_tree(project, {"bad.yaml": RECIPE.replace("seed: auto", "steps: 99")})
    code, out, _ = render("bad.yaml")
    assert code == 2
    assert "params.steps: 99 is above the maximum 50" in out
    assert not (project / "renders").exists()


def test_ledger_command_shows_the_spend(project: Path, render: Render) -> None:
    render("r.yaml")
    code, out, _ = render("ledger", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ledger"] == str(user_ledger())
    (row,) = data["spend"]
    (ran,) = data["runs"]
    assert (ran["recipe"], ran["backend"], ran["status"], ran["jobs"]) == (
        "r",
        "preview",
        "done",
        2,
    )
    assert (row["recipe"], row["model"], row["backend"], row["jobs"], row["spent_usd"]) == (
        "r",
        "scenecraft",
        "preview",
        2,
        0.0,
    )
    code, out, _ = render("ledger")
    assert "total spent on Segmind: $0.00" in out
    assert f"{ran['id']}  r " in out  # the run ids a user takes for `render report`


def test_ledger_command_before_any_run(project: Path, render: Render) -> None:
    code, out, _ = render("ledger")
    assert (code, out) == (0, f"no runs yet (no ledger at {user_ledger()})\n")


def test_a_local_render_folder_is_still_used_with_a_notice(project: Path, render: Render) -> None:
    (project / ".render").mkdir()
    sqlite3.connect(project / ".render" / "ledger.sqlite").close()
    code, _, err = render("r.yaml")
    assert code == 0
    assert (
        "note: using the ledger in .render/ of this folder (set RENDER_HOME to choose another; "
        "without either, runs share the ledger in your user data folder)\n"
    ) in err
    assert not user_ledger().exists()
