"""`render gc`: the earlier pictures kept in .history/ are removed once none of the newest runs shows
them and no verdict names them; the folder's own pictures are never touched."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Render, write_tree

RECIPE = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      n: [0, 1]
    params:
      prompt: "a sci-fi city {{ n }}, version {{ version }}"
    vars:
      version: 1
    """


def _render_version(render: Render, root: Path, version: int) -> None:
    recipe = root / "city.yaml"
    recipe.write_text(recipe.read_text().replace(f"version: {version - 1}", f"version: {version}"))
    assert render("city.yaml").code == 0


def test_gc_keeps_what_the_newest_runs_and_the_verdicts_need(
    render: Render, tmp_path: Path
) -> None:
    write_tree(tmp_path, {"city.yaml": RECIPE})
    assert render("city.yaml").code == 0
    render("reject", "renders/city", "0")  # version 1 of job 0: named by a verdict
    for version in (2, 3, 4):
        _render_version(render, tmp_path, version)
    history = tmp_path / "renders/city/.history"
    assert len(list(history.iterdir())) == 6  # versions 1 to 3 of both jobs
    code, out, _ = render("gc", "renders/city", "--keep-runs", "2")
    assert code == 0
    # Runs 3 and 4 show versions 3 and 4; the verdict names version 1 of job 0.
    assert out.startswith("renders/city: 3 kept pictures removed (")
    assert out.endswith("), 3 kept\n")
    assert len(list(history.iterdir())) == 3
    assert sorted(p.name for p in (tmp_path / "renders/city").glob("*.png")) == ["0.png", "1.png"]
    code, out, _ = render("gc", "--keep-runs", "2")
    assert (code, out.split(":")[1].strip()[:1]) == (0, "0")
