"""Benchmarks of cassettes: replaying 1,000 interactions, and cassette size against the image bytes.

Targets (DESIGN.md): replay 1,000 interactions in under 2 s; cassette YAML under 5% of the image
bytes it stands for. The size is compared with vcrpy's default YAML serializer on the same run.
Printed, not asserted.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import vcr

from engine.backends import preview_backend, replay_backend
from engine.executor import execute
from engine.plan import build_plan
from engine.recipe import load_recipe
from engine.results import CassetteUse, RunOptions
from tests.helpers import ROOT, write_tree


def _recipe(tmp_path: Path, jobs: int) -> Path:
    write_tree(
        tmp_path,
        {
            "r.yaml": f"""\
                model: scenecraft
                matrix:
                  n: {list(range(jobs))}
                params:
                  image: images/sofa.png
                  prompt: "Product photo {{{{ n }}}}, spring light"
                  megapixel: "1.0"
                  aspect_ratio: "1:1 (Perfect Square)"
                  image_format: jpeg
                  seed: auto
                """,
            "images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
        },
    )
    return tmp_path / "r.yaml"


def test_replay_speed_and_cassette_size(tmp_path: Path) -> None:
    jobs = 250  # four interactions a v2 job: submit, final status, result, image
    plan = build_plan(load_recipe(_recipe(tmp_path, jobs)))
    cassette = tmp_path / "c" / "run.yaml"
    options = RunOptions(force=True, concurrency=8, home=tmp_path / "h")
    execute(
        plan,
        backend=preview_backend(),
        out_dir=tmp_path / "rec",
        options=replace(options, cassette=CassetteUse(cassette, "all")),
    )
    interactions = cassette.read_text().count("- request:")
    started = time.perf_counter()
    summary = execute(
        plan,
        backend=replay_backend(),
        out_dir=tmp_path / "rep",
        options=replace(options, cassette=CassetteUse(cassette, "none")),
    )
    seconds = time.perf_counter() - started
    assert summary.count("succeeded") == jobs
    images = sum(p.stat().st_size for p in (tmp_path / "rec").rglob("*.jpg"))
    ours = cassette.stat().st_size
    # The same run through vcrpy's defaults: its YAML serializer, bodies inline.
    default = tmp_path / "default.yaml"
    with vcr.VCR(record_mode="all").use_cassette(str(default)):
        execute(
            plan,
            backend=preview_backend(),
            out_dir=tmp_path / "d",
            options=replace(options, home=tmp_path / "h2"),
        )
    print(
        f"\nreplay {interactions:,} interactions ({jobs} jobs): {seconds:.2f} s, "
        f"{interactions / seconds:,.0f} interactions/s (target: 1,000 in under 2 s)\n"
        f"cassette YAML {ours / 1024:,.0f} KiB for {images / 1024:,.0f} KiB of images: {100 * ours / images:.1f}% "
        f"(vcrpy's default serializer: {default.stat().st_size / 1024:,.0f} KiB, {100 * default.stat().st_size / images:.0f}%; target under 5%)"
    )
