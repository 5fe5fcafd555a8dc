"""What a run's folder held when a run ended: each job of the recipe with its newest picture up to
that run, whichever run made it (a job skipped or left out by ``--only`` keeps the picture it had).

It is read from the folder's manifest and ``runs/<run id>.json``; a picture a later run replaced
is found in the folder's ``.history/`` (see engine/outputs.py). Compare, review, export and
``--rejected`` all read runs through here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.errors import InputError
from engine.outputs import OutputStore

__all__ = ["RUNS", "RunShots", "Shot", "find_run", "run_record", "run_shots"]

RUNS = "runs"


class Shot(BaseModel):
    """One job's picture as a run left it, and what made it."""

    model_config = ConfigDict(frozen=True)

    job: str
    run: str
    values: dict[str, str]
    outputs: tuple[str, ...]
    sha256: tuple[str, ...]
    texts: dict[str, str]
    seed: int | None = None
    cost_usd: float = 0.0

    @property
    def image(self) -> str:
        """The first output's path in the folder (a job may write several: ``samples``)."""
        return self.outputs[0]

    @property
    def digest(self) -> str:
        return self.sha256[0]


class RunShots(BaseModel):
    """A run's view of its folder: every shot the recipe had by then, and the jobs with none."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    run_id: str
    recipe: str
    model: str
    backend: str
    out_dir: Path
    axes: tuple[str, ...]
    shots: dict[str, Shot]
    without: tuple[str, ...]

    def file(self, shot: Shot, index: int = 0) -> Path | None:
        """The file holding ``shot``'s picture now: where it was written, or the kept copy."""
        return OutputStore(self.out_dir).kept(shot.outputs[index], shot.sha256[index])


def find_run(target: str, *, home: Path) -> tuple[Path, str | None]:
    """A run folder (meaning its latest run) or a run id from the ledger: the folder and the id."""
    from engine.report import find_run_dir  # noqa: PLC0415 - Pillow and Jinja only when used

    return find_run_dir(Path(target), home=home)


def run_shots(out_dir: Path, run_id: str | None = None) -> RunShots:
    """The shots of ``run_id`` in ``out_dir`` (None: the folder's latest run)."""
    run = run_record(out_dir, run_id)
    wanted = run.get("recipe_jobs") or run.get("jobs") or []
    shots: dict[str, Shot] = {}
    for entry in OutputStore(out_dir).entries():
        if str(entry.get("run", "")) > run["id"]:
            continue  # a later run's
        shot = _shot(entry)
        if shot is not None:
            shots[shot.job] = shot
    if wanted:
        shots = {job: shots[job] for job in wanted if job in shots}
    return RunShots(
        run_id=run["id"],
        recipe=str(run.get("recipe", "")),
        model=str(run.get("model", "")),
        backend=str(run.get("backend", "")),
        out_dir=out_dir.absolute(),
        axes=tuple(run.get("axes") or ()),
        shots=shots,
        without=tuple(job for job in wanted if job not in shots),
    )


def _shot(entry: dict[str, Any]) -> Shot | None:
    """A manifest line that left a picture behind, as a shot; None for any other line."""
    outputs, hashes = entry.get("outputs") or [], entry.get("sha256") or []
    if not outputs or len(outputs) != len(hashes):
        return None
    texts = entry.get("texts")
    if not isinstance(texts, dict):
        prompt = entry.get("prompt")
        texts = {"prompt": prompt} if isinstance(prompt, str) else {}
    seed = entry.get("seed")
    return Shot(
        job=str(entry.get("job")),
        run=str(entry.get("run")),
        values={str(k): str(v) for k, v in (entry.get("values") or {}).items()},
        outputs=tuple(outputs),
        sha256=tuple(hashes),
        texts={str(k): str(v) for k, v in texts.items()},
        seed=seed if isinstance(seed, int) else None,
        cost_usd=float(entry.get("cost_usd") or 0.0),
    )


def run_record(out_dir: Path, run_id: str | None = None) -> dict[str, Any]:
    """The run's record, ``runs/<run id>.json``: the one asked for, or the folder's latest."""
    runs = sorted((out_dir / RUNS).glob("*.json"))
    if not runs:
        raise InputError(f"{out_dir}: no run recorded here yet (render a recipe first)")
    if run_id is None:
        chosen = runs[-1]  # run ids sort by time
    else:
        chosen = out_dir / RUNS / f"{run_id}.json"
        # A run id is a name in runs/, never a path elsewhere.
        if chosen.parent != out_dir / RUNS or not chosen.exists():
            raise InputError(
                f"{out_dir}: no run {run_id} here (runs: {', '.join(p.stem for p in runs)})"
            )
    data: dict[str, Any] = json.loads(chosen.read_text(encoding="utf-8"))
    return data
