"""Cassettes: record a run, replay it offline byte for byte, and say what changed when it cannot."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.simulator import parse_faults
from tests.helpers import ROOT, Render, write_tree

KEY = "sk-cassette-test-0123456789abcdef"
RECIPE = """\
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      city: [paris, rome, oslo, lima, kyiv, doha]
    params:
      prompt: "a skyline of {{ city }}, dusk, wide angle"
      samples: 2
      base64: true
    """


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


@pytest.fixture
def recorded(tmp_path: Path, render: Render) -> Path:
    """The recipe recorded against a simulator on a real socket, which is then shut down."""
    write_tree(tmp_path, {"r.yaml": RECIPE})
    with render.simulator(latency_s=0.05, unpriced_usd=0.01, images="preview") as segmind:
        code, out, err = render(
            "r.yaml", "--backend", "segmind", "--cassette", "cassettes/r.yaml", "--out", "recorded", "--concurrency", "6",
            RENDER_HOME=str(tmp_path / "home"), **segmind.env(KEY),
        )  # fmt: skip
        assert code == 0, err
    # Issue 10: recording says what it wrote.
    assert (
        "  cassette wrote cassettes/r.yaml: 30 interactions, 30 of them recorded by this run, "
        "12 new blobs in cassettes/blobs/\n"
    ) in out
    return tmp_path


def test_record_once_on_an_existing_cassette_is_a_replay(recorded: Path, render: Render) -> None:
    """Issue 10: `--record once` against a cassette that exists replays it, and says so."""
    code, out, err = render(
        "r.yaml",
        "--cassette",
        "cassettes/r.yaml",
        "--out",
        "again",
        RENDER_HOME=str(recorded / "home2"),
    )
    assert code == 0, err
    assert out.startswith("r: 6 succeeded; $0 spent (replayed from the cassette); ")
    assert "local preview" not in out + err
    assert "  cassette " not in out  # nothing was written


def test_a_replay_rebuilds_the_same_images_offline(recorded: Path, render: Render) -> None:
    # The simulator is gone and no key is set: only the cassette can answer.
    code, out, err = render(
        "r.yaml",
        "--cassette",
        "cassettes/r.yaml",
        "--record",
        "none",
        "--out",
        "replayed",
        RENDER_HOME=str(recorded / "home2"),
    )
    assert code == 0, err
    assert out.startswith("r: 6 succeeded; $0 spent (replayed from the cassette); ")
    assert "SEGMIND_API_KEY is not set" not in err
    recorded_files = digests(recorded / "recorded" / "r")
    assert len(recorded_files) == 12  # samples: 2
    assert digests(recorded / "replayed" / "r") == recorded_files  # byte for byte, each job its own


def test_a_changed_prompt_fails_its_jobs_with_a_diff_and_sends_nothing(
    recorded: Path, render: Render
) -> None:
    text = (recorded / "r.yaml").read_text().replace("dusk, wide angle", "dawn, wide angle")
    (recorded / "r.yaml").write_text(text)
    before = (recorded / "cassettes" / "r.yaml").read_bytes()
    code, out, _ = render(
        "r.yaml",
        "--cassette",
        "cassettes/r.yaml",
        "--record",
        "none",
        "--out",
        "replayed",
        "--only",
        "city=rome",
        RENDER_HOME=str(recorded / "home2"),
    )
    assert code == 1
    assert (
        "  failed   rome: the cassette has no recording of this request (re-record with --record new to add it, "
        "or --record all to start over); what changed since it was recorded:\n"
        "           --- recorded\n           +++ now\n           -    dusk\n           +    dawn\n"
    ) in out
    assert (recorded / "cassettes" / "r.yaml").read_bytes() == before


def test_the_key_reaches_no_file_a_recorded_run_wrote(recorded: Path) -> None:
    # The cassette and its blobs, the outputs and manifest, the ledger (and its WAL): everything.
    written = [path for path in recorded.rglob("*") if path.is_file()]
    assert any(path.suffix == ".sqlite" for path in written)
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    text = (recorded / "cassettes" / "r.yaml").read_text()
    assert "x-api-key" not in text.lower()
    assert "authorization" not in text.lower()


def test_large_bodies_live_out_of_line_and_are_shared(recorded: Path, render: Render) -> None:
    blobs = recorded / "cassettes" / "blobs"
    names = sorted(p.name for p in blobs.iterdir())
    assert names  # the base64 images of the answers
    assert all(hashlib.sha256((blobs / name).read_bytes()).hexdigest() == name for name in names)
    assert "blob:sha256:" in (recorded / "cassettes" / "r.yaml").read_text()
    # A second cassette of the same jobs reuses the same blobs.
    with render.simulator(unpriced_usd=0.01, images="preview") as segmind:
        code, _, _ = render(
            "r.yaml", "--backend", "segmind", "--cassette", "cassettes/again.yaml", "--out", "again",
            RENDER_HOME=str(recorded / "home3"), **segmind.env(KEY),
        )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in blobs.iterdir()) == names


def test_a_recorded_failure_is_not_replayed_as_success(tmp_path: Path, render: Render) -> None:
    write_tree(tmp_path, {"r.yaml": RECIPE})
    with render.simulator(
        unpriced_usd=0.01, images="tiny", faults=parse_faults("failed=0.5"), seed=4
    ) as segmind:
        code, out, _ = render(
            "r.yaml", "--backend", "segmind", "--cassette", "c.yaml", "--out", "rec",
            RENDER_HOME=str(tmp_path / "h1"), **segmind.env(KEY),
        )  # fmt: skip
    failed = {
        line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("  failed")
    }
    assert code == 1
    assert failed
    code, out, _ = render(
        "r.yaml",
        "--cassette",
        "c.yaml",
        "--record",
        "none",
        "--out",
        "rep",
        RENDER_HOME=str(tmp_path / "h2"),
    )
    assert code == 1
    assert {
        line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("  failed")
    } == failed


def test_a_500_answer_recorded_is_replayed_as_the_same_retry(
    tmp_path: Path, render: Render
) -> None:
    write_tree(tmp_path, {"r.yaml": RECIPE})
    with render.simulator(
        unpriced_usd=0.01, images="tiny", faults=parse_faults("500=0.5"), seed=2, retry_after_s=0
    ) as segmind:
        code, _, err = render(
            "r.yaml", "--backend", "segmind", "--cassette", "c.yaml", "--out", "rec",
            RENDER_HOME=str(tmp_path / "h1"), **segmind.env(KEY),
        )  # fmt: skip
    assert code == 0, err
    assert "code: 500" in (tmp_path / "c.yaml").read_text()
    code, _, err = render(
        "r.yaml",
        "--cassette",
        "c.yaml",
        "--record",
        "none",
        "--out",
        "rep",
        RENDER_HOME=str(tmp_path / "h2"),
    )
    assert code == 0, err
    assert digests(tmp_path / "rep") == digests(tmp_path / "rec")


def test_record_new_adds_only_what_is_missing(recorded: Path, render: Render) -> None:
    text = (
        (recorded / "r.yaml")
        .read_text()
        .replace(
            "[paris, rome, oslo, lima, kyiv, doha]", "[paris, rome, oslo, lima, kyiv, doha, riga]"
        )
    )
    (recorded / "r.yaml").write_text(text)
    cassette = recorded / "cassettes" / "r.yaml"
    count = cassette.read_text().count("method: POST")
    with render.simulator(unpriced_usd=0.01, images="tiny") as segmind:
        code, _, err = render(
            "r.yaml", "--backend", "segmind", "--cassette", "cassettes/r.yaml", "--record", "new", "--out", "n",
            RENDER_HOME=str(recorded / "home4"), **segmind.env(KEY),
        )  # fmt: skip
        assert code == 0, err
        assert len(segmind.state.charges) == 1  # only riga went out
    assert cassette.read_text().count("method: POST") == count + 1


def test_one_recipe_at_a_time_with_a_cassette(tmp_path: Path, render: Render) -> None:
    lighting = str(ROOT / "recipes" / "lighting.yaml")
    code, _, err = render(
        lighting, lighting, "--cassette", str(tmp_path / "c.yaml"), RENDER_HOME=str(tmp_path)
    )
    assert code == 2
    assert "--cassette takes one recipe at a time" in err


@pytest.mark.parametrize("name", ["spring", "lighting"])
def test_the_shipped_cassettes_replay_every_job_offline(
    name: str, tmp_path: Path, render: Render
) -> None:
    code, out, err = render(
        str(ROOT / "recipes" / f"{name}.yaml"), "--cassette", str(ROOT / "cassettes" / f"{name}.yaml"),
        "--record", "none", "--out", str(tmp_path), RENDER_HOME=str(tmp_path / "home"),
    )  # fmt: skip
    assert code == 0, out + err
    blobs = {p.name for p in (ROOT / "cassettes" / "blobs").iterdir()}
    images = [
        p
        for p in (tmp_path / name).rglob("*")
        if p.suffix in {".jpg", ".png"} and ".thumbs" not in p.parts
    ]
    assert images
    # Each picture is, byte for byte, one the cassette recorded.
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() in blobs for p in images)
