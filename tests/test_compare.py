"""`render compare A B`: two runs paired by job id, most changed first, jobs on one side listed; a run
sees the recipe's pictures as it left them, and no later run destroys what it compares."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.shots import run_shots
from tests.helpers import ROOT, Render

TERRACE_JOBS = {
    f"{product}/terrace/{ratio}"
    for product in ("sofa", "armchair", "vase")
    for ratio in ("1x1", "4x5", "16x9")
}


def _flagship_twice(render: Render, tmp_path: Path) -> tuple[str, str]:
    """The flagship's preview, then again after a prompt edit that changes one scene."""
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    assert render("recipes/spring.yaml").code == 0
    first = run_shots(tmp_path / "renders/spring").run_id
    recipe = tmp_path / "recipes/spring.yaml"
    recipe.write_text(
        recipe.read_text().replace("under cherry blossom", "beside a blue pool at night")
    )
    assert render("recipes/spring.yaml").code == 0
    second = run_shots(tmp_path / "renders/spring").run_id
    return first, second


def test_the_flagship_pairs_every_job_and_flags_exactly_the_changed_ones(
    render: Render, tmp_path: Path
) -> None:
    first, second = _flagship_twice(render, tmp_path)
    code, out, err = render("compare", first, "renders/spring", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["a"], result["b"]) == (first, second)
    assert len(result["pairs"]) == 34
    assert {pair["job"] for pair in result["pairs"] if pair["changed"]} == TERRACE_JOBS
    distances = [pair["distance"] for pair in result["pairs"]]
    assert distances == sorted(distances, reverse=True)
    assert (result["only_a"], result["only_b"]) == ([], [])
    # The first run's pictures of the terrace were replaced, and kept: A still shows them.
    changed = [pair for pair in result["pairs"] if pair["changed"]]
    assert all("/.history/" in pair["a"] and Path(pair["a"]).is_file() for pair in changed)


def test_the_page_is_written_beside_b_and_says_what_changed(render: Render, tmp_path: Path) -> None:
    first, second = _flagship_twice(render, tmp_path)
    code, out, _ = render("compare", first, second)
    page = tmp_path / "renders/spring" / f"compare-{first}-{second}.html"
    assert (code, out) == (0, f"9 of 34 pairs changed\n  page  {page}\n")
    html = page.read_text()
    assert html.count('<article class="pair changed"') == 9
    assert html.count('<article class="pair"') == 25
    assert 'src="data:image/png;base64,' in html  # heat maps inside the page
    assert 'src=".history/' in html  # A's replaced pictures, linked where they are kept


def test_jobs_found_on_one_side_are_listed(render: Render, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    render("recipes/spring.yaml", "--only", "product=sofa", "--out", "a")
    render("recipes/spring.yaml", "--only", "product=vase", "--out", "b")
    code, out, _ = render("compare", "a/spring", "b/spring", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["pairs"] == []
    assert len(result["only_a"]) == 10
    assert len(result["only_b"]) == 9


def test_a_skipped_job_pairs_with_the_picture_it_had(render: Render, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    render("recipes/spring.yaml")
    first = run_shots(tmp_path / "renders/spring").run_id
    render("recipes/spring.yaml", "--only", "product=lamp", "--force")
    code, out, _ = render("compare", first, "renders/spring", "--json")
    pairs = json.loads(out)["pairs"]
    assert code == 0
    assert len(pairs) == 34
    assert not any(pair["changed"] for pair in pairs)


def test_compare_names_a_run_it_cannot_find(render: Render, tmp_path: Path) -> None:
    code, _, err = render("compare", "20990101-000000-000-dead", "renders/spring")
    assert code == 2
    assert err.startswith("error: 20990101-000000-000-dead: no such run folder or run id")


def test_two_recipes_runs_pair_by_job_id(render: Render, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    spring = (tmp_path / "recipes/spring.yaml").read_text()
    autumn = spring.replace("name: spring", "name: autumn").replace(
        "season: spring", "season: autumn"
    )
    (tmp_path / "recipes/autumn.yaml").write_text(autumn)
    render("recipes/spring.yaml")
    render("recipes/autumn.yaml")
    code, out, _ = render("compare", "renders/spring", "renders/autumn", "--json")
    result = json.loads(out)
    assert code == 0
    assert len(result["pairs"]) == 34
    assert (result["only_a"], result["only_b"]) == ([], [])
