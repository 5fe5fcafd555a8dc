"""Issue 15, "done when": a model added from its page (`render specs add`) is at once a model like
the five shipped ones: a recipe on it dry-runs, previews, records and replays a cassette, and passes
the recipe plugin's checks."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

# Imported before pytester snapshots sys.modules (see tests/test_pytest_plugin.py).
import engine.cassettes
import engine.executor
import engine.plan
import engine.recipe
from engine.cli import cli
from tests.helpers import ROOT, write_tree

del engine

PAGE = ROOT / "tests" / "docimport" / "more" / "flux-dev.txt"
RECIPE = """\
    name: flux
    model: flux-dev
    budget_usd: 1
    matrix:
      product: [lamp, sofa]
      light: [dawn, neon]
    params:
      prompt: "a {{ product }} in a loft, {{ light }} light"
      aspect_ratio: "1:1"
      seed: auto
    """


def _render(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, list(args), prog_name="render")
    return done.exit_code, done.output


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.chdir(pytester.path)
    for name in ("RENDER_SPECS_PATH", "SEGMIND_API_KEY", "SEGMIND_BASE_URL", "RENDER_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RENDER_HOME", str(pytester.path / "home"))
    write_tree(pytester.path, {"recipes/flux.yaml": RECIPE})
    code, said = _render("specs", "add", str(PAGE))
    assert code == 0, said
    assert (pytester.path / "home" / "specs" / "flux-dev.yaml").is_file()
    return pytester


def test_a_recipe_on_an_added_model_dry_runs_and_previews(project: pytest.Pytester) -> None:
    code, said = _render("recipes/flux.yaml", "--dry-run")
    assert code == 0, said
    assert "4 to send ($0.08)" in said
    code, said = _render("recipes/flux.yaml", "--backend", "preview", "--out", "out")
    assert code == 0, said
    folder = project.path / "out" / "flux"
    pictures = sorted(p.relative_to(folder).as_posix() for p in folder.glob("*/*.png"))
    assert pictures == ["lamp/dawn.png", "lamp/neon.png", "sofa/dawn.png", "sofa/neon.png"]


def test_it_replays_from_a_cassette_and_passes_the_plugins_checks(
    project: pytest.Pytester,
) -> None:
    code, said = _render(
        "recipes/flux.yaml", "--backend", "preview", "--cassette", "cassettes/flux.yaml",
        "--out", "out",
    )  # fmt: skip
    assert code == 0, said
    code, said = _render(
        "recipes/flux.yaml", "--cassette", "cassettes/flux.yaml", "--record", "none",
        "--out", "replayed",
    )  # fmt: skip
    assert code == 0, said
    assert "replayed from the cassette" in said
    project.runpytest("recipes", "--render-update").assert_outcomes(passed=4, skipped=1)
    project.runpytest("recipes").assert_outcomes(passed=4, skipped=1)
