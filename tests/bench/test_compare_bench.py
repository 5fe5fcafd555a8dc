"""Benchmark of engine.imagediff: comparing two runs of 1,000 images each, against only decoding them.

Target: compare_images over 1,000 pairs of 1024×1024 images in under 10x the time Pillow takes to
decode the 2,000 images (``Image.open(...).load()``), in JPEG (Segmind's usual output) and in PNG.
The runs are made of a few distinct pictures, linked under 1,000 names each; a quarter of the pairs
are the same file, a quarter a JPEG re-encode, a quarter a recoloured product, a quarter a moved
object. Printed, not asserted: machines here are noisy.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from engine.compare import compare_runs, write_compare_page
from engine.imagediff import compare_images
from engine.shots import run_shots

PAIRS = 1_000
SIDE = 1024
SCENES = 4


def _picture(seed: int, *, product: tuple[int, int, int], ball: float) -> Image.Image:
    """A 1024×1024 product photo's stand-in: lit backdrop, things, a product, a ball, fine grain."""
    rnd = random.Random(seed)
    tint = [rnd.randrange(60, 200) for _ in range(3)]
    backdrop = Image.linear_gradient("L").resize((SIDE, SIDE))
    image = Image.merge("RGB", [backdrop.point(lambda v, c=c: c // 2 + v * 2 // 5) for c in tint])
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rnd.randrange(SIDE), rnd.randrange(SIDE), rnd.randrange(40, 160)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rnd.randrange(256) for _ in range(3)))
    draw.rounded_rectangle((256, 560, 768, 870), 40, fill=product)
    draw.ellipse((ball * SIDE - 60, 250, ball * SIDE + 60, 370), fill=(240, 220, 30))
    grain = Image.frombytes("L", (SIDE, SIDE), rnd.randbytes(SIDE * SIDE)).convert("RGB")
    return Image.blend(image, grain, 0.08).filter(ImageFilter.GaussianBlur(0.6))


def _runs(root: Path, suffix: str) -> list[tuple[Path, Path]]:
    """Two runs of PAIRS images each (as ``suffix`` files), linked to a few distinct pictures."""
    options = {"quality": 90} if suffix == ".jpg" else {}
    kinds: dict[str, list[Path]] = {"same": [], "re-encoded": [], "recoloured": [], "moved": []}
    firsts = []
    for seed in range(SCENES):
        first = root / f"scene{seed}{suffix}"
        _picture(seed, product=(200, 40, 40), ball=0.65).save(first, **options)
        firsts.append(first)
        kinds["same"].append(first)
        kinds["re-encoded"].append(root / f"scene{seed}-q60.jpg")
        _picture(seed, product=(200, 40, 40), ball=0.65).save(kinds["re-encoded"][-1], quality=60)
        kinds["recoloured"].append(root / f"scene{seed}-blue{suffix}")
        _picture(seed, product=(40, 60, 200), ball=0.65).save(kinds["recoloured"][-1], **options)
        kinds["moved"].append(root / f"scene{seed}-moved{suffix}")
        _picture(seed, product=(200, 40, 40), ball=0.3).save(kinds["moved"][-1], **options)
    pairs = []
    for run in ("a", "b"):
        (root / run).mkdir()
    variants = list(kinds.values())
    for i in range(PAIRS):
        seed, variant = i % SCENES, variants[(i // SCENES) % len(variants)]
        a, b = root / "a" / f"{i:04d}{suffix}", root / "b" / f"{i:04d}{variant[seed].suffix}"
        os.link(firsts[seed], a)
        os.link(variant[seed], b)
        pairs.append((a, b))
    return pairs


def _decode(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.load()
    return time.perf_counter() - started


def _bench(root: Path, suffix: str, label: str) -> None:
    pairs = _runs(root, suffix)
    images = [path for pair in pairs for path in pair]
    _decode(images[:50])  # warm up
    decode = _decode(images)
    started = time.perf_counter()
    changed = [compare_images(a, b).changed for a, b in pairs]
    compare = time.perf_counter() - started
    print(
        f"\n{label}: compare {PAIRS:,} pairs: {compare:.2f} s; "
        f"decode {2 * PAIRS:,} images: {decode:.2f} s; ratio {compare / decode:.2f}x (target < 10x)"
        f"; {1000 * compare / PAIRS:.1f} ms a pair"
    )
    # The first two kinds of pair (the same file, a re-encode) are unchanged, the last two changed.
    assert changed == [(i // SCENES) % 4 >= 2 for i in range(PAIRS)]


def test_comparing_two_jpeg_runs(tmp_path: Path) -> None:
    _bench(tmp_path, ".jpg", "JPEG")


def test_comparing_two_png_runs(tmp_path: Path) -> None:
    _bench(tmp_path, ".png", "PNG")


def _run_folder(folder: Path, run_id: str) -> None:
    """``folder``'s pictures as one run's record: a manifest line a job, and the run's file."""
    jobs = sorted(path for path in folder.iterdir() if path.is_file())
    lines = [
        json.dumps(
            {
                "run": run_id,
                "job": path.stem,
                "status": "succeeded",
                "values": {"n": path.stem},
                "outputs": [path.name],
                "sha256": [hashlib.sha256(path.read_bytes()).hexdigest()],
            }
        )
        for path in jobs
    ]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "runs").mkdir()
    record = {"id": run_id, "recipe": "bench", "model": "scenecraft", "backend": "preview",
              "axes": ["n"], "recipe_jobs": [path.stem for path in jobs]}  # fmt: skip
    (folder / "runs" / f"{run_id}.json").write_text(json.dumps(record))


def test_the_whole_compare_of_two_jpeg_runs(tmp_path: Path) -> None:
    """What `render compare A B` does: both runs' views (each picture's hash checked), the pairs
    (the same bytes are not decoded), the page with its heat maps."""
    pairs = _runs(tmp_path, ".jpg")
    _run_folder(tmp_path / "a", "20260101-000000-000-aaaa")
    _run_folder(tmp_path / "b", "20260101-000001-000-bbbb")
    images = [path for pair in pairs for path in pair]
    _decode(images[:50])  # warm up
    decode = _decode(images)
    started = time.perf_counter()
    comparison = compare_runs(run_shots(tmp_path / "a"), run_shots(tmp_path / "b"))
    write_compare_page(comparison, tmp_path / "page.html")
    whole = time.perf_counter() - started
    print(
        f"\nrender compare of two {PAIRS:,}-picture JPEG runs (views, pairs, page): {whole:.2f} s; "
        f"decode {2 * PAIRS:,} images: {decode:.2f} s; ratio {whole / decode:.2f}x (target < 10x); "
        f"page {(tmp_path / 'page.html').stat().st_size / 1e6:.1f} MB"
    )
    flagged = sorted(int(pair.job) for pair in comparison.pairs if pair.changed)
    assert flagged == [i for i in range(PAIRS) if (i // SCENES) % 4 >= 2], flagged[:20]
