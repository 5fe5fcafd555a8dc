"""Budget pools: one cap for many runs, on any number of processes and machines, kept in the ledger.

A pool's money is the ledger's own: what the rows of its runs' jobs hold (billed, or sent and not
answered yet, or unknown) since the start of its period, plus the *holds* of jobs about to be sent.
A job's price is held in one locked transaction that first checks the pool has room; the hold
becomes the job's ``sending`` row in one transaction (the hold deleted, the row written), and from
then on the row carries the money, as it does for every run: so the pool's total can never be
read half-moved, and a cap never counts one dollar twice.

A submitted run (``render submit``) is capped the same way across its workers: its ``budget_usd``
is the cap of a pool of its own (the *batch*). A process that dies holding money never sends it:
its holds go once its heartbeat is older than its lease, and a hold that is gone cannot become a
``sending`` row (the row's transaction checks), so a process that was only frozen sends nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Literal, get_args

from engine.errors import LedgerError
from engine.formatting import money
from engine.ledger import IN_FLIGHT, Ledger

__all__ = ["PERIODS", "Period", "Pool", "PoolUse", "Pools", "period_start"]

Period = Literal["day", "week", "month", "total"]
PERIODS: tuple[str, ...] = get_args(Period)
_EPSILON = 1e-9


@dataclass(frozen=True)
class Pool:
    """A cap shared by every run that names it, for a period (``total``: for ever)."""

    name: str
    cap_usd: float
    period: str
    set_at: str

    def describe(self) -> str:
        each = "in all" if self.period == "total" else f"a {self.period}"
        return f"the pool {self.name} ({money(self.cap_usd)} {each})"


@dataclass(frozen=True)
class PoolUse:
    """A pool's money in its current period: billed, in flight (sent, not answered, or unknown),
    held (about to be sent), and what is left."""

    pool: Pool
    since: str
    spent_usd: float
    in_flight_usd: float
    held_usd: float

    @property
    def left_usd(self) -> float:
        return max(0.0, self.pool.cap_usd - self.spent_usd - self.in_flight_usd - self.held_usd)


def period_start(period: str, now: dt.datetime | None = None) -> str:
    """When the current period began (UTC; weeks begin on Monday), as the ledger writes times."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "total":
        return ""
    if period == "week":
        day -= dt.timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return day.isoformat(timespec="milliseconds")


# A pool's money, read in one statement (one snapshot: a hold becoming a row is seen once):
# billed, from the running totals by day the ledger's triggers keep (money_days); in flight, from
# the few rows in flight; held, from the holds.
_MONEY = f"""
    SELECT
      (SELECT COALESCE(SUM(billed_usd), 0) FROM money_days WHERE scope = ? AND day >= ?),
      (SELECT COALESCE(SUM(jobs.reserved_usd), 0) FROM jobs JOIN runs ON runs.id = jobs.run_id
       WHERE runs.{{column}} = ? AND jobs.status IN {IN_FLIGHT} AND jobs.submitted_at >= ?),
      (SELECT COALESCE(SUM(amount), 0) FROM holds WHERE {{column}} = ?)
"""


