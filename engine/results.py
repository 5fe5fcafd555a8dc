"""What a run is asked (RunOptions) and what it answers (a Result per job, a RunSummary)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["CassetteUse", "RecordMode", "Result", "RunOptions", "RunSummary", "Status"]

Status = Literal["succeeded", "skipped", "failed", "unknown", "unfetched", "not-sent"]
RecordMode = Literal["once", "new", "all", "none"]


class Result(BaseModel):
    """How one job ended."""

    model_config = ConfigDict(frozen=True)

    job: str
    status: Status
    outputs: tuple[str, ...] = ()
    # The outputs' SHA-256, in the same order (the manifest says them; a later run checks them).
    sha256: tuple[str, ...] = ()
    cost_usd: float = 0.0
    error: str | None = None
    seconds: float = 0.0
    polls: int = 0
    # A job paid for whose files could not be downloaded: where they are, for the next run.
    urls: tuple[str, ...] = ()


class RunSummary(BaseModel):
    """How a run ended: counts, money, and why it stopped if it stopped early."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    out_dir: str
    results: tuple[Result, ...]
    spent_usd: float
    unknown_usd: float
    aborted: str | None
    budget_reached: bool
    interrupted: bool
    # What the budget that stopped jobs was (a pool, a submitted run's budget); None: the run's.
    budget_reason: str | None = None
    seconds: float
    # What the run wrote to its cassette, in words (None: no cassette, or nothing written).
    cassette: str | None = None
    # The pace the account allowed: how many submissions were answered 429, what rate was learned.
    rate_limited: int = 0
    learned_rpm: float | None = None
    uploads: int = 0
    # What Segmind said it charged, against the estimates of the same jobs.
    charged_usd: float = 0.0
    charged_estimate_usd: float = 0.0
    charged_jobs: int = 0

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)


@dataclass(frozen=True)
class CassetteUse:
    """A vcr cassette a run records its HTTP to, or (a replay backend) replays it from.

    ``record``: once (record if new, else replay), new (add new requests), all (record again),
    none (replay only). ``drop_unused``: requests the run did not make leave the cassette.
    ``miss_advice``: what to do about a request the cassette has no recording of.
    """

    path: Path
    record: RecordMode = "once"
    drop_unused: bool = False
    miss_advice: str | None = None


def _ignore(_result: Result) -> None:
    return None


@dataclass(frozen=True)
class RunOptions:
    """How to run: concurrency, rate, what to re-send, the retry policy's pace, where the ledger
    lives, the cassette, and who hears of each job as it ends (the progress bar)."""

    concurrency: int = 8
    rpm: int | None = None
    force: bool = False
    retry_unknown: bool = False
    max_attempts: int = 8
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_poll_s: float = 3600.0
    # A status render does not know is polled this long before the job is left unknown.
    max_unknown_status_s: float = 300.0
    # How long one request may wait out 429s before it gives up (its job then fails, unbilled).
    max_rate_wait_s: float = 1800.0
    # The length of Segmind's rate window ("a minute"); tests shrink it with the simulator's.
    rate_window_s: float = 60.0
    # RENDER_HOME (the ledger's folder); None: the settings' (engine.settings.render_home).
    home: Path | None = None
    cassette: CassetteUse | None = None
    # The lease of what a run holds in the ledger for other processes to see (holds in a budget
    # pool, claims of a submitted run): a run silent for that long is taken for dead.
    lease_s: float = 60.0
    on_result: Callable[[Result], None] = _ignore
