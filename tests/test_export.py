"""`render export RUN --approved DEST`: the approved pictures under names a DAM accepts, with a CSV
and JSON manifest of what made each; exporting again changes nothing that did not change."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.helpers import Render, write_tree

CITY = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      district: [harbour, "Tower Hill"]
      hour: [dawn, noon]
    params:
      prompt: "=HYPERLINK(1) a sci-fi {{ district }} at {{ hour }}"
      negative_prompt: "blur"
      seed: auto
    """


def test_export_copies_the_approved_with_a_manifest_and_is_idempotent(
    render: Render, tmp_path: Path
) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    render("city.yaml")
    render("approve", "renders/city", "--only", "hour=dawn", "--note", "hero")
    render("reject", "renders/city", "harbour/noon")
    code, out, _ = render("export", "renders/city", "--approved", "dam")
    assert (code, out) == (
        0,
        "exported 2 approved pictures of city to dam (2 copied, 0 unchanged, 0 no longer approved "
        "removed); 1 pending, 1 rejected\n",
    )
    assert sorted(p.name for p in (tmp_path / "dam").iterdir()) == [
        "city-harbour-dawn.png",
        "city-tower-hill-dawn.png",
        "manifest.csv",
        "manifest.json",
    ]
    images = json.loads((tmp_path / "dam/manifest.json").read_text())["images"]
    first = images[0]
    assert first["job"] == "harbour/dawn"
    assert first["values"] == {"district": "harbour", "hour": "dawn"}
    assert first["model"] == "sd1.5-scifi"
    assert first["texts"] == {
        "prompt": "=HYPERLINK(1) a sci-fi harbour at dawn",
        "negative_prompt": "blur",
    }
    assert isinstance(first["seed"], int)
    assert first["note"] == "hero"
    with (tmp_path / "dam/manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "file", "job", "district", "hour", "model", "negative_prompt", "prompt", "seed",
        "cost_usd", "sha256", "run", "note",
    ]  # fmt: skip
    # A spreadsheet must not run a prompt as a formula.
    assert rows[0]["prompt"] == "'=HYPERLINK(1) a sci-fi harbour at dawn"
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "dam").glob("*.png")}
    code, out, _ = render("export", "renders/city", "--approved", "dam")
    assert "(0 copied, 2 unchanged, 0 no longer approved removed)" in out
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "dam").glob("*.png")} == before


def test_a_picture_no_longer_approved_leaves_the_export(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    render("city.yaml")
    render("approve", "renders/city", "--only", "hour=dawn")
    render("export", "renders/city", "--approved", "dam")
    render("reject", "renders/city", "harbour/dawn")
    code, out, _ = render("export", "renders/city", "--approved", "dam")
    assert code == 0
    assert "(0 copied, 1 unchanged, 1 no longer approved removed)" in out
    assert not (tmp_path / "dam/city-harbour-dawn.png").exists()


def test_export_into_a_file_is_refused(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"city.yaml": CITY, "dam": "not a folder"})
    render("city.yaml")
    code, _, err = render("export", "renders/city", "--approved", "dam")
    assert code == 2
    assert err.endswith("Error: Invalid value for '--approved': Directory 'dam' is a file.\n")
