"""A run's journal: every state change of its jobs written in one place, to the ledger, the output
folder's manifest and whoever listens (the progress bar), in the order that keeps a kill from
paying twice.

The ledger row comes first and the manifest line right after: ``sending`` before the request leaves,
``submitted`` (with the request to poll) the moment it is queued, and how the job ended. The
``sending`` and ``submitted`` lines are written, not synced: they need only survive a kill, which a
write does; the final lines are pushed to disk on one thread, off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.client import Submitted
from engine.errors import LedgerUnreachable
from engine.ledger import NOT_SENT, SENDING, SUBMITTED, WAITING, Ledger, new_run_id
from engine.outputs import OutputStore
from engine.plan import Job, Plan
from engine.results import Result, RunSummary

__all__ = ["Journal"]


class Journal:
    """What one run writes down; ``label`` names its backend in both records, ``on_result`` hears
    of each job as it ends, and ``results`` keeps them in that order."""

    def __init__(
        self,
        plan: Plan,
        *,
        ledger: Ledger,
        store: OutputStore,
        label: str,
        on_result: Callable[[Result], None],
        on_ended: Callable[[Job, Result], None] | None = None,
        on_down: Callable[[LedgerUnreachable], None] | None = None,
    ) -> None:
        self.plan = plan
        self.ledger = ledger
        self.store = store
        self.label = label
        self.on_result = on_result
        self.on_ended = on_ended
        self.on_down = on_down
        self.run_id = new_run_id()
        self.results: list[Result] = []
        self._budget_usd: float | None = None
        self._started = ""
        self._syncs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="manifest")

    # --- the run ---------------------------------------------------------------------------

    def begin(
        self,
        *,
        budget_usd: float | None,
        pool: str | None = None,
        batch: str | None = None,
        worker: str | None = None,
    ) -> None:
        self._budget_usd = budget_usd
        self._started = datetime.now(UTC).isoformat(timespec="seconds")
        self.store.prepare()
        self.ledger.start_run(
            self.run_id,
            recipe=self.plan.recipe,
            recipe_path=str(Path(self.plan.recipe_path).absolute()),
            model=self.plan.spec.id,
            backend=self.label,
            out_dir=str(self.store.root),
            budget_usd=budget_usd,
            pool=pool,
            batch=batch,
            worker=worker,
        )

    def end(self, status: str, summary: RunSummary) -> None:
        """The run's status in the ledger, and ``runs/<run id>.json`` for its report."""
        self._syncs.shutdown(wait=True)
        self._record(
            "finish_run",
            self.run_id,
            status,
            rate_limited=summary.rate_limited,
            learned_rpm=summary.learned_rpm,
        )
        self.store.write_run(
            self.run_id,
            {
                "id": self.run_id,
                "recipe": self.plan.recipe,
                "recipe_path": self.plan.recipe_path,
                "model": self.plan.spec.id,
                "backend": self.label,
                "status": status,
                "budget_usd": self._budget_usd,
                "spent_usd": summary.spent_usd,
                "unknown_usd": summary.unknown_usd,
                "started": self._started,
                "seconds": round(summary.seconds, 3),
                "axes": list(self.plan.axes),
                "values": {axis: list(values) for axis, values in self.plan.value_order.items()},
                "jobs": [job.id for job in self.plan.jobs],
                "recipe_jobs": list(self.plan.recipe_jobs),
            },
        )

    # --- a job's states ----------------------------------------------------------------------

    def row(self, job: Job, digest: str, status: str, reserved: float = 0.0, **fields: Any) -> None:
        """A job's row in the ledger, in one statement."""
        self._record(
            "job",
            self.run_id,
            job.id,
            model=self.plan.spec.id,
            backend=self.label,
            payload_sha256=digest,
            status=status,
            reserved_usd=reserved,
            **fields,
        )

    def sending(
        self, job: Job, digest: str, *, held: float, estimate: float, body: str, from_hold: bool
    ) -> bool:
        """Written before the request leaves: a kill now leaves "sending", never a silent re-send.
        ``from_hold``: the row takes over the job's hold in a pool, in one transaction; False
        (nothing written) when the hold is gone."""
        taken = self.ledger.sending(
            self.run_id,
            job.id,
            model=self.plan.spec.id,
            backend=self.label,
            payload_sha256=digest,
            reserved_usd=held,
            from_hold=from_hold,
            estimated_usd=estimate,
            body_sha256=body,
        )
        if taken:
            self._line(job, digest, SENDING)
        return taken

    def waiting(
        self, job: Job, digest: str, *, held: float, pool: str | None, batch: str | None
    ) -> None:
        """A try answered without a bill: the row says ``waiting`` (not on the wire, no money),
        and the money is held in the pool again (``pool``/``batch``), until the next try."""
        self._record("waiting", self.run_id, job.id, held=held, pool=pool, batch=batch)
        self._line(job, digest, WAITING)

    def queued(self, job: Job, digest: str, request: Submitted, *, attempts: int) -> None:
        """The request id on disk the moment it returns: a kill now means "poll it"."""
        self._record(
            "update",
            self.run_id,
            job.id,
            attempts=attempts,
            status=SUBMITTED,
            request_id=request.request_id,
            poll_url=request.status_url,
            result_url=request.result_url,
        )
        self._line(job, digest, SUBMITTED, request=request)

    def taken_over(self, job: Job, digest: str, request: Submitted, *, price: float) -> None:
        """A request an earlier run left queued: its money moves to this run's row."""
        self._record(
            "take_over",
            self.run_id,
            job.id,
            model=self.plan.spec.id,
            backend=self.label,
            payload_sha256=digest,
            reserved_usd=price,
            request_id=request.request_id,
            poll_url=request.status_url,
            result_url=request.result_url,
            estimated_usd=price,
        )
        self._line(job, digest, SUBMITTED, request=request)

    def not_sent(self, job: Job, digest: str, error: str) -> None:
        self.row(job, digest, NOT_SENT, error=error)

    def update(self, job: Job, **fields: Any) -> None:
        self._record("update", self.run_id, job.id, **fields)

    def finish(self, job: Job, status: str, **fields: Any) -> None:
        self._record("finish_job", self.run_id, job.id, status, **fields)

    def settle(
        self, job: Job, status: str, *, cost_usd: float | None, **fields: Any
    ) -> float | None:
        """How the job's request ended, recorded once (see Ledger.settle_request). Journaled while
        the database does not answer, it counts its cost here; the replay decides again whether
        another row recorded the request first."""
        try:
            return self.ledger.settle_request(
                self.run_id, job.id, status, cost_usd=cost_usd, **fields
            )
        except LedgerUnreachable as down:
            self._journal("settle_request", down, self.run_id, job.id, status, cost_usd=cost_usd, **fields)  # fmt: skip
            return cost_usd

    def cost(self, job: Job) -> float:
        try:
            return self.ledger.cost(self.run_id, job.id)
        except LedgerUnreachable as down:
            self._down(down)
            return 0.0

    def _record(self, call: str, *args: Any, **kwargs: Any) -> None:
        """A write that records what happened: to the ledger, or, while its database does not
        answer, to the local journal the next run replays (engine.pending)."""
        try:
            getattr(self.ledger, call)(*args, **kwargs)
        except LedgerUnreachable as down:
            self._journal(call, down, *args, **kwargs)

    def _journal(self, call: str, down: LedgerUnreachable, *args: Any, **kwargs: Any) -> None:
        self.ledger.pending.add(call, *args, **{k: _plain(v) for k, v in kwargs.items()})
        self._down(down)

    def _down(self, down: LedgerUnreachable) -> None:
        if self.on_down is not None:
            self.on_down(down)

    def ended(self, job: Job, result: Result, *, digest: str | None) -> None:
        """How the job ended: its manifest line (pushed to disk on one thread, off the event
        loop), the run's results, and the listener."""
        entry = self._entry(job, digest, result.status)
        entry.update(
            texts=_texts_of(job.payload, self.plan),
            outputs=list(result.outputs),
            sha256=list(result.sha256),
            cost_usd=result.cost_usd,
            error=result.error,
            seconds=round(result.seconds, 3),
        )
        if result.urls:
            entry["urls"] = list(result.urls)  # paid, not fetched: where the files are
        self.store.record(entry, sync=False)
        self._syncs.submit(self.store.sync)
        self.results.append(result)
        self.on_result(result)
        if self.on_ended is not None:
            self.on_ended(job, result)

    # --- the manifest --------------------------------------------------------------------------

    def _line(
        self, job: Job, digest: str, status: str, *, request: Submitted | None = None
    ) -> None:
        entry = self._entry(job, digest, status)
        if request is not None:
            entry["request"] = {
                "id": request.request_id,
                "status_url": request.status_url,
                "result_url": request.result_url,
            }
        self.store.record(entry, sync=False)

    def _entry(self, job: Job, digest: str | None, status: str) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "job": job.id,
            "status": status,
            "backend": self.label,
            "payload_sha256": digest,
            "seed": job.payload.get("seed"),
            "values": job.values,
            "prompt": _prompt_of(job.payload),
        }


def _plain(value: Any) -> Any:
    """A value as JSON holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def _texts_of(payload: dict[str, Any], plan: Plan) -> dict[str, str]:
    """The free text a person reads (prompt, negative prompt, lighting…): every string parameter
    without a fixed list of values, as the recipe's templates rendered it."""
    params = plan.spec.params
    return {
        name: value
        for name, value in payload.items()
        if isinstance(value, str)
        and name in params
        and params[name].type == "string"
        and params[name].enum is None
    }


def _prompt_of(payload: dict[str, Any]) -> str | None:
    """The prompt a person reads on the report (workflows spell it "Prompt")."""
    for name in ("prompt", "Prompt"):
        if isinstance(payload.get(name), str):
            return str(payload[name])
    return None
