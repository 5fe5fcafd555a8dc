"""The ledger: every run and job in SQLite under RENDER_HOME, so a killed run resumes and nothing is paid twice.

A job's row is written *before* its request goes out (``sending``), again the moment Segmind returns a
request id (``submitted``), and when it ends. On the next run, a job whose identical payload already
succeeded (and whose output is intact) is skipped for free; one left ``submitted`` is polled, not
re-sent; one left ``sending`` or ``unknown`` is reported and re-sent only on ``--retry-unknown``.
Schema changes are numbered migrations, recorded in ``PRAGMA user_version``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JobRecord", "Ledger", "Spend", "new_run_id"]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        recipe TEXT NOT NULL,
        recipe_path TEXT NOT NULL,
        model TEXT NOT NULL,
        backend TEXT NOT NULL,
        out_dir TEXT NOT NULL,
        budget_usd REAL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL
    );
    CREATE TABLE jobs (
        run_id TEXT NOT NULL REFERENCES runs(id),
        job_id TEXT NOT NULL,
        model TEXT NOT NULL,
        backend TEXT NOT NULL,
        payload_sha256 TEXT NOT NULL,
        status TEXT NOT NULL,
        reserved_usd REAL,
        cost_usd REAL,
        credits_seen REAL,
        request_id TEXT,
        poll_url TEXT,
        result_url TEXT,
        output_paths TEXT,
        output_sha256 TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        submitted_at TEXT,
        finished_at TEXT,
        seconds REAL,
        error TEXT,
        PRIMARY KEY (run_id, job_id)
    );
    CREATE INDEX jobs_by_payload ON jobs (backend, model, payload_sha256, status);
    """,
)

# A job's states, in the order they happen.
PENDING, SENDING, SUBMITTED, SUCCEEDED, FAILED, UNKNOWN, SKIPPED = (
    "pending",
    "sending",
    "submitted",
    "succeeded",
    "failed",
    "unknown",
    "skipped",
)


def new_run_id() -> str:
    """Sortable by time, unique: ``20261121-115230-3f2a``."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class JobRecord:
    """What an earlier run left for a payload: its state, request, and output."""

    run_id: str
    job_id: str
    status: str
    request_id: str | None
    poll_url: str | None
    result_url: str | None
    output_paths: tuple[str, ...]
    output_sha256: tuple[str, ...]
    reserved_usd: float | None


@dataclass(frozen=True)
class Spend:
    """Dollars by day, recipe and model."""

    day: str
    recipe: str
    model: str
    backend: str
    jobs: int
    spent_usd: float
    unknown_usd: float


class Ledger:
    """One SQLite file; every write is committed at once (a kill loses nothing written)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # One transaction a migration: a ledger is at version N or N+1, never in between.
            try:
                self.db.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
                )
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    # --- runs ---------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        recipe: str,
        recipe_path: str,
        model: str,
        backend: str,
        out_dir: str,
        budget_usd: float | None,
    ) -> None:
        self.db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 'running')",
            (run_id, recipe, recipe_path, model, backend, out_dir, budget_usd, _now()),
        )

    def finish_run(self, run_id: str, status: str) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, status = ? WHERE id = ?", (_now(), status, run_id)
        )

    # --- jobs ---------------------------------------------------------------------------------

    def job(
        self,
        run_id: str,
        job_id: str,
        *,
        model: str,
        backend: str,
        payload_sha256: str,
        status: str,
        reserved_usd: float | None,
        **fields: Any,
    ) -> None:
        """Write a job's row in one statement, with any other fields (a request id) in it: a kill
        between two writes must never leave "submitted" without the request to poll."""
        columns = [
            "run_id",
            "job_id",
            "model",
            "backend",
            "payload_sha256",
            "status",
            "reserved_usd",
            "submitted_at",
        ]
        values = [run_id, job_id, model, backend, payload_sha256, status, reserved_usd, _now()]
        for name, value in fields.items():
            columns.append(name)
            values.append(",".join(value) if isinstance(value, tuple | list) else value)
        marks = ", ".join("?" for _ in columns)
        self.db.execute(
            f"INSERT OR REPLACE INTO jobs ({', '.join(columns)}) VALUES ({marks})", values
        )

    def update(self, run_id: str, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        columns = ", ".join(f"{name} = ?" for name in fields)
        values = [",".join(v) if isinstance(v, tuple | list) else v for v in fields.values()]
        self.db.execute(
            f"UPDATE jobs SET {columns} WHERE run_id = ? AND job_id = ?", (*values, run_id, job_id)
        )

    def finish_job(self, run_id: str, job_id: str, status: str, **fields: Any) -> None:
        self.update(run_id, job_id, status=status, finished_at=_now(), **fields)

    def latest(self, *, backend: str, model: str, payload_sha256: str) -> JobRecord | None:
        """The most telling record for this payload: a success if any, else the newest."""
        row = self.db.execute(
            "SELECT run_id, job_id, status, request_id, poll_url, result_url, output_paths, output_sha256, reserved_usd "
            "FROM jobs WHERE backend = ? AND model = ? AND payload_sha256 = ? "
            "ORDER BY status = 'succeeded' DESC, rowid DESC LIMIT 1",
            (backend, model, payload_sha256),
        ).fetchone()
        if row is None:
            return None
        if row[2] == SUBMITTED and not (row[3] and row[4] and row[5]):
            # Submitted without its request on record cannot be polled: it is as unknown as "sending".
            row = (row[0], row[1], UNKNOWN, *row[3:])
        return JobRecord(
            row[0], row[1], row[2], row[3], row[4], row[5],
            tuple(filter(None, (row[6] or "").split(","))),
            tuple(filter(None, (row[7] or "").split(","))),
            row[8],
        )  # fmt: skip

    def jobs_of(self, run_id: str) -> Iterator[dict[str, Any]]:
        cursor = self.db.execute("SELECT * FROM jobs WHERE run_id = ? ORDER BY rowid", (run_id,))
        names = [column[0] for column in cursor.description]
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    def runs(self) -> list[dict[str, Any]]:
        cursor = self.db.execute("SELECT * FROM runs ORDER BY started_at")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def spend(self) -> list[Spend]:
        """Money by day (UTC), recipe and model: billed, and unknown (sent, not answered yet, or never)."""
        rows = self.db.execute(
            """
            SELECT substr(COALESCE(jobs.finished_at, jobs.submitted_at), 1, 10), runs.recipe, jobs.model, jobs.backend, COUNT(*),
                   COALESCE(SUM(CASE WHEN jobs.status = 'succeeded' THEN jobs.cost_usd END), 0),
                   COALESCE(SUM(CASE WHEN jobs.status != 'succeeded' THEN jobs.reserved_usd END), 0)
            FROM jobs JOIN runs ON runs.id = jobs.run_id
            WHERE jobs.status IN ('succeeded', 'unknown', 'sending', 'submitted')
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            """
        ).fetchall()
        return [Spend(*row) for row in rows]
