"""Verdicts on shots: approved or rejected, with a note, kept in the ledger.

A verdict is keyed by recipe, job id and the picture's sha256, so it follows the exact image it was
given to: a re-render makes a new picture, and the job is pending again. The review app, ``render
approve`` and ``render reject`` write here; the contact sheet, ``export`` and ``--rejected`` read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.ledger import Ledger
from engine.shots import RunShots, Shot

__all__ = ["Judgement", "Verdict", "Verdicts", "state_of"]

Verdict = Literal["approved", "rejected"]
State = Literal["approved", "rejected", "pending"]


class Judgement(BaseModel):
    """A verdict on one picture."""

    model_config = ConfigDict(frozen=True)

    recipe: str
    job: str
    sha256: str
    verdict: Verdict
    note: str | None = None
    given_at: str


class Verdicts:
    """The verdicts of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db = ledger.db

    def give(
        self,
        recipe: str,
        shots: Iterable[Shot],
        verdict: Verdict | None,
        *,
        note: str | None = None,
    ) -> int:
        """``verdict`` on each shot's picture; a note replaces the old one (None keeps it). None
        makes the shots pending again, their notes gone with their verdicts (a note lives on a
        verdict). A shot is judged by its first picture (the one a sheet shows). Returns how many
        shots it was given to."""
        count = 0
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self.ledger.transaction():
            for shot in shots:
                count += 1
                if verdict is None:
                    self.db.execute(
                        "DELETE FROM verdicts WHERE recipe = ? AND job_id = ? AND sha256 = ?",
                        (recipe, shot.job, shot.digest),
                    )
                    continue
                self.db.execute(
                    "INSERT INTO verdicts (recipe, job_id, sha256, verdict, note, given_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (recipe, job_id, sha256) DO UPDATE SET "
                    "verdict = excluded.verdict, note = COALESCE(excluded.note, verdicts.note), "
                    "given_at = excluded.given_at",
                    (recipe, shot.job, shot.digest, verdict, note, now),
                )
        return count

    def of(self, recipe: str) -> dict[tuple[str, str], Judgement]:
        """Every verdict given in ``recipe``, by (job id, sha256)."""
        rows = self.db.execute(
            "SELECT recipe, job_id, sha256, verdict, note, given_at FROM verdicts WHERE recipe = ?",
            (recipe,),
        )
        return {
            (row["job_id"], row["sha256"]): Judgement(
                recipe=row["recipe"],
                job=row["job_id"],
                sha256=row["sha256"],
                verdict=row["verdict"],
                note=row["note"],
                given_at=row["given_at"],
            )
            for row in rows
        }

    def rejections(self, recipe: str, job: str) -> int:
        """How many pictures of ``job`` were rejected: the generation of its next reseed."""
        (count,) = self.db.execute(
            "SELECT COUNT(*) FROM verdicts WHERE recipe = ? AND job_id = ? AND verdict = 'rejected'",
            (recipe, job),
        ).fetchone()
        return int(count)


def state_of(run: RunShots, judgements: dict[tuple[str, str], Judgement]) -> dict[str, State]:
    """Each shot's state: the verdict on its current picture, or pending."""
    return {
        job: judgement.verdict if (judgement := judgements.get((job, shot.digest))) else "pending"
        for job, shot in run.shots.items()
    }
