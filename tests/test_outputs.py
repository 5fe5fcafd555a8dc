"""Output files: whole or not at all, named after the plan, checked for intactness; the manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.outputs import OutputStore


def test_write_is_atomic_and_returns_the_hash(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out")
    digest = store.write("sofa/cozy-1x1.png", b"\x89PNG data")
    assert digest == hashlib.sha256(b"\x89PNG data").hexdigest()
    assert [p.name for p in (tmp_path / "out" / "sofa").iterdir()] == ["cozy-1x1.png"]


def test_paths_follow_the_plan_and_the_bytes(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)
    assert store.paths_for("a/b.jpg", [".jpg"]) == ["a/b.jpg"]
    assert store.paths_for("a/b.jpg", [".png"]) == ["a/b.png"]  # the bytes say PNG
    assert store.paths_for("a/b.png", [".png", ".png", ".png"]) == [
        "a/b.png",
        "a/b-2.png",
        "a/b-3.png",
    ]
    assert store.paths_for("a/b.png", [".bin"]) == ["a/b.png"]


def test_intact_notices_a_changed_or_missing_file(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)
    digest = store.write("x.png", b"one")
    assert store.intact(["x.png"], [digest])
    (tmp_path / "x.png").write_bytes(b"two")
    assert not store.intact(["x.png"], [digest])
    (tmp_path / "x.png").unlink()
    assert not store.intact(["x.png"], [digest])
    assert not store.intact([], [])


def test_manifest_lines_survive_a_line_cut_by_a_kill(tmp_path: Path) -> None:
    store = OutputStore(tmp_path)
    store.record({"run": "r1", "job": "a", "status": "succeeded"})
    with store.manifest.open("a") as handle:
        handle.write('{"run": "r1", "job": "b", "sta')  # what a SIGKILL mid-write leaves
    resumed = OutputStore(tmp_path)  # the next run
    resumed.prepare()
    resumed.record({"run": "r2", "job": "b", "status": "succeeded"})
    assert [(e["run"], e["job"]) for e in resumed.entries()] == [("r1", "a"), ("r2", "b")]
    assert resumed.entries("r2") == [{"job": "b", "run": "r2", "status": "succeeded"}]


def test_a_replaced_picture_is_kept_under_its_hash_and_found_again(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out")
    store.prepare()
    first = store.write("sofa/cozy.png", b"first picture")
    assert store.write("sofa/cozy.png", b"first picture") == first  # the same bytes: nothing kept
    assert not (tmp_path / "out/.history").exists()
    second = store.write("sofa/cozy.png", b"second picture")
    kept = tmp_path / "out/.history" / f"{first}.png"
    assert kept.read_bytes() == b"first picture"
    assert (tmp_path / "out/sofa/cozy.png").read_bytes() == b"second picture"
    assert store.kept("sofa/cozy.png", first) == kept
    assert store.kept("sofa/cozy.png", second) == tmp_path / "out/sofa/cozy.png"
    assert store.kept("sofa/cozy.png", "0" * 64) is None
    # A run's own record is not a picture: it is replaced, never kept.
    store.write_run("r1", {"a": 1})
    store.write_run("r1", {"a": 2})
    assert sorted(p.name for p in (tmp_path / "out/.history").iterdir()) == [f"{first}.png"]
