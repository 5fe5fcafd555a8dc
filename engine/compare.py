"""``render compare A B``: two runs' pictures paired by job id, each pair's perceptual distance, most
changed first, and the jobs found on one side only.

Each run is read as it left its folder (engine/shots.py): a job the run skipped pairs with the
picture it had. Two pictures with the same bytes are identical without being decoded; any others
are compared by engine/imagediff.py, which says what "changed" means.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.errors import InputError
from engine.shots import RunShots, Shot

__all__ = ["Comparison", "Pair", "compare_runs", "write_compare_page"]


class Pair(BaseModel):
    """One job on both sides: its two pictures and how far apart they look."""

    model_config = ConfigDict(frozen=True)

    job: str
    a: Path
    b: Path
    distance: float
    changed: bool
    # A PNG of where they differ (None: the same bytes, nothing to show).
    heatmap: bytes | None = None


class Comparison(BaseModel):
    """Two runs compared."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    a: RunShots
    b: RunShots
    threshold: float
    pairs: tuple[Pair, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """What ``--json`` prints."""
        return {
            "a": self.a.run_id,
            "b": self.b.run_id,
            "threshold": self.threshold,
            "pairs": [
                {
                    "job": pair.job,
                    "a": str(pair.a),
                    "b": str(pair.b),
                    "distance": round(pair.distance, 6),
                    "changed": pair.changed,
                }
                for pair in self.pairs
            ],
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
        }

    @property
    def changed(self) -> int:
        return sum(pair.changed for pair in self.pairs)


def compare_runs(a: RunShots, b: RunShots, *, threshold: float | None = None) -> Comparison:
    """Pair ``a`` and ``b`` by job id and measure each pair."""
    from engine.imagediff import DEFAULT_THRESHOLD  # noqa: PLC0415 - Pillow only when comparing

    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    pairs = [
        _pair(job, a, shot, b, b.shots[job], threshold=limit)
        for job, shot in a.shots.items()
        if job in b.shots
    ]
    pairs.sort(key=lambda pair: (-pair.distance, pair.job))
    return Comparison(
        a=a,
        b=b,
        threshold=limit,
        pairs=tuple(pairs),
        only_a=tuple(job for job in a.shots if job not in b.shots),
        only_b=tuple(job for job in b.shots if job not in a.shots),
    )


def _pair(
    job: str, a: RunShots, shot_a: Shot, b: RunShots, shot_b: Shot, *, threshold: float
) -> Pair:
    from engine.imagediff import compare_images  # noqa: PLC0415

    file_a, file_b = _file(a, shot_a), _file(b, shot_b)
    if shot_a.digest == shot_b.digest:
        return Pair(job=job, a=file_a, b=file_b, distance=0.0, changed=False)
    difference = compare_images(file_a, file_b, threshold=threshold)
    return Pair(
        job=job,
        a=file_a,
        b=file_b,
        distance=difference.distance,
        changed=difference.changed,
        heatmap=difference.heatmap,
    )


def _file(run: RunShots, shot: Shot) -> Path:
    found = run.file(shot)
    if found is None:
        raise InputError(
            f"{run.out_dir / shot.image}: the picture run {shot.run} made for {shot.job} is gone "
            f"(neither there nor kept in {run.out_dir / '.history'}); render it again, or compare "
            "other runs"
        )
    return found


def write_compare_page(comparison: Comparison, page: Path) -> Path:
    """One self-contained HTML page: each pair side by side with a slider between them, the
    heat map of their difference, the distance; most changed first. Pictures are linked where
    they are on disk, relative to the page; heat maps are inside it."""
    from engine.files import atomic_write  # noqa: PLC0415
    from engine.pages import render_page  # noqa: PLC0415

    where = page.absolute().parent
    pairs = [
        {
            "job": pair.job,
            "a": _relative(pair.a, where),
            "b": _relative(pair.b, where),
            "distance": f"{pair.distance:.3f}",
            "changed": pair.changed,
            "heatmap": _data_url(pair.heatmap) if pair.heatmap else None,
        }
        for pair in comparison.pairs
    ]
    atomic_write(
        page,
        render_page(
            "compare.html.j2",
            a=comparison.a,
            b=comparison.b,
            threshold=comparison.threshold,
            pairs=pairs,
            changed=comparison.changed,
            only_a=comparison.only_a,
            only_b=comparison.only_b,
        ),
    )
    return page


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