class Pools:
    """The pools of one ledger, and the holds of the jobs about to be sent from them."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db = ledger.db

    def set(self, name: str, cap_usd: float, period: str) -> Pool:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.db.execute(
            "INSERT INTO pools (name, cap_usd, period, set_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET cap_usd = excluded.cap_usd, "
            "period = excluded.period, set_at = excluded.set_at",
            (name, cap_usd, period, now),
        )
        return Pool(name, cap_usd, period, now)

    def get(self, name: str) -> Pool | None:
        row = self.db.execute(
            "SELECT name, cap_usd, period, set_at FROM pools WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else Pool(*row)

    def need(self, name: str) -> Pool:
        """The pool ``name``; a LedgerError naming the pools there are when it is not one."""
        found = self.get(name)
        if found is not None:
            return found
        names = [pool.name for pool in self.all()]
        there = f"the pools are {', '.join(names)}" if names else "there are no pools yet"
        raise LedgerError(
            f"no budget pool '{name}' in the ledger {self.ledger.where} ({there}): "
            f"create it with `render budget set {name} USD`"
        )

    def all(self) -> list[Pool]:
        rows = self.db.execute("SELECT name, cap_usd, period, set_at FROM pools ORDER BY name")
        return [Pool(*row) for row in rows.fetchall()]

    def use(self, pool: Pool) -> PoolUse:
        since = period_start(pool.period)
        spent, in_flight, held = self._money("pool", pool.name, since)
        return PoolUse(pool, since, spent, in_flight, held)

    def _money(self, column: str, name: str, since: str) -> tuple[float, float, float]:
        row = self.db.execute(
            _MONEY.format(column=column), (f"{column}:{name}", since[:10], name, since, name)
        ).fetchone()
        # Running totals add and subtract floats: a cent's billionth is not money.
        return round(float(row[0]), 9), float(row[1]), float(row[2])

    def hold(
        self,
        run_id: str,
        job_id: str,
        amount: float,
        *,
        pool: str | None,
        batch: str | None,
        stale_before: float,
    ) -> str | None:
        """Hold ``amount`` for a job about to be sent, if ``pool`` and the ``batch``'s budget
        both have room. None when held; else why not (for the job's "not sent" line). The holds
        of runs whose heartbeat is older than ``stale_before`` (they died) are let go first."""
        locks = tuple(f"{kind}:{name}" for kind, name in (("pool", pool), ("batch", batch)) if name)
        with self.ledger.transaction(lock=locks):
            self._let_go(stale_before)
            if pool is not None:
                found = self.need(pool)
                if not self._room("pool", pool, period_start(found.period), found.cap_usd, amount):
                    return f"{found.describe()} is spent"
            if batch is not None:
                cap = self._batch_cap(batch)
                if cap is not None and not self._room("batch", batch, "", cap, amount):
                    return f"the run's budget ({money(cap)}) is reached"
            now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            self.db.execute(
                "INSERT INTO holds (run_id, job_id, pool, batch, amount, held_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, job_id, pool, batch, amount, now),
            )
        return None

    def others_hold(self, run_id: str, *, pool: str | None, batch: str | None) -> bool:
        """Whether runs other than ``run_id`` hold money in ``pool`` or ``batch``: money that
        becomes a sent job's, or, if its run died, comes back once the run's lease runs out."""
        row = self.db.execute(
            "SELECT 1 FROM holds WHERE run_id <> ? AND (pool = ? OR batch = ?) LIMIT 1",
            (run_id, pool, batch),
        ).fetchone()
        return row is not None

    def drop(self, run_id: str, job_id: str) -> None:
        """A held job that will not be sent: its money goes back."""
        self.db.execute("DELETE FROM holds WHERE run_id = ? AND job_id = ?", (run_id, job_id))

    def _room(self, column: str, name: str, since: str, cap: float, amount: float) -> bool:
        spent, in_flight, held = self._money(column, name, since)
        return spent + in_flight + held + amount <= cap + _EPSILON

    def _batch_cap(self, batch: str) -> float | None:
        row = self.db.execute("SELECT budget_usd FROM runs WHERE id = ?", (batch,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _let_go(self, stale_before: float) -> None:
        """The holds of runs that ended, or whose heartbeat stopped (killed): nothing of theirs
        can be sent any more, so their money goes back."""
        # Read from the holds (a few), each run found by its key: not a scan of every run.
        self.db.execute(
            "DELETE FROM holds WHERE EXISTS (SELECT 1 FROM runs WHERE runs.id = holds.run_id "
            "AND (runs.finished_at IS NOT NULL OR runs.heartbeat_at IS NULL "
            "OR runs.heartbeat_at < ?))",
            (stale_before,),
        )


def stale_before(lease_s: float) -> float:
    """The heartbeat time before which a run is taken for dead (clocks agree within a second or
    two; a lease is many times that)."""
    return time.time() - lease_s
