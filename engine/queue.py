"""The queue of a submitted run: ``render submit`` writes a plan's jobs into the ledger, and workers
(``render work``, on any number of machines) claim them under leases.

A claim takes the next jobs that are queued, or claimed under a lease that ran out (their worker
died), in one statement: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers never wait for each
other's claims; SQLite's write lock does the same on one machine. A worker renews its leases with
its heartbeat. A reclaimed job is decided like any job of a resumed run (engine.triage): a request
the dead worker sent is collected or settled, never sent again; a job the dead worker finished
(it died before saying so here) is not rendered again.

Each worker is a run of its own in the ledger (``runs.batch`` names the submitted run), so every
money rule of a run holds for it, and ``render status`` reads progress per worker.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import LedgerError
from engine.ledger import (
    BILLED,
    FAILED,
    HELD,
    IN_FLIGHT,
    SENDING,
    SKIPPED,
    SUBMITTED,
    SUCCEEDED,
    UNFETCHED,
    UNKNOWN,
    Ledger,
)
from engine.localimage import LocalImage
from engine.plan import Job, Plan
from engine.specs import Spec
from engine.triage import payload_sha256

__all__ = ["Claim", "Queue", "QueueCounts", "decode_jobs", "encode_jobs"]

QUEUED, CLAIMED, DONE = "queued", "claimed", "done"
# How `render status` says a job's newest row: held is the unknown of another row; sending and
# submitted are in flight (or, for a worker that died, unknown until a worker takes them over).
_OUTCOME = {HELD: UNKNOWN, SENDING: "in flight", SUBMITTED: "in flight"}
# Ledger states that end a job: a reclaimed job with one of these was finished by its dead worker.
_ENDED = (SUCCEEDED, SKIPPED, UNFETCHED, FAILED)


def encode_jobs(jobs: Sequence[Job]) -> str:
    """Jobs as JSON (a local image as ``{"$file": path}``: read on the worker's machine)."""

    def value(item: Any) -> Any:
        return {"$file": str(item.path)} if isinstance(item, LocalImage) else item

    return json.dumps(
        [
            {
                **job.model_dump(exclude={"payload"}),
                "payload": {k: value(v) for k, v in job.payload.items()},
            }
            for job in jobs
        ]
    )


def decode_jobs(text: str) -> tuple[Job, ...]:
    def value(item: Any) -> Any:
        if isinstance(item, dict) and set(item) == {"$file"}:
            return LocalImage(Path(item["$file"]))
        return item

    return tuple(
        Job.model_validate({**data, "payload": {k: value(v) for k, v in data["payload"].items()}})
        for data in json.loads(text)
    )


@dataclass(frozen=True)
class Claim:
    """Jobs a worker holds under one lease: a job and its twins (the same payload, so one request
    and one worker decide for them all); ``claims`` counts every worker that has held them."""

    jobs: tuple[Job, ...]
    claims: int


@dataclass(frozen=True)
class QueueCounts:
    """A submitted run's jobs by queue state (``expired``: claimed by a worker that is silent)."""

    queued: int
    claimed: int
    done: int
    expired: int

    @property
    def total(self) -> int:
        return self.queued + self.claimed + self.done


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Queue:
    """The submitted runs of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db = ledger.db

    def submit(
        self, run_id: str, plan: Plan, *, backend: str, out_dir: str, pool: str | None
    ) -> None:
        """The run, its plan and every job queued, all at once (a kill leaves none or all). Jobs
        with the same payload are queued together: one request renders them all."""
        meta = plan.model_dump(mode="json", exclude={"jobs", "errors"})
        meta["order"] = [job.id for job in plan.jobs]
        groups: dict[str, list[Job]] = {}
        for job in plan.jobs:
            groups.setdefault(payload_sha256(job), []).append(job)
        with self.ledger.transaction():
            self.ledger.start_run(
                run_id,
                recipe=plan.recipe,
                recipe_path=str(Path(plan.recipe_path).absolute()),
                model=plan.spec.id,
                backend=backend,
                out_dir=out_dir,
                budget_usd=plan.budget_usd,
                status="queued",
                pool=pool,
                batch=run_id,
            )
            self.db.execute(
                "INSERT INTO submissions (run_id, plan, submitted_at) VALUES (?, ?, ?)",
                (run_id, json.dumps(meta), _now()),
            )
            for seq, group in enumerate(groups.values()):
                self.db.execute(
                    "INSERT INTO queue (run_id, job_id, seq, job, state, size) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, group[0].id, seq, encode_jobs(group), QUEUED, len(group)),
                )

    def submitted(self, run_id: str) -> dict[str, Any]:
        """The submitted run's row; a LedgerError when ``run_id`` names no submitted run."""
        row = self.ledger.run(run_id)
        if row is None or row.get("batch") != run_id:
            raise LedgerError(
                f"no submitted run '{run_id}' in the ledger {self.ledger.where} "
                "(`render submit RECIPE` submits one and prints its id)"
            )
        return row

    def plan(self, run_id: str) -> Plan:
        """The plan as it was submitted, its jobs in order."""
        self.submitted(run_id)
        (meta,) = self.db.execute(
            "SELECT plan FROM submissions WHERE run_id = ?", (run_id,)
        ).fetchone()
        data = json.loads(meta)
        data["spec"] = Spec.model_validate(data["spec"])
        rows = self.db.execute("SELECT job FROM queue WHERE run_id = ?", (run_id,)).fetchall()
        jobs = {job.id: job for (text,) in rows for job in decode_jobs(text)}
        ordered = [jobs[job_id] for job_id in data.pop("order")]
        return Plan.model_validate({**data, "jobs": ordered, "errors": []})

    def next_run(self, *, backend: str) -> str | None:
        """The oldest run submitted for ``backend`` with a job to claim now."""
        row = self.db.execute(
            "SELECT queue.run_id FROM queue JOIN runs ON runs.id = queue.run_id "
            "WHERE runs.backend = ? AND (queue.state = ? OR (queue.state = ? AND "
            "queue.lease_until < ?)) ORDER BY runs.started_at, queue.run_id LIMIT 1",
            (backend, QUEUED, CLAIMED, time.time()),
        ).fetchone()
        return None if row is None else str(row[0])

    def claim(self, run_id: str, worker: str, *, lease_s: float, count: int = 1) -> list[Claim]:
        """Up to ``count`` jobs for ``worker`` (its run id), in plan order, under a lease."""
        now = time.time()
        pick = (
            "SELECT job_id FROM queue WHERE run_id = ? AND (state = ? OR (state = ? AND "
            "lease_until < ?)) ORDER BY seq LIMIT ?"
        )
        args = (run_id, QUEUED, CLAIMED, now, count)
        with self.ledger.transaction():
            if self.db.dialect == "postgresql":
                # Another worker's claims in progress are skipped, not waited for.
                rows = self.db.execute(f"{pick} FOR UPDATE SKIP LOCKED", args).fetchall()
            else:
                rows = self.db.execute(pick, args).fetchall()
            claims = []
            for (job_id,) in rows:
                job, claimed = self.db.execute(
                    "UPDATE queue SET state = ?, worker = ?, lease_until = ?, claims = claims + 1 "
                    "WHERE run_id = ? AND job_id = ? RETURNING job, claims",
                    (CLAIMED, worker, now + lease_s, run_id, job_id),
                ).fetchone()
                claims.append(Claim(decode_jobs(job), int(claimed)))
        return claims

    def renew(self, worker: str, *, lease_s: float) -> None:
        """The worker is alive: its leases and its run's heartbeat, moved on."""
        now = time.time()
        with self.ledger.transaction():
            self.db.execute(
                "UPDATE queue SET lease_until = ? WHERE worker = ? AND state = ?",
                (now + lease_s, worker, CLAIMED),
            )
            self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (now, worker))

    def done(self, run_id: str, job_id: str, worker: str) -> None:
        """The job ended (its ledger row says how); a worker whose lease was taken over says
        nothing (the job is another worker's now)."""
        self.db.execute(
            "UPDATE queue SET state = ?, lease_until = NULL WHERE run_id = ? AND job_id = ? "
            "AND worker = ? AND state = ?",
            (DONE, run_id, job_id, worker, CLAIMED),
        )

    def put_back(self, run_id: str, job_id: str, worker: str) -> None:
        """A claimed job this worker did not send (it stopped, or the budget ran out): queued
        again, for a worker (or a run after a raised budget) to take."""
        self.db.execute(
            "UPDATE queue SET state = ?, worker = NULL, lease_until = NULL WHERE run_id = ? "
            "AND job_id = ? AND worker = ? AND state = ?",
            (QUEUED, run_id, job_id, worker, CLAIMED),
        )

    def ended_elsewhere(self, run_id: str, job_id: str) -> bool:
        """Whether a worker of this submitted run finished the job before it died."""
        marks = ", ".join("?" for _ in _ENDED)
        row = self.db.execute(
            "SELECT 1 FROM jobs JOIN runs ON runs.id = jobs.run_id WHERE runs.batch = ? "
            f"AND jobs.job_id = ? AND jobs.status IN ({marks}) LIMIT 1",
            (run_id, job_id, *_ENDED),
        ).fetchone()
        return row is not None

    def close_if_done(self, run_id: str) -> bool:
        """The submitted run is done once no job of it is queued or claimed."""
        left = self.db.execute(
            "SELECT COUNT(*) FROM queue WHERE run_id = ? AND state <> ?", (run_id, DONE)
        ).fetchone()[0]
        if left:
            return False
        self.db.execute(
            "UPDATE runs SET status = 'done', finished_at = ? WHERE id = ? AND status = 'queued'",
            (_now(), run_id),
        )
        return True

    def next_expiry(self, run_id: str, worker: str) -> float | None:
        """When the first lease of another worker's claims on this run runs out (None: no other
        worker holds any)."""
        row = self.db.execute(
            "SELECT MIN(lease_until) FROM queue WHERE run_id = ? AND state = ? AND worker <> ?",
            (run_id, CLAIMED, worker),
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def counts(self, run_id: str) -> QueueCounts:
        now = time.time()
        found = {QUEUED: 0, CLAIMED: 0, DONE: 0, "expired": 0}
        for state, expired, number in self.db.execute(
            "SELECT state, CASE WHEN state = ? AND lease_until < ? THEN 1 ELSE 0 END, SUM(size) "
            "FROM queue WHERE run_id = ? GROUP BY 1, 2",
            (CLAIMED, now, run_id),
        ).fetchall():
            found[state] += int(number)
            if expired:
                found["expired"] += int(number)
        return QueueCounts(found[QUEUED], found[CLAIMED], found[DONE], found["expired"])

    def workers(self, run_id: str) -> list[dict[str, Any]]:
        """Each worker of a submitted run: its run row and what its jobs did and cost."""
        rows = self.db.execute(
            f"""
            SELECT runs.id, runs.worker, runs.status, runs.started_at, runs.heartbeat_at,
                   COUNT(CASE WHEN jobs.status IN {(SUCCEEDED, SKIPPED)} THEN 1 END),
                   COUNT(CASE WHEN jobs.status = '{FAILED}' THEN 1 END),
                   COUNT(CASE WHEN jobs.status IN {IN_FLIGHT} THEN 1 END),
                   COALESCE(SUM(CASE WHEN jobs.status IN {BILLED} THEN jobs.cost_usd END), 0),
                   COALESCE(SUM(CASE WHEN jobs.status IN {IN_FLIGHT} THEN jobs.reserved_usd END), 0)
            FROM runs LEFT JOIN jobs ON jobs.run_id = runs.id
            WHERE runs.batch = ? AND runs.id <> ?
            GROUP BY runs.id ORDER BY runs.started_at, runs.id
            """,
            (run_id, run_id),
        ).fetchall()
        names = ("run", "worker", "status", "started_at", "heartbeat_at", "done", "failed",
                 "in_flight", "spent_usd", "unknown_usd")  # fmt: skip
        found = [dict(zip(names, row, strict=True)) for row in rows]
        for worker in found:  # SQLite sums no rows to the integer 0
            worker["spent_usd"], worker["unknown_usd"] = (
                float(worker["spent_usd"]),
                float(worker["unknown_usd"]),
            )
        return found

    def outcomes(self, run_id: str) -> dict[str, int]:
        """The submitted run's jobs by how they ended, each job by its newest row."""
        rows = self.db.execute(
            "SELECT jobs.job_id, jobs.status FROM jobs JOIN runs ON runs.id = jobs.run_id "
            "WHERE runs.batch = ? AND runs.id <> ? ORDER BY jobs.rowid",
            (run_id, run_id),
        ).fetchall()
        newest: dict[str, str] = {str(job): str(status) for job, status in rows}
        return dict(Counter(_OUTCOME.get(status, status) for status in newest.values()))
