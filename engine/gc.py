"""``render gc``: bound the space the earlier pictures kept in an output folder's ``.history/`` take.

A kept picture stays while one of the folder's newest runs (``--keep-runs``) still shows it, or a
verdict names it (a rejected picture is what ``--rejected`` and the baseline are measured against);
any other is deleted. The pictures in the folder itself are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.formatting import file_size
from engine.ledger import Ledger
from engine.outputs import HISTORY
from engine.shots import RUNS, run_shots
from engine.verdicts import Verdicts

__all__ = ["Collected", "collect"]


@dataclass(frozen=True)
class Collected:
    removed: int
    kept: int
    bytes: int

    @property
    def bytes_text(self) -> str:
        return file_size(self.bytes)


def collect(folder: Path, *, keep_runs: int, ledger: Ledger) -> Collected:
    """Delete what ``folder``'s newest ``keep_runs`` runs and the verdicts no longer need."""
    history = folder / HISTORY
    if not history.is_dir():
        return Collected(0, 0, 0)
    runs = sorted(path.stem for path in (folder / RUNS).glob("*.json"))[-keep_runs:]
    needed: set[str] = set()
    recipe = ""
    for run_id in runs:
        view = run_shots(folder, run_id)
        recipe = view.recipe
        needed.update(digest for shot in view.shots.values() for digest in shot.sha256)
    if recipe:
        needed.update(digest for _job, digest in Verdicts(ledger).of(recipe))
    removed = kept = freed = 0
    for path in history.iterdir():
        if path.stem in needed or not path.is_file():
            kept += 1
            continue
        freed += path.stat().st_size
        path.unlink()
        removed += 1
    return Collected(removed, kept, freed)
