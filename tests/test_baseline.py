"""A recipe's baseline: `render baseline RUN` keeps the approved pictures' perceptual hashes beside
the snapshot; `render RECIPE --compare-baseline` renders the canaries again and exits 1 when one
drifted past the threshold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers import ROOT, Render


def test_baseline_then_canaries_hold_until_the_pictures_change(
    render: Render, tmp_path: Path
) -> None:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    assert render("recipes/spring.yaml").code == 0
    code, _, err = render("baseline", "renders/spring")
    assert code == 2
    assert "has no approved picture: approve the ones that look right" in err
    render("approve", "renders/spring", "--only", "style=terrace")
    code, out, _ = render("baseline", "renders/spring")
    path = tmp_path / "recipes/__snapshots__/spring.baseline.json"
    assert (code, out) == (0, f"baseline: 9 approved pictures of spring in {path}\n")
    stored = json.loads(path.read_text())
    assert sorted(stored["jobs"]) == sorted(
        f"{p}/terrace/{r}" for p in ("sofa", "armchair", "vase") for r in ("1x1", "4x5", "16x9")
    )
    assert all(len(job["phash"]) == 16 for job in stored["jobs"].values())
    # The same model: the canaries look as approved (paid again: a preview here, so free).
    code, out, _ = render("recipes/spring.yaml", "--only", "product=vase", "--compare-baseline")
    assert code == 0
    assert out.startswith("spring: 3 succeeded")
    assert "baseline: 0 of 3 canaries changed (distance above 0.100)\n" in out
    # Something changed behind the endpoint (here: the scene the pictures show).
    recipe = tmp_path / "recipes/spring.yaml"
    recipe.write_text(recipe.read_text().replace("under cherry blossom", "at night in the snow"))
    code, out, _ = render("recipes/spring.yaml", "--only", "product=vase", "--compare-baseline")
    assert code == 1
    assert "baseline: 3 of 3 canaries changed (distance above 0.100)\n" in out
    assert "  vase/terrace/1x1 " in out


def test_compare_baseline_needs_a_baseline(render: Render, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    code, _, err = render("recipes/spring.yaml", "--compare-baseline", "--dry-run")
    assert code == 2
    assert err == (
        "error: recipes/__snapshots__/spring.baseline.json: no baseline for this "
        "recipe yet (render baseline RUN writes one from a run's approved pictures)\n"
    )
