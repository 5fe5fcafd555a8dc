"""The ledger: every run and job in SQLite under RENDER_HOME (or a team's PostgreSQL,
``RENDER_LEDGER_URL``), so a killed run resumes and nothing is paid twice.

A job's row is written *before* its request goes out (``sending``), again the moment Segmind returns a
request id (``submitted``), and when it ends. The money of one request is held by exactly one row at
a time: a later run that collects a queued request takes its money over (the earlier row becomes
``collected``), and the row that learns the outcome records the charge once, however many
processes polled it. Schema changes are numbered migrations, the same on both databases
(engine.database), recorded with the schema's version and applied under a lock, so two processes
opening a new ledger do not race.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.database import Database, is_url, migration_lock, open_database
from engine.pending import Pending
from engine.settings import ledger_target, render_home

__all__ = [
    "BILLED",
    "COLLECTED",
    "FAILED",
    "HELD",
    "IN_FLIGHT",
    "NOT_SENT",
    "SENDING",
    "SKIPPED",
    "SUBMITTED",
    "SUCCEEDED",
    "UNFETCHED",
    "UNKNOWN",
    "WAITING",
    "JobRecord",
    "Ledger",
    "RunRow",
    "Spend",
    "new_run_id",
    "open_ledger",
]


def _lists_as_json(db: Database) -> None:
    """Output lists were joined with commas, which split a path holding one: store JSON arrays."""
    rows = db.execute(
        "SELECT rowid, output_paths, output_sha256 FROM jobs "
        "WHERE output_paths IS NOT NULL OR output_sha256 IS NOT NULL"
    ).fetchall()
    for rowid, paths, hashes in rows:
        db.execute(
            "UPDATE jobs SET output_paths = ?, output_sha256 = ? WHERE rowid = ?",
            (_comma_list(paths), _comma_list(hashes), rowid),
        )


def _comma_list(text: str | None) -> str | None:
    if text is None or text.startswith("["):
        return text
    return json.dumps([part for part in text.split(",") if part])


def _first(db: Database) -> None:
    db.script(_FIRST)
    if db.dialect == "postgresql":
        # Rows are listed in the order they were written: SQLite numbers every table's rows
        # (rowid, renumbered when a row is replaced); PostgreSQL needs the column said.
        db.execute("ALTER TABLE jobs ADD COLUMN rowid BIGSERIAL")


_FIRST = """
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
"""

# What a budget pool (or a submitted run's budget) has billed, by day: kept by triggers on jobs, so
# a pool's total is a sum over its days, not over every job of the month (engine/pools.py). A
# scope is "pool:NAME" or "batch:RUN"; a job counts on the day it was sent. Each trigger touches
# the batch's row before the pool's, so two PostgreSQL transactions take row locks in one order.
_BILLED = "('succeeded', 'unfetched')"
_SCOPES = (("batch", "'batch:' || batch"), ("pool", "'pool:' || pool"))


def _scope_of(row: str, kind: str, name: str) -> str:
    return f"(SELECT {name} FROM runs WHERE id = {row}.run_id AND {kind} IS NOT NULL)"


def _subtract(row: str) -> list[str]:
    return [
        f"UPDATE money_days SET billed_usd = billed_usd - {row}.cost_usd "
        f"WHERE {row}.status IN {_BILLED} AND COALESCE({row}.cost_usd, 0) <> 0 "
        f"AND day = substr({row}.submitted_at, 1, 10) AND scope = {_scope_of(row, kind, name)}"
        for kind, name in _SCOPES
    ]


def _add(row: str) -> list[str]:
    return [
        f"INSERT INTO money_days (scope, day, billed_usd) "
        f"SELECT {name}, substr({row}.submitted_at, 1, 10), {row}.cost_usd FROM runs "
        f"WHERE id = {row}.run_id AND {kind} IS NOT NULL AND {row}.status IN {_BILLED} "
        f"AND COALESCE({row}.cost_usd, 0) <> 0 "
        f"ON CONFLICT (scope, day) DO UPDATE SET billed_usd = money_days.billed_usd + excluded.billed_usd"
        for kind, name in _SCOPES
    ]


def _money_days(db: Database) -> None:
    db.execute(
        "CREATE TABLE money_days (scope TEXT NOT NULL, day TEXT NOT NULL, "
        "billed_usd DOUBLE PRECISION NOT NULL, PRIMARY KEY (scope, day))"
    )
    # What is in flight is summed from its rows: few at any time, found through this index.
    db.execute(
        "CREATE INDEX jobs_in_flight ON jobs (run_id) "
        "WHERE status IN ('sending', 'submitted', 'unknown')"
    )
    if db.dialect == "sqlite":
        for event, statements in (
            ("INSERT", _add("NEW")),
            ("DELETE", _subtract("OLD")),
            ("UPDATE OF status, cost_usd, submitted_at", _subtract("OLD") + _add("NEW")),
        ):
            name = "money_days_" + event.split()[0].lower()
            body = ";\n".join(statements)
            db.execute(f"CREATE TRIGGER {name} AFTER {event} ON jobs BEGIN {body}; END")
        return
    old, new = ";\n".join(_subtract("OLD")), ";\n".join(_add("NEW"))
    db.execute(
        "CREATE FUNCTION render_money_days() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' THEN {old}; END IF; "
        f"IF TG_OP <> 'DELETE' THEN {new}; END IF; "
        "RETURN NULL; END $$"
    )
    db.execute(
        "CREATE TRIGGER money_days AFTER INSERT OR UPDATE OR DELETE ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION render_money_days()"
    )


Migration = str | Callable[[Database], None]

MIGRATIONS: tuple[Migration, ...] = (
    _first,
    _lists_as_json,
    "CREATE INDEX jobs_by_request ON jobs (request_id) WHERE request_id IS NOT NULL;",
    """
    CREATE TABLE uploads (
        sha256 TEXT NOT NULL,
        host TEXT NOT NULL,
        url TEXT NOT NULL,
        uploaded_at TEXT NOT NULL,
        PRIMARY KEY (sha256, host)
    );
    ALTER TABLE jobs ADD COLUMN output_urls TEXT;
    ALTER TABLE jobs ADD COLUMN estimated_usd REAL;
    ALTER TABLE jobs ADD COLUMN charged_usd REAL;
    ALTER TABLE jobs ADD COLUMN charge_source TEXT;
    ALTER TABLE jobs ADD COLUMN body_sha256 TEXT;
    ALTER TABLE runs ADD COLUMN rate_limited INTEGER;
    ALTER TABLE runs ADD COLUMN learned_rpm REAL;
    """,
    # Verdicts on shots (engine/verdicts.py): keyed by the exact picture, so a re-render is pending.
    """
    CREATE TABLE verdicts (
        recipe TEXT NOT NULL,
        job_id TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('approved', 'rejected')),
        note TEXT,
        given_at TEXT NOT NULL,
        PRIMARY KEY (recipe, job_id, sha256)
    );
    """,
    # A team's ledger (issue 14): budget pools and the money held in them before a request is
    # sent (engine/pools.py); one pace per account, by its key's hash (engine/ratelimit.py); runs
    # submitted to a queue that workers claim under leases (engine/queue.py).
    """
    CREATE TABLE pools (
        name TEXT PRIMARY KEY,
        cap_usd REAL NOT NULL,
        period TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'total')),
        set_at TEXT NOT NULL
    );
    CREATE TABLE holds (
        run_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        pool TEXT,
        batch TEXT,
        amount REAL NOT NULL,
        held_at TEXT NOT NULL,
        PRIMARY KEY (run_id, job_id)
    );
    CREATE INDEX holds_by_pool ON holds (pool);
    CREATE INDEX holds_by_batch ON holds (batch);
    ALTER TABLE runs ADD COLUMN pool TEXT;
    ALTER TABLE runs ADD COLUMN batch TEXT;
    ALTER TABLE runs ADD COLUMN worker TEXT;
    ALTER TABLE runs ADD COLUMN heartbeat_at REAL;
    CREATE INDEX runs_by_pool ON runs (pool);
    CREATE INDEX runs_by_batch ON runs (batch);
    CREATE TABLE paces (
        account TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE submissions (
        run_id TEXT PRIMARY KEY,
        plan TEXT NOT NULL,
        submitted_at TEXT NOT NULL
    );
    CREATE TABLE queue (
        run_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        job TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'claimed', 'done')),
        worker TEXT,
        lease_until REAL,
        claims INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (run_id, job_id)
    );
    CREATE INDEX queue_to_claim ON queue (run_id, state, seq);
    """,
    _money_days,
)

# A job's states, in the order they happen; ``waiting``: a try of its request was answered without
# a bill and the next has not left (nothing of it is on the wire; its money is held, not on the
# row); ``collected``: a later run took this request over;
# ``not-sent``: the job was stopped (an abort, Ctrl-C) before its request left; ``unfetched``:
# paid, but its outputs could not be downloaded yet (their URLs are kept for the next run);
# ``held``: not sent, because an earlier run's request for it has an unknown outcome (that row
# holds the money and decides; this one only says the run saw it).
WAITING = "waiting"
SENDING, SUBMITTED, SUCCEEDED, FAILED, UNKNOWN, SKIPPED, COLLECTED, NOT_SENT, UNFETCHED, HELD = (
    "sending",
    "submitted",
    "succeeded",
    "failed",
    "unknown",
    "skipped",
    "collected",
    "not-sent",
    "unfetched",
    "held",
)
# Rows whose money was billed (the totals use `cost_usd`: what Segmind charged, else the estimate).
BILLED = (SUCCEEDED, UNFETCHED)
# Rows whose money may have been, or will be, billed, and nobody knows yet.
IN_FLIGHT = (SENDING, SUBMITTED, UNKNOWN)
_LISTS = ("output_paths", "output_sha256", "output_urls")


def open_ledger(home: Path | None = None, *, create: bool = True) -> Ledger | None:
    """The ledger the settings name (RENDER_LEDGER_URL, else RENDER_HOME's file); with ``create``
    False, None where no SQLite file exists yet (a dry run must not make one)."""
    target = ledger_target(home)
    if not create and not is_url(target) and not Path(target).exists():
        return None
    return Ledger(target, home=home)


def new_run_id() -> str:
    """Sortable by time to the millisecond, unique: ``20261121-115230-042-3f2a``."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}-" + uuid.uuid4().hex[:4]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _stored(value: Any) -> Any:
    return json.dumps(list(value)) if isinstance(value, tuple | list) else value


def _loaded(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    found = json.loads(text)
    return tuple(str(item) for item in found) if isinstance(found, list) else ()


@dataclass(frozen=True)
class JobRecord:
    """What an earlier run left for a payload: its state, request, outputs and where they are."""

    run_id: str
    job_id: str
    status: str
    request_id: str | None
    poll_url: str | None
    result_url: str | None
    output_paths: tuple[str, ...]
    output_sha256: tuple[str, ...]
    reserved_usd: float | None
    out_dir: str
    output_urls: tuple[str, ...] = ()
    body_sha256: str | None = None
    sent_at: str | None = None

    @property
    def pollable(self) -> bool:
        return bool(self.request_id and self.poll_url and self.result_url)


@dataclass(frozen=True)
class Spend:
    """Dollars by day, recipe, model and backend."""

    day: str
    recipe: str
    model: str
    backend: str
    jobs: int
    spent_usd: float
    unknown_usd: float


@dataclass(frozen=True)
class RunRow:
    """One run, as `render ledger` lists it."""

    id: str
    recipe: str
    model: str
    backend: str
    status: str
    started_at: str
    out_dir: str
    jobs: int
    spent_usd: float
    unknown_usd: float
    estimated_usd: float = 0.0
    charged_usd: float = 0.0
    charged_jobs: int = 0
    rate_limited: int | None = None
    learned_rpm: float | None = None


class Ledger:
    """One SQLite file or PostgreSQL database (``target``: a path or a ``postgresql://`` URL);
    every write is committed at once (a kill loses nothing written). ``migrate`` False opens it
    as it is (``render ledger migrate`` says what it would apply)."""

    def __init__(
        self, target: str | Path, *, migrate: bool = True, home: Path | None = None
    ) -> None:
        self.db = open_database(target)
        self.where = self.db.where
        self.path = None if self.db.dialect == "postgresql" else Path(self.where)
        # What runs journaled while this ledger's database did not answer (engine.pending), in
        # RENDER_HOME: replayed now, before anything is decided from the ledger.
        self.pending = Pending((home or render_home().path) / "pending", str(target))
        self.replayed = 0
        if migrate:
            try:
                self.migrate()
                self.replayed = self.pending.replay(self)
            except BaseException:
                self.db.close()
                raise

    def migrate(self) -> int:
        """Apply the migrations this ledger lacks; returns how many this process applied."""
        applied = 0
        while self.version < len(MIGRATIONS):
            # The version is read again under the lock: another process may have migrated since,
            # and a migration must run once. One transaction a migration.
            with self.db.transaction(lock=migration_lock()):
                number = self.version
                if number < len(MIGRATIONS):
                    step = MIGRATIONS[number]
                    if callable(step):
                        step(self.db)
                    else:
                        self.db.script(step)
                    self.db.set_version(number + 1)
                    applied += 1
        return applied

    @property
    def version(self) -> int:
        return self.db.version()

    @property
    def dialect(self) -> str:
        return self.db.dialect

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
        status: str = "running",
        pool: str | None = None,
        batch: str | None = None,
        worker: str | None = None,
    ) -> None:
        """A run's row; ``pool`` its budget pool, ``batch`` the submitted run it works on (its
        own id for the submitted run), ``worker`` who works (host and process)."""
        self.db.execute(
            "INSERT INTO runs (id, recipe, recipe_path, model, backend, out_dir, budget_usd, "
            "started_at, finished_at, status, pool, batch, worker, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            (run_id, recipe, recipe_path, model, backend, out_dir, budget_usd, _now(), status,
             pool, batch, worker, time.time()),
        )  # fmt: skip

    def heartbeat(self, run_id: str) -> None:
        """The run is alive (its holds in a pool stay held)."""
        self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (time.time(), run_id))

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        rate_limited: int | None = None,
        learned_rpm: float | None = None,
    ) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, rate_limited = ?, learned_rpm = ? "
            "WHERE id = ?",
            (_now(), status, rate_limited, learned_rpm, run_id),
        )

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return dict(row) if row is not None else None

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
        """Write a job's row at once, with any other fields (a request id) in it: a kill between
        two writes must never leave "submitted" without the request to poll."""
        self._write(_insert(run_id, job_id, model, backend, payload_sha256, status, reserved_usd, fields))  # fmt: skip

    def _write(self, row: tuple[str, list[Any]]) -> None:
        """A job's row, replacing the one it had (a new row: it is listed as the newest)."""
        sql, values = row
        if self.db.dialect == "sqlite":
            self.db.execute(sql, values)
            return
        with self.db.transaction():
            self.db.execute("DELETE FROM jobs WHERE run_id = ? AND job_id = ?", values[:2])
            self.db.execute(sql.replace("INSERT OR REPLACE", "INSERT", 1), values)

    def sending(
        self,
        run_id: str,
        job_id: str,
        *,
        model: str,
        backend: str,
        payload_sha256: str,
        reserved_usd: float,
        from_hold: bool,
        **fields: Any,
    ) -> bool:
        """The ``sending`` row, written before the request leaves. ``from_hold``: it takes over
        the job's hold in a pool in the same transaction (the pool's total sees the money once);
        False, and nothing written, when the hold is gone (its process was taken for dead)."""
        row = _insert(run_id, job_id, model, backend, payload_sha256, SENDING, reserved_usd, fields)
        if not from_hold:
            self._write(row)
            return True
        with self.db.transaction():
            gone = self.db.execute(
                "DELETE FROM holds WHERE run_id = ? AND job_id = ?", (run_id, job_id)
            )
            if gone.rowcount != 1:
                return False
            self._write(row)
        return True

    def waiting(
        self,
        run_id: str,
        job_id: str,
        *,
        held: float,
        pool: str | None = None,
        batch: str | None = None,
    ) -> None:
        """A try answered without a bill: the row holds no money and says ``waiting``; the money
        goes back into a hold (``pool``/``batch``), in one transaction, for the next try."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE jobs SET status = ?, reserved_usd = 0 WHERE run_id = ? AND job_id = ?",
                (WAITING, run_id, job_id),
            )
            if pool is not None or batch is not None:
                self.db.execute(
                    "INSERT INTO holds (run_id, job_id, pool, batch, amount, held_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, job_id, pool, batch, held, _now()),
                )

    def update(self, run_id: str, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        columns = ", ".join(f"{name} = ?" for name in fields)
        values = [_stored(v) for v in fields.values()]
        self.db.execute(
            f"UPDATE jobs SET {columns} WHERE run_id = ? AND job_id = ?", (*values, run_id, job_id)
        )

    def finish_job(self, run_id: str, job_id: str, status: str, **fields: Any) -> None:
        self.update(run_id, job_id, status=status, finished_at=_now(), **fields)

    def take_over(
        self,
        run_id: str,
        job_id: str,
        *,
        model: str,
        backend: str,
        payload_sha256: str,
        reserved_usd: float,
        request_id: str,
        **fields: Any,
    ) -> None:
        """This run collects ``request_id``, which an earlier row holds: the request's money moves
        to this run's row, so it is counted once whoever ends up learning its outcome."""
        with self.db.transaction(lock=f"request:{request_id}"):
            self.db.execute(
                "UPDATE jobs SET status = ?, reserved_usd = 0, error = ? "
                "WHERE request_id = ? AND status IN (?, ?, ?)",
                (COLLECTED, f"collected by run {run_id}", request_id, *IN_FLIGHT),
            )
            self._write(_insert(run_id, job_id, model, backend, payload_sha256, SUBMITTED, reserved_usd, {**fields, "request_id": request_id}))  # fmt: skip

    def settle_request(
        self, run_id: str, job_id: str, status: str, *, cost_usd: float | None, **fields: Any
    ) -> float | None:
        """Record how a request ended, once: if another row has recorded it already (another
        process polled it too), this row records no money. Returns the cost it recorded."""
        request_id = fields.get("request_id")
        with self.db.transaction(lock=f"request:{request_id}" if request_id else None):
            if request_id:
                earlier = self.db.execute(
                    "SELECT run_id FROM jobs WHERE request_id = ? AND status IN (?, ?, ?) "
                    "AND NOT (run_id = ? AND job_id = ?) LIMIT 1",
                    (request_id, SUCCEEDED, UNFETCHED, FAILED, run_id, job_id),
                ).fetchone()
                if earlier is not None:
                    cost_usd = 0.0 if cost_usd is not None else None
                    fields["error"] = f"billed once, recorded by run {earlier[0]}"
                self.db.execute(
                    "UPDATE jobs SET status = ?, reserved_usd = 0, error = ? "
                    "WHERE request_id = ? AND status IN (?, ?, ?) AND NOT (run_id = ? AND job_id = ?)",
                    (COLLECTED, f"collected by run {run_id}", request_id, *IN_FLIGHT, run_id, job_id),
                )  # fmt: skip
            self.finish_job(run_id, job_id, status, cost_usd=cost_usd, **fields)
        return cost_usd

    def record(self, run_id: str, job_id: str) -> JobRecord | None:
        """One run's record of one job."""
        row = self.db.execute(
            "SELECT jobs.*, runs.out_dir AS run_out_dir FROM jobs JOIN runs ON runs.id = jobs.run_id "
            "WHERE jobs.run_id = ? AND jobs.job_id = ?",
            (run_id, job_id),
        ).fetchone()
        return None if row is None else _record(row)

    def cost(self, run_id: str, job_id: str) -> float:
        """What a row records as billed (0 when nothing is)."""
        row = self.db.execute(
            "SELECT cost_usd FROM jobs WHERE run_id = ? AND job_id = ?", (run_id, job_id)
        ).fetchone()
        return float(row[0] or 0.0) if row is not None else 0.0

    def records(self, *, backend: str, model: str, payload_sha256: str) -> list[JobRecord]:
        """Every record of this payload on this backend, newest first (collected and held ones left
        out: another row holds their request)."""
        rows = self.db.execute(
            "SELECT jobs.*, runs.out_dir AS run_out_dir FROM jobs JOIN runs ON runs.id = jobs.run_id "
            "WHERE jobs.backend = ? AND jobs.model = ? AND jobs.payload_sha256 = ? "
            "AND jobs.status NOT IN (?, ?) ORDER BY jobs.rowid DESC",
            (backend, model, payload_sha256, COLLECTED, HELD),
        ).fetchall()
        return [_record(row) for row in rows]

    def jobs_of(self, run_id: str) -> Iterator[dict[str, Any]]:
        cursor = self.db.execute("SELECT * FROM jobs WHERE run_id = ? ORDER BY rowid", (run_id,))
        for row in cursor.fetchall():
            found = _dict(row)
            for name in _LISTS:
                if name in found:
                    found[name] = list(_loaded(found[name]))
            yield found

    def runs(self) -> list[dict[str, Any]]:
        return [_dict(row) for row in self.db.execute("SELECT * FROM runs ORDER BY started_at")]

    def run_rows(self, *, limit: int | None = None) -> list[RunRow]:
        """Runs, newest last, with what each sent and what it cost."""
        rows = self.db.execute(
            f"""
            SELECT * FROM (
                SELECT runs.id, runs.recipe, runs.model, runs.backend, runs.status, runs.started_at,
                       runs.out_dir, COUNT(jobs.job_id),
                       COALESCE(SUM(CASE WHEN jobs.status IN {BILLED} THEN jobs.cost_usd END), 0),
                       COALESCE(SUM(CASE WHEN jobs.status IN {IN_FLIGHT} THEN jobs.reserved_usd END), 0),
                       COALESCE(SUM(CASE WHEN jobs.status IN {BILLED} AND jobs.charged_usd IS NOT NULL
                                    THEN jobs.estimated_usd END), 0),
                       COALESCE(SUM(CASE WHEN jobs.status IN {BILLED} THEN jobs.charged_usd END), 0),
                       COUNT(CASE WHEN jobs.status IN {BILLED} THEN jobs.charged_usd END),
                       runs.rate_limited, runs.learned_rpm
                FROM runs LEFT JOIN jobs ON jobs.run_id = runs.id
                GROUP BY runs.id ORDER BY runs.started_at DESC, runs.id DESC
                {"" if limit is None else f"LIMIT {int(limit)}"}
            ) AS newest ORDER BY 6, 1
            """
        ).fetchall()
        return [RunRow(*row) for row in rows]

    def spend(self) -> list[Spend]:
        """Money by day (UTC), recipe, model and backend: billed, and unknown (sent, not answered
        yet, or never). Each request's money is on exactly one row."""
        rows = self.db.execute(
            f"""
            SELECT substr(COALESCE(jobs.finished_at, jobs.submitted_at), 1, 10), runs.recipe, jobs.model, jobs.backend, COUNT(*),
                   COALESCE(SUM(CASE WHEN jobs.status IN {BILLED} THEN jobs.cost_usd END), 0),
                   COALESCE(SUM(CASE WHEN jobs.status IN {IN_FLIGHT} THEN jobs.reserved_usd END), 0)
            FROM jobs JOIN runs ON runs.id = jobs.run_id
            WHERE jobs.status IN {BILLED + IN_FLIGHT}
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            """
        ).fetchall()
        return [Spend(*row) for row in rows]

    # --- uploads ------------------------------------------------------------------------------

    def upload_url(self, sha256: str, host: str) -> str | None:
        """The URL Segmind Storage gave these bytes before, on this host."""
        row = self.db.execute(
            "SELECT url FROM uploads WHERE sha256 = ? AND host = ?", (sha256, host)
        ).fetchone()
        return None if row is None else str(row[0])

    def record_upload(self, sha256: str, host: str, url: str) -> None:
        self.db.execute(
            "INSERT INTO uploads (sha256, host, url, uploaded_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (sha256, host) DO UPDATE SET url = excluded.url, "
            "uploaded_at = excluded.uploaded_at",
            (sha256, host, url, _now()),
        )

    # --- settling -----------------------------------------------------------------------------

    def unsettled(self, *, backend: str) -> list[dict[str, Any]]:
        """Rows whose outcome nobody knows yet (of any run: a killed one never says it ended),
        oldest first: what request history may settle."""
        rows = self.db.execute(
            f"SELECT * FROM jobs WHERE backend = ? AND status IN {IN_FLIGHT} ORDER BY rowid",
            (backend,),
        ).fetchall()
        return [_dict(row) for row in rows]

    def row(self, run_id: str, job_id: str) -> dict[str, Any] | None:
        found = self.db.execute(
            "SELECT * FROM jobs WHERE run_id = ? AND job_id = ?", (run_id, job_id)
        ).fetchone()
        return None if found is None else _dict(found)

    def known_requests(self, request_ids: list[str]) -> set[str]:
        """Which of these request ids a row already holds (a settled submit must not take one)."""
        if not request_ids:
            return set()
        marks = ", ".join("?" for _ in request_ids)
        rows = self.db.execute(
            f"SELECT DISTINCT request_id FROM jobs WHERE request_id IN ({marks})", request_ids
        ).fetchall()
        return {str(row[0]) for row in rows}

    def transaction(self, lock: str | Sequence[str] | None = None) -> AbstractContextManager[None]:
        """Several writes that other processes see all or none of (``lock``: what they
        serialize on, see engine.database)."""
        return self.db.transaction(lock)


