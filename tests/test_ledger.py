"""The ledger: versioned migrations, what a payload's history says, and spend by day, recipe and model."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import engine.ledger as ledger_module
from engine.ledger import MIGRATIONS, Ledger


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "home" / "ledger.sqlite")


def test_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    book = _ledger(tmp_path)
    assert book.version == len(MIGRATIONS)
    book.close()
    again = _ledger(tmp_path)  # opening again runs nothing twice
    assert again.version == len(MIGRATIONS)
    tables = {
        row[0] for row in again.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert {"runs", "jobs"} <= tables
    again.close()


def test_a_failed_migration_leaves_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    Ledger(path).close()
    broken = (*MIGRATIONS, "CREATE TABLE extra (x); THIS IS NOT SQL;")
    setattr(ledger_module, "MIGRATIONS", broken)  # noqa: B010 - a later version of the engine
    try:
        with contextlib.suppress(sqlite3.OperationalError):
            Ledger(path)
        connection = sqlite3.connect(path)
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert not connection.execute(
            "SELECT name FROM sqlite_master WHERE name = 'extra'"
        ).fetchall()
        connection.close()
    finally:
        setattr(ledger_module, "MIGRATIONS", MIGRATIONS)  # noqa: B010


def test_latest_prefers_a_success_then_the_newest(tmp_path: Path) -> None:
    book = _ledger(tmp_path)
    for run in ("r1", "r2", "r3"):
        book.start_run(
            run,
            recipe="spring",
            recipe_path="r.yaml",
            model="scenecraft",
            backend="segmind",
            out_dir="o",
            budget_usd=1,
        )
    book.job(
        "r1",
        "a",
        model="scenecraft",
        backend="segmind",
        payload_sha256="h",
        status="sending",
        reserved_usd=0.3,
    )
    book.job(
        "r2",
        "a",
        model="scenecraft",
        backend="segmind",
        payload_sha256="h",
        status="sending",
        reserved_usd=0.3,
    )
    book.finish_job(
        "r2", "a", "succeeded", cost_usd=0.3, output_paths=["a.png"], output_sha256=["x"]
    )
    book.job(
        "r3",
        "a",
        model="scenecraft",
        backend="segmind",
        payload_sha256="h",
        status="failed",
        reserved_usd=0.3,
    )
    record = book.latest(backend="segmind", model="scenecraft", payload_sha256="h")
    assert record is not None
    assert (record.run_id, record.status, record.output_paths, record.output_sha256) == (
        "r2",
        "succeeded",
        ("a.png",),
        ("x",),
    )
    assert book.latest(backend="preview", model="scenecraft", payload_sha256="h") is None
    book.close()


def test_spend_by_day_recipe_and_model(tmp_path: Path) -> None:
    book = _ledger(tmp_path)
    book.start_run(
        "r1",
        recipe="spring",
        recipe_path="r.yaml",
        model="scenecraft",
        backend="segmind",
        out_dir="o",
        budget_usd=5,
    )
    for job, status, cost in (
        ("a", "succeeded", 0.339),
        ("b", "succeeded", 0.339),
        ("c", "unknown", None),
        ("d", "failed", None),
    ):
        book.job(
            "r1",
            job,
            model="scenecraft",
            backend="segmind",
            payload_sha256=job,
            status="sending",
            reserved_usd=0.339,
        )
        book.finish_job("r1", job, status, cost_usd=cost)
    (row,) = book.spend()
    assert (row.recipe, row.model, row.backend, row.jobs) == ("spring", "scenecraft", "segmind", 3)
    assert round(row.spent_usd, 3) == 0.678
    assert round(row.unknown_usd, 3) == 0.339
    book.close()
