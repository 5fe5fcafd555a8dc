"""A recipe's baseline: the perceptual hashes of its approved pictures, in a small reviewable file
beside its snapshot (``__snapshots__/<name>.baseline.json``), never the images.

``render baseline RUN`` writes it; ``render RECIPE --only … --compare-baseline`` renders a few
canary jobs again (paid, under the budget) and measures them against it, so a team learns when
Segmind changed a model behind the same endpoint; the pytest plugin's ``looks`` check does the
same from a replayed cassette, free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.errors import InputError
from engine.files import atomic_write
from engine.shots import RunShots
from engine.verdicts import Judgement, state_of

__all__ = [
    "Baseline",
    "Drift",
    "baseline_path",
    "drift",
    "load_baseline",
    "make_baseline",
    "write_baseline",
]

SNAPSHOTS = "__snapshots__"


class Baseline(BaseModel):
    """What the approved pictures looked like: each job's perceptual hash and the picture's sha256."""

    model_config = ConfigDict(frozen=True)

    recipe: str
    model: str
    threshold: float
    # Where the approved pictures were (on the machine that made the baseline): a failing `looks`
    # check draws its difference image against them when they are still there.
    out_dir: str = ""
    jobs: dict[str, dict[str, str]]

    def picture(self, job: str) -> Path | None:
        """The approved picture of ``job``, if this machine still has it."""
        from engine.outputs import OutputStore  # noqa: PLC0415

        known = self.jobs.get(job, {})
        if not self.out_dir or "output" not in known:
            return None
        return OutputStore(Path(self.out_dir)).kept(known["output"], known["sha256"])

    def updated(self, hashes: Mapping[str, str]) -> Baseline:
        """The baseline with ``hashes`` (job → perceptual hash) accepted as the new look."""
        jobs = {
            job: {**known, "phash": hashes.get(job, known["phash"])}
            for job, known in self.jobs.items()
        }
        return self.model_copy(update={"jobs": jobs})


class Drift(BaseModel):
    """One job's new picture measured against the baseline."""

    model_config = ConfigDict(frozen=True)

    job: str
    distance: float
    changed: bool


def baseline_path(recipe_path: Path) -> Path:
    return recipe_path.parent / SNAPSHOTS / f"{recipe_path.stem}.baseline.json"


def make_baseline(run: RunShots, judgements: Mapping[tuple[str, str], Judgement]) -> Baseline:
    """The approved shots of ``run``, hashed; an input error when none is approved."""
    from engine.imagediff import HASH_THRESHOLD, perceptual_hash  # noqa: PLC0415 - Pillow

    states = state_of(run, dict(judgements))
    approved = [shot for job, shot in run.shots.items() if states[job] == "approved"]
    if not approved:
        raise InputError(
            f"run {run.run_id} of {run.recipe} has no approved picture: approve the ones that "
            "look right (render review, render approve), then make the baseline"
        )
    jobs = {}
    for shot in approved:
        file = run.file(shot)
        if file is None:
            raise InputError(
                f"{run.out_dir / shot.image}: the approved picture of {shot.job} is gone"
            )
        jobs[shot.job] = {
            "phash": perceptual_hash(file),
            "sha256": shot.digest,
            "output": shot.image,
        }
    return Baseline(
        recipe=run.recipe,
        model=run.model,
        threshold=HASH_THRESHOLD,
        out_dir=str(run.out_dir),
        jobs=jobs,
    )


def write_baseline(baseline: Baseline, path: Path) -> None:
    atomic_write(path, json.dumps(baseline.model_dump(), indent=2, sort_keys=True) + "\n")


def load_baseline(path: Path) -> Baseline:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"{path}: no baseline for this recipe yet (render baseline RUN writes one from a run's "
            "approved pictures)"
        ) from None
    except ValueError as exc:
        raise InputError(
            f"{path}: not a baseline file ({exc}); make it again with render baseline RUN"
        ) from None
    try:
        return Baseline.model_validate(data)
    except ValueError:
        raise InputError(
            f"{path}: not a baseline file; make it again with render baseline RUN"
        ) from None


def drift(baseline: Baseline, pictures: Mapping[str, Path]) -> list[Drift]:
    """Each job of ``pictures`` that the baseline knows, measured against it; most drifted first."""
    from engine.imagediff import hash_distance, perceptual_hash  # noqa: PLC0415

    found = []
    for job, file in pictures.items():
        known = baseline.jobs.get(job)
        if known is None:
            continue
        distance = hash_distance(known["phash"], perceptual_hash(file))
        found.append(Drift(job=job, distance=distance, changed=distance > baseline.threshold))
    return sorted(found, key=lambda item: (-item.distance, item.job))
