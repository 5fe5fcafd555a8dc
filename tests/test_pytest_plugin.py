"""The recipe plugin, run as users run it (pytester): snapshots, readable diffs, updates, replays."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

# Imported here, before pytester snapshots sys.modules: an in-process run would otherwise import
# them again and mix two copies of PyYAML's C loader.
import engine.cassettes
import engine.executor
import engine.plan
import engine.recipe
from engine.cli import cli
from tests.helpers import ROOT, write_tree

del engine

RECIPE = """\
    model: scenecraft
    matrix:
      product:
        - {id: sofa, image: images/sofa.png, noun: orange sofa}
        - {id: lamp, image: images/lamp.png, noun: brass lamp}
      style: [cozy, terrace]
    params:
      image: "{{ product.image }}"
      prompt: "A {{ product.noun }}, {{ style }} scene, soft light"
      megapixel: "0.5"
      seed: auto
    """


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_tree(
        pytester.path,
        {
            "recipes/shop.yaml": RECIPE,
            "recipes/images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
            "recipes/images/lamp.png": (ROOT / "recipes" / "images" / "lamp.png").read_bytes(),
            "recipes/notes.yaml": "title: not a recipe\nitems: [1, 2]\n",
        },
    )
    return pytester


def test_each_recipe_becomes_five_tests_and_other_yaml_is_left_alone(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest("recipes", "--collect-only", "-q")
    assert result.outlines[:5] == [
        "recipes/shop.yaml::expands",
        "recipes/shop.yaml::validates",
        "recipes/shop.yaml::snapshot",
        "recipes/shop.yaml::replays",
        "recipes/shop.yaml::looks",
    ]
    assert "notes.yaml" not in result.stdout.str()


def test_a_missing_snapshot_fails_until_render_update_writes_it(project: pytest.Pytester) -> None:
    result = project.runpytest("recipes")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*no snapshot yet*run pytest --render-update to write it"])
    project.runpytest("recipes", "--render-update").assert_outcomes(passed=3, skipped=2)
    snapshot = project.path / "recipes" / "__snapshots__" / "shop.json"
    assert '"sofa/cozy"' in snapshot.read_text()
    assert '"image": "images/sofa.png"' in snapshot.read_text()  # relative, so it does not churn
    project.runpytest("recipes").assert_outcomes(passed=3, skipped=2)


def test_a_prompt_edit_fails_with_a_readable_diff_naming_the_jobs(project: pytest.Pytester) -> None:
    project.runpytest("recipes", "--render-update")
    recipe = project.path / "recipes" / "shop.yaml"
    recipe.write_text(recipe.read_text().replace("soft light", "golden light"))
    result = project.runpytest("recipes")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "the payloads of recipe shop changed: 4 jobs changed, 0 added, 0 removed (run pytest --render-update to accept)",
            "payload.prompt in 4 jobs (sofa/cozy, sofa/terrace, lamp/cozy, lamp/terrace):",
            "  -soft light",
            "  +golden light",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    project.runpytest("recipes", "--render-update").assert_outcomes(passed=3, skipped=2)
    project.runpytest("recipes").assert_outcomes(passed=3, skipped=2)


def test_added_and_removed_jobs_are_named(project: pytest.Pytester) -> None:
    project.runpytest("recipes", "--render-update")
    recipe = project.path / "recipes" / "shop.yaml"
    recipe.write_text(recipe.read_text().replace("style: [cozy, terrace]", "style: [cozy, loft]"))
    result = project.runpytest("recipes")
    result.stdout.fnmatch_lines(
        ["added: 2 jobs (sofa/loft, lamp/loft)", "removed: 2 jobs (lamp/terrace, sofa/terrace)"]
    )


def test_update_writes_only_what_ran_and_deletes_nothing(project: pytest.Pytester) -> None:
    write_tree(project.path, {"recipes/__snapshots__/gone.json": '{"kept": true}\n'})
    project.runpytest("recipes", "--render-update")
    assert (
        project.path / "recipes" / "__snapshots__" / "gone.json"
    ).read_text() == '{"kept": true}\n'
    assert sorted(p.name for p in (project.path / "recipes" / "__snapshots__").iterdir()) == [
        "gone.json",
        "shop.json",
    ]


def test_a_broken_recipe_fails_expands_with_its_message(project: pytest.Pytester) -> None:
    recipe = project.path / "recipes" / "shop.yaml"
    recipe.write_text(recipe.read_text().replace("model: scenecraft", "model: scenecraf"))
    result = project.runpytest("recipes", "-k", "expands")
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(
        ["*shop.yaml:1: model: unknown model 'scenecraf'; did you mean 'scenecraft'?*"]
    )


def test_invalid_payloads_fail_validates(project: pytest.Pytester) -> None:
    recipe = project.path / "recipes" / "shop.yaml"
    recipe.write_text(recipe.read_text().replace("seed: auto", "steps: 99"))
    result = project.runpytest("recipes", "-k", "validates")
    result.stdout.fnmatch_lines(
        [
            "4 payload problems:",
            "*shop.yaml:11: steps: 99 is above the maximum 50 (allowed: an integer from 1 to 50) [[]sofa/cozy]",
        ]
    )


def test_a_cassette_is_replayed_and_a_changed_job_is_reported(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.path)
    recorded = CliRunner().invoke(
        cli,
        [
            "recipes/shop.yaml",
            "--backend",
            "preview",
            "--cassette",
            "cassettes/shop.yaml",
            "--out",
            "out",
        ],
        env={"RENDER_HOME": str(project.path / "home")},
    )
    assert recorded.exit_code == 0, recorded.output
    project.runpytest("recipes", "-k", "replays").assert_outcomes(passed=1, deselected=4)
    recipe = project.path / "recipes" / "shop.yaml"
    recipe.write_text(recipe.read_text().replace("soft light", "golden light"))
    result = project.runpytest("recipes", "-k", "replays")
    result.assert_outcomes(failed=1, deselected=4)
    # Inside pytest the advice is pytest's own (the cassette is of the bundled simulator: free).
    result.stdout.fnmatch_lines(
        [
            "4 of 4 jobs do not replay from *shop.yaml:",
            "4 jobs (*): the cassette has no recording of this request (run pytest "
            "--render-update to record it again, free); what changed since it was recorded:",
        ]
    )
    # An update records the changed jobs again, for free, forgets the stale recordings, and lists
    # what it wrote.
    updated = project.runpytest("recipes", "--render-update")
    updated.assert_outcomes(passed=4, skipped=1)
    updated.stdout.fnmatch_lines(
        [
            "*render --render-update*",
            "wrote snapshot *shop.json",
            "re-recorded cassette *shop.yaml: 18 interactions, 16 of them recorded by this run*",
        ]
    )
    project.runpytest("recipes").assert_outcomes(passed=4, skipped=1)
    cassette = (project.path / "cassettes" / "shop.yaml").read_text()
    assert "golden light" in cassette
    assert "soft light" not in cassette
    shutil.rmtree(project.path / "cassettes")
    project.runpytest("recipes", "-k", "replays").assert_outcomes(skipped=1, deselected=4)


def test_an_update_never_records_a_segmind_cassette_again(project: pytest.Pytester) -> None:
    write_tree(project.path, {"cassettes/shop.yaml": SEGMIND_CASSETTE})
    result = project.runpytest("recipes", "--render-update", "-k", "replays")
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(
        [
            "*no recording of this request (this cassette was recorded against Segmind: re-record "
            "it with `render *shop.yaml --cassette *shop.yaml --record new` (it costs money))*",
            "--render-update leaves a cassette recorded against Segmind alone",
        ]
    )
    assert (project.path / "cassettes" / "shop.yaml").read_text() == textwrap.dedent(
        SEGMIND_CASSETTE
    )


SEGMIND_CASSETTE = """\
    version: 1
    interactions:
    - request:
        method: POST
        uri: https://api.segmind.com/v2/segmind-scenecraft-v01
        body: '{"prompt": "something else"}'
        headers: {}
      response:
        status: {code: 200, message: OK}
        headers: {}
        body: {string: '{}'}
    """


def test_options_and_markers_are_registered(project: pytest.Pytester) -> None:
    help_text = project.runpytest("--help").stdout.str()
    assert "render recipes (engine.pytest_plugin):" in help_text
    assert "--render-update" in help_text
    assert "--render-cassettes=DIR" in help_text
    markers = project.runpytest("--markers").stdout.str()
    assert "@pytest.mark.render: a test generated from a render recipe" in markers


def test_the_projects_own_recipes_pass(pytester: pytest.Pytester) -> None:
    del pytester  # the real recipes/ run as part of this suite (testpaths); this pins their names
    assert sorted(p.stem for p in (ROOT / "recipes" / "__snapshots__").glob("*.json")) == sorted(
        p.stem for p in (ROOT / "recipes").glob("*.yaml")
    )
    assert Path(ROOT / "cassettes" / "spring.yaml").exists()


def test_looks_holds_the_replayed_pictures_to_the_baseline(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.path)
    env = {"RENDER_HOME": str(project.path / "home")}
    record = ["recipes/shop.yaml", "--backend", "preview", "--cassette", "cassettes/shop.yaml"]
    done = CliRunner().invoke(cli, [*record, "--out", "out"], env=env)
    assert done.exit_code == 0, done.output
    project.runpytest("recipes", "-k", "looks").assert_outcomes(skipped=1, deselected=4)
    approved = CliRunner().invoke(cli, ["approve", "out/shop", "--only", "style=cozy"], env=env)
    assert approved.exit_code == 0, approved.output
    made = CliRunner().invoke(cli, ["baseline", "out/shop"], env=env)
    baseline = project.path / "recipes" / "__snapshots__" / "shop.baseline.json"
    assert made.output == f"baseline: 2 approved pictures of shop in {baseline}\n"
    project.runpytest("recipes", "-k", "looks").assert_outcomes(passed=1, deselected=4)
    # The cassette recorded again after an edit: it now holds other pictures for these jobs.
    recipe = project.path / "recipes" / "shop.yaml"
    recipe.write_text(recipe.read_text().replace("scene, soft light", "scene at night, neon light"))
    rerecorded = project.runpytest("recipes", "-k", "replays", "--render-update")
    rerecorded.assert_outcomes(passed=1, deselected=4)
    failed = project.runpytest("recipes", "-k", "looks")
    failed.assert_outcomes(failed=1, deselected=4)
    failed.stdout.fnmatch_lines(
        [
            "2 of 2 pictures no longer look like the baseline *shop.baseline.json (distance above *):",
            "  *cozy: *; new picture *.render-looks/shop/*-cozy.new.*, difference *.render-looks/shop/*-cozy.diff.png",
            "run pytest --render-update to accept how they look now",
        ]
    )
    updated = project.runpytest("recipes", "-k", "looks", "--render-update")
    updated.assert_outcomes(passed=1, deselected=4)
    updated.stdout.fnmatch_lines(["updated baseline *shop.baseline.json (2 pictures)"])
    project.runpytest("recipes", "-k", "looks").assert_outcomes(passed=1, deselected=4)
