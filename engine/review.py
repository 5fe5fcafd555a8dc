"""The review loop's choices: which shots a command names (job ids, ``--only AXIS=VALUE``), and
which jobs ``--rejected`` renders again, each with the generation its ``--reseed`` seed comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.errors import InputError
from engine.ledger import Ledger
from engine.shots import RunShots, Shot, run_shots
from engine.verdicts import Verdicts, state_of

__all__ = ["pick", "rejected_jobs"]


def pick(run: RunShots, jobs: Sequence[str], only: Sequence[tuple[str, str]]) -> list[Shot]:
    """The shots of ``run`` that ``jobs`` name, or that match every ``only`` (AXIS, VALUE); an
    unknown job, axis or value is an input error that says what there is."""
    if not jobs and not only:
        raise InputError(
            "name the shots: job ids (render ledger, the contact sheet) or --only AXIS=VALUE"
        )
    unknown = [job for job in jobs if job not in run.shots]
    if unknown:
        known = ", ".join(list(run.shots)[:6]) + (", …" if len(run.shots) > 6 else "")
        raise InputError(
            f"run {run.run_id} has no picture for job {unknown[0]} (jobs: {known or 'none'})"
        )
    for axis, value in only:
        values = sorted({shot.values[axis] for shot in run.shots.values() if axis in shot.values})
        if not values:
            raise InputError(
                f"--only {axis}={value}: no axis '{axis}' (axes: {', '.join(run.axes)})"
            )
        if value not in values:
            raise InputError(f"--only {axis}={value}: no such value (values: {', '.join(values)})")
    chosen = [run.shots[job] for job in jobs]
    if only:
        chosen += [
            shot
            for shot in run.shots.values()
            if shot.job not in jobs and all(shot.values.get(a) == v for a, v in only)
        ]
    return chosen


def rejected_jobs(out_dir: Path, *, recipe: str, ledger: Ledger) -> dict[str, int]:
    """The jobs whose current picture in ``out_dir`` was rejected, each with how many of its
    pictures were rejected so far (the generation of a ``--reseed`` seed)."""
    if not (out_dir / "runs").is_dir():
        return {}
    run = run_shots(out_dir)
    verdicts = Verdicts(ledger)
    states = state_of(run, verdicts.of(recipe))
    return {
        job: verdicts.rejections(recipe, job)
        for job, state in states.items()
        if state == "rejected"
    }