def _insert(
    run_id: str,
    job_id: str,
    model: str,
    backend: str,
    payload_sha256: str,
    status: str,
    reserved_usd: float | None,
    fields: dict[str, Any],
) -> tuple[str, list[Any]]:
    columns = ["run_id", "job_id", "model", "backend", "payload_sha256", "status", "reserved_usd", "submitted_at"]  # fmt: skip
    values = [run_id, job_id, model, backend, payload_sha256, status, reserved_usd, _now()]
    for name, value in fields.items():
        columns.append(name)
        values.append(_stored(value))
    marks = ", ".join("?" for _ in columns)
    return f"INSERT OR REPLACE INTO jobs ({', '.join(columns)}) VALUES ({marks})", values


def _dict(row: Any) -> dict[str, Any]:
    """A row as a dict, without the order PostgreSQL keeps in a column of its own."""
    found = dict(row)
    found.pop("rowid", None)
    return found


def _record(row: Any) -> JobRecord:
    status = row["status"]
    record = JobRecord(
        run_id=row["run_id"],
        job_id=row["job_id"],
        status=status,
        request_id=row["request_id"],
        poll_url=row["poll_url"],
        result_url=row["result_url"],
        output_paths=_loaded(row["output_paths"]),
        output_sha256=_loaded(row["output_sha256"]),
        reserved_usd=row["reserved_usd"],
        out_dir=row["run_out_dir"],
        output_urls=_loaded(row["output_urls"]),
        body_sha256=row["body_sha256"],
        sent_at=row["submitted_at"],
    )
    if status == SUBMITTED and not record.pollable:
        # Submitted without its request on record cannot be polled: it is as unknown as "sending".
        return JobRecord(**{**record.__dict__, "status": UNKNOWN})
    return record
