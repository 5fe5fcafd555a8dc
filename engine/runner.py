"""The runner: a plan's jobs through the client, concurrently, under a hard budget, resumably.

For each job, the triage (engine.triage) says what it needs: reuse a picture already paid for,
collect a request an earlier run left queued, fetch the outputs of a paid request, settle an unknown
one through request history, or send it. To send, the runner reserves its price, uploads its local
images to Segmind Storage (once each), has the journal write ``sending``, and only then sends it,
at the pace the account allows (engine.ratelimit), under the run's one retry policy
(engine.retrying). A 401/403/404 or a 406 about credits stops new submissions while jobs in flight
finish. Every state change is written by the journal (engine.journal); this module decides them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from engine.backends import Backend
from engine.budget import Budget
from engine.client import Finished, Output, SegmindClient, Submitted
from engine.errors import Abort, Ambiguous, ApiProblem, JobFailed, LedgerUnreachable, Retryable
from engine.journal import Journal
from engine.ledger import FAILED, HELD, SKIPPED, SUBMITTED, SUCCEEDED, UNFETCHED, UNKNOWN, Ledger
from engine.outputs import OutputStore
from engine.plan import Job, Plan
from engine.polling import LatencyModel
from engine.pools import Pools, stale_before
from engine.ratelimit import Pace, SharedPace, account_id
from engine.results import Result, RunOptions, RunSummary
from engine.retrying import RetryPolicy
from engine.settle import body_sha256, model_slug, settle_row
from engine.triage import Decision, Triage, payload_sha256
from engine.uploads import Uploads, to_upload

__all__ = ["JobSource", "PlanJobs", "Runner", "payload_sha256"]

# How often a job a pool refused while other processes hold money in it asks again.
_HOLD_AGAIN_S = 2.0
# States a queued request passes through on its way to COMPLETED (or FAILED, which the client raises).
_WAITING = frozenset({"QUEUED", "PROCESSING", "IN_PROGRESS", "PENDING", "STARTING"})


class _Stopped(Exception):
    """The run was aborted before this job's request could go out."""


class JobSource(Protocol):
    """Where a run's jobs come from: its plan, or a submitted run's queue (engine.worker)."""

    # The submitted run this run works on (its budget caps every worker of it), and who works.
    batch: str | None
    worker: str | None

    def bind(self, run_id: str) -> None:
        """The run that takes the jobs, before the first is taken."""

    async def take(self, *, stopping: bool) -> Job | None:
        """The next job; None when there is none (or, ``stopping``, none should be started)."""

    def ended(self, job: Job, result: Result) -> None:
        """How a job taken ended."""

    def renew(self, run_id: str) -> None:
        """The run is alive: its heartbeat (and its claims' leases)."""


class PlanJobs:
    """A plan's jobs, in order (a stopped run takes them all, to say each was not sent)."""

    batch: str | None = None
    worker: str | None = None

    def __init__(self, jobs: Sequence[Job], ledger: Ledger) -> None:
        self._jobs: Iterator[Job] = iter(jobs)
        self._ledger = ledger

    def bind(self, run_id: str) -> None:
        del run_id

    async def take(self, *, stopping: bool) -> Job | None:
        del stopping
        return next(self._jobs, None)

    def ended(self, job: Job, result: Result) -> None:
        del job, result

    def renew(self, run_id: str) -> None:
        self._ledger.heartbeat(run_id)


@dataclass
class _Hold:
    """The money one job holds in a budget, the estimate it was held for, and, until its
    ``sending`` row takes it over, the hold in a pool (or a submitted run's budget)."""

    budget: Budget
    held: float
    estimate: float
    pools: Pools | None = None
    key: tuple[str, str] | None = None

    def spend(self, charged: float | None) -> None:
        self.budget.spend(self.held, charged=charged, estimate=self.estimate)

    def release(self) -> None:
        self.budget.release(self.held)
        if self.pools is not None and self.key is not None:
            self.pools.drop(*self.key)
            self.key = None

    def unknown(self) -> None:
        self.budget.mark_unknown(self.held)


@dataclass
class _Wire:
    """One submission's tries, and whether the last one left (a cancel then may have been billed)."""

    attempts: int = 0
    on_the_wire: bool = False


@dataclass
class _Polling:
    """One queued request's polls since Segmind accepted it, and since when its state is strange."""

    accepted: float
    polls: int = 0
    strange_since: float | None = None


class Runner:
    """Runs one plan on ``backend``, whose label, charging and replaying it takes."""

    def __init__(
        self,
        plan: Plan,
        *,
        client: SegmindClient,
        ledger: Ledger,
        store: OutputStore,
        budget: Budget,
        options: RunOptions,
        backend: Backend,
        source: JobSource | None = None,
    ) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.client = client
        self.ledger = ledger
        self.store = store
        self.budget = budget
        # What requests earlier runs sent cost, as this run collects them: counted, never capped
        # (that money was committed under the earlier run's cap, and collecting it is free).
        self.carried = Budget(None)
        self.options = options
        self.backend = backend
        self.source: JobSource = source or PlanJobs(plan.jobs, ledger)
        self.journal = Journal(
            plan,
            ledger=ledger,
            store=store,
            label=backend.label,
            on_result=options.on_result,
            on_ended=self.source.ended,
            on_down=self._ledger_down,
        )
        # A pool, or a submitted run's budget, is shared with other processes: held in the ledger.
        shared = plan.budget_pool is not None or self.source.batch is not None
        self.pools = Pools(ledger) if shared and backend.charges else None
        self._beats = shared
        self.triage = Triage.for_run(
            ledger, store, backend=backend, options=options, model=self.spec.id
        )
        self.pace = (
            # The account's one pace, shared through the ledger with every process using its key.
            SharedPace(
                ledger,
                account_id(backend.api_key, backend.base_url),
                options.rpm,
                window_s=options.rate_window_s,
            )
            if backend.charges
            else Pace(options.rpm, window_s=options.rate_window_s)
        )
        self.retry = RetryPolicy(options, self.pace)
        self.uploads = Uploads(client, ledger, host=self.triage.storage, retrying=self.retry.call)
        self.latency = LatencyModel(self.spec.latency_s)
        self.stop: str | None = None
        self.budget_reached = False
        # A pool (or a submitted run's budget) refused a job: a queue's worker takes no more.
        self._pool_spent = False
        self._budget_reason: str | None = None
        self._twins: dict[str, asyncio.Future[Result]] = {}
        self._charged: list[tuple[float, float]] = []
        # Request history's listings, read once a run however many unknown jobs they settle.
        self._history: dict[Any, Any] = {}

    @property
    def run_id(self) -> str:
        return self.journal.run_id

    async def run(self) -> RunSummary:
        started = time.monotonic()
        self.journal.begin(
            budget_usd=self.budget.cap_usd,
            pool=self.plan.budget_pool,
            batch=self.source.batch,
            worker=self.source.worker,
        )
        self.source.bind(self.run_id)
        interrupted = False
        beating = asyncio.create_task(self._heartbeat()) if self._beats else None
        try:
            await asyncio.gather(*(self._worker() for _ in range(max(1, self.options.concurrency))))
        except asyncio.CancelledError:
            interrupted = True
            raise
        finally:
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            self.summary = self._summary(interrupted, seconds=time.monotonic() - started)
            status = "interrupted" if interrupted else "aborted" if self.stop else "done"
            self.journal.end(status, self.summary)
        return self.summary

    def _summary(self, interrupted: bool, *, seconds: float) -> RunSummary:
        return RunSummary(
            run_id=self.run_id,
            out_dir=str(self.store.root),
            results=tuple(self.journal.results),
            spent_usd=round(self.budget.spent_usd + self.carried.spent_usd, 6),
            unknown_usd=round(self.budget.unknown_usd + self.carried.unknown_usd, 6),
            aborted=self.stop,
            budget_reached=self.budget_reached,
            budget_reason=self._budget_reason,
            interrupted=interrupted,
            seconds=seconds,
            rate_limited=self.pace.limited_count,
            learned_rpm=self.pace.learned,
            uploads=self.uploads.uploaded,
            charged_usd=round(sum(charged for charged, _ in self._charged), 6),
            charged_estimate_usd=round(sum(estimate for _, estimate in self._charged), 6),
            charged_jobs=len(self._charged),
        )

    async def _heartbeat(self) -> None:
        """Say the run is alive, a few times a lease: its holds and claims stay its own."""
        while True:
            await asyncio.sleep(self.options.lease_s / 3)
            try:
                await asyncio.to_thread(self.source.renew, self.run_id)
            except LedgerUnreachable as down:
                self._ledger_down(down)  # the next beat tries again

    def _ledger_down(self, down: LedgerUnreachable) -> None:
        """The ledger's database stopped answering: no new request goes out (none could be
        recorded as sent first); what is in flight finishes, journaled locally if it must be."""
        if self.stop is None:
            self.stop = (
                f"{down}; nothing more is sent, and what was in flight is recorded when it "
                "answers again, or by the next run"
            )

    async def _taken(self) -> Job | None:
        try:
            return await self.source.take(stopping=bool(self.stop) or self._pool_spent)
        except LedgerUnreachable as down:
            self._ledger_down(down)
            return None

    async def _worker(self) -> None:
        while (job := await self._taken()) is not None:
            if self.stop:
                stopped = Result(job=job.id, status="not-sent", error=f"not sent: {self.stop}")
                self.journal.ended(job, stopped, digest=None)
            else:
                await self._job(job)

    async def _job(self, job: Job) -> None:
        digest = payload_sha256(job, self.triage.digests)
        twin = self._twins.get(digest)
        try:
            if twin is not None:
                result = await self._copy_of(job, digest, await asyncio.shield(twin))
            else:
                result = await self._first_of_its_payload(job, digest)
        except LedgerUnreachable as down:
            # Raised only before a request leaves (after, writes wait in the local journal).
            self._ledger_down(down)
            result = Result(job=job.id, status="not-sent", error=f"not sent: {self.stop}")
        self.journal.ended(job, result, digest=digest)

    async def _first_of_its_payload(self, job: Job, digest: str) -> Result:
        """The job that decides for every job of this run with the same payload (its twins)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._twins[digest] = future
        try:
            result = await self._decided(job, digest)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a twin that never asks must not warn
            raise
        except BaseException:
            future.cancel()
            raise
        future.set_result(result)
        return result

    async def _copy_of(self, job: Job, digest: str, original: Result) -> Result:
        """A job whose payload another job of this run sent: same pictures, not paid twice."""
        if original.status in {"succeeded", "skipped"}:
            sources = tuple(self.store.root / path for path in original.outputs)
            return await self._reuse(
                job, digest, sources, note="same payload as another job of this run"
            )
        result = original.model_copy(
            update={"job": job.id, "cost_usd": 0.0, "outputs": (), "sha256": ()}
        )
        if result.status in {"failed", "unknown", "unfetched"}:
            # An unknown or unfetched twin is decided by the original's row (the same payload).
            status = FAILED if result.status == "failed" else HELD
            error = f"same payload as another job of this run: {result.error}"
            self.journal.row(job, digest, status, error=error)
        return result

    async def _decided(self, job: Job, digest: str) -> Result:
        # Checking earlier outputs hashes files: off the event loop.
        decision = await asyncio.to_thread(self.triage.decide, job, digest)
        if decision.action == "unknown" and decision.record is not None and self.backend.charges:
            decision = await self._settle(job, digest, decision)
        if decision.action == "reuse":
            note = f"done by run {decision.run_id}"
            return await self._reuse(job, digest, decision.sources, note=note)
        if decision.action == "collect":
            return await self._collect(job, digest, decision)
        if decision.action == "fetch":
            return await self._fetch(job, digest, decision)
        if decision.action == "unknown":
            error = (
                f"sent by run {decision.run_id} but never answered: it may have been billed; "
                "--retry-unknown sends it again"
            )
            self.journal.row(job, digest, HELD, error=error)
            return Result(job=job.id, status="unknown", error=error)
        return await self._within_budget(job, digest)

    async def _settle(self, job: Job, digest: str, decision: Decision) -> Decision:
        """An earlier request nobody knows the fate of: ask request history before deciding."""
        assert decision.record is not None
        row = self.ledger.row(decision.record.run_id, decision.record.job_id)
        if row is None:
            return decision
        settled = await settle_row(
            row,
            client=self.client,
            ledger=self.ledger,
            model=model_slug(self.spec.endpoint),
            retrying=self.retry.call,
            pages=self._history,
        )
        # What the ledger now says decides again: fetch what succeeded, send what failed.
        if settled.status == "unknown":
            return decision
        return await asyncio.to_thread(self.triage.decide, job, digest)

    def _price(self, job: Job) -> float:
        return (job.cost_usd or 0.0) if self.backend.charges else 0.0

    async def _within_budget(self, job: Job, digest: str) -> Result:
        price = self._price(job)
        held = self.budget.reserve(price)
        if held is None:
            self.budget_reached = True
            error = f"not sent: the budget (${self.budget.cap_usd:.2f}) is reached"
            return Result(job=job.id, status="not-sent", error=error)
        hold = _Hold(self.budget, held, price)
        if self.pools is not None and held > 0:
            refused = await self._pool_hold(self.pools, job, held)
            if refused is not None:
                self.budget.release(held)
                self.budget_reached = self._pool_spent = True
                left = (
                    "the jobs left stay queued (raise it, then `render work` again)"
                    if self.source.batch is not None
                    else "the jobs left were not sent"
                )
                self._budget_reason = self._budget_reason or f"{refused}: {left}"
                return Result(job=job.id, status="not-sent", error=f"not sent: {refused}")
            hold.pools, hold.key = self.pools, (self.run_id, job.id)
        return await self._send(job, digest, hold)

    async def _collect(self, job: Job, digest: str, decision: Decision) -> Result:
        """A request an earlier run left queued: poll it; its money moves to this run's row."""
        submitted = decision.request
        assert submitted is not None
        price = self._price(job)
        self.carried.hold(price)
        self.journal.taken_over(job, digest, submitted, price=price)
        hold = _Hold(self.carried, price, price)
        return await self._poll_until_done(job, digest, hold, submitted, time.monotonic())

    async def _fetch(self, job: Job, digest: str, decision: Decision) -> Result:
        """A request paid for whose files were not downloaded: download them now. The money stays
        on the row that recorded the charge."""
        started = time.monotonic()
        own = decision.record is not None and decision.record.run_id == self.run_id
        outputs, missing = await self._downloaded(decision.urls)
        if missing:
            error = _unfetched(missing)
            if not own:
                urls = list(decision.urls)
                self.journal.row(job, digest, UNFETCHED, cost_usd=0.0, output_urls=urls, error=error)  # fmt: skip
            return Result(job=job.id, status="unfetched", error=error, urls=decision.urls)
        paths, hashes = await self._written(job, outputs)
        seconds = time.monotonic() - started
        fields: dict[str, Any] = {
            "output_paths": paths,
            "output_sha256": hashes,
            "seconds": round(seconds, 3),
        }
        if own:
            self.journal.finish(job, SUCCEEDED, **fields)
            cost = self.journal.cost(job)
        else:
            # The same request: its id, and no money (the row that recorded the charge keeps it).
            note = f"outputs of the request run {decision.run_id} paid for"
            request = decision.record.request_id if decision.record is not None else None
            self.journal.row(job, digest, SUCCEEDED, cost_usd=0.0, error=note, request_id=request, **fields)  # fmt: skip
            cost = 0.0
        return Result(
            job=job.id,
            status="succeeded",
            outputs=tuple(paths),
            sha256=tuple(hashes),
            cost_usd=cost,
            seconds=seconds,
        )

    async def _pool_hold(self, pools: Pools, job: Job, held: float) -> str | None:
        """Hold the job's price in its pool (or submitted run's budget); None once held, else why
        not. While other processes hold money there, it waits for them: what a live one holds is
        soon spent (and refuses this job for good), what a dead one held comes back when its lease
        runs out, and the job may go after all."""
        pool, batch = self.plan.budget_pool, self.source.batch
        waited = 0.0
        while True:
            refused = await asyncio.to_thread(
                pools.hold,
                self.run_id,
                job.id,
                held,
                pool=pool,
                batch=batch,
                stale_before=stale_before(self.options.lease_s),
            )
            others = refused is not None and await asyncio.to_thread(
                pools.others_hold, self.run_id, pool=pool, batch=batch
            )
            if not others or self.stop or waited > 2 * self.options.lease_s:
                return refused
            pause = min(_HOLD_AGAIN_S, self.options.lease_s / 3)
            await asyncio.sleep(pause)
            waited += pause

    async def _send(self, job: Job, digest: str, hold: _Hold) -> Result:
        started = time.monotonic()
        body = await self._body(job, digest, hold)
        if isinstance(body, Result):
            return body
        wire = _Wire()
        try:
            answer = await self._submit(job, digest, hold, body, wire)
        except _Stopped as stopped:
            return self._not_sent(job, digest, hold, f"not sent: {stopped}")
        except (JobFailed, Abort, Retryable) as problem:
            hold.release()
            return self._ended_badly(job, problem, "failed", started, attempts=wire.attempts)
        except Ambiguous as problem:
            hold.unknown()
            return self._ended_badly(job, problem, "unknown", started, attempts=wire.attempts)
        except asyncio.CancelledError:
            if wire.on_the_wire:
                hold.unknown()
            else:
                interrupted = self._not_sent(job, digest, hold, "not sent: interrupted")
                self.journal.ended(job, interrupted, digest=digest)
            raise
        if isinstance(answer, Finished):
            self.journal.update(job, attempts=wire.attempts)
            return await self._succeeded(job, hold, answer, started, polls=0)
        self.journal.queued(job, digest, answer, attempts=wire.attempts)
        return await self._poll_until_done(job, digest, hold, answer, started)

    async def _body(self, job: Job, digest: str, hold: _Hold) -> bytes | Result:
        """The request body, its local images uploaded (once each). Read now, before anything
        says "sending": an image that vanished or changed since the plan fails this job alone."""
        try:
            urls = await self.uploads.urls(to_upload(self.spec, job.payload))
            return await self.client.body(self.spec, job.payload, urls=urls)
        except Abort as problem:
            self._note_abort(problem)
            return self._not_sent(job, digest, hold, f"not sent: {self.stop}")
        except ApiProblem as problem:
            hold.release()
            self.journal.row(job, digest, FAILED, error=problem.message)
            return Result(job=job.id, status="failed", error=problem.message)

    async def _submit(
        self, job: Job, digest: str, hold: _Hold, body: bytes, wire: _Wire
    ) -> Finished | Submitted:
        """The body sent at the account's pace, tried again under the retry policy. The job's row
        says ``sending`` only while a try may be on the wire: it is written just before each try
        leaves (after the wait for its turn), and a try answered without a bill (a 429, a 5xx, a
        refused connection) turns it back to ``waiting``, its money held as before it was sent.
        So a process killed while its jobs wait leaves none of them unknown."""
        sent = body_sha256(body)
        async for attempt in self.retry.attempts(submission=True):
            with attempt:
                wire.attempts += 1
                await self.pace.wait()
                if self.stop:
                    # An abort came while this job waited to (re)try: it must not go out now.
                    raise _Stopped(self.stop)
                self._going_out(job, digest, hold, sent)
                wire.on_the_wire = True
                try:
                    answer = await self.client.send(self.spec, body)
                except Retryable:
                    wire.on_the_wire = False
                    self._came_back(job, digest, hold)
                    raise
                wire.on_the_wire = False
                self.pace.accepted()
        return answer

    def _going_out(self, job: Job, digest: str, hold: _Hold, sent: str) -> None:
        """The ``sending`` row, written before the try leaves (taking over the job's hold in a
        pool, if it has one)."""
        taken = self.journal.sending(
            job,
            digest,
            held=hold.held,
            estimate=hold.estimate,
            body=sent,
            from_hold=hold.key is not None,
        )
        hold.key = None
        if not taken:
            # This process was taken for dead (no heartbeat for a lease) and its hold let go:
            # it may not send, now or later.
            self.stop = self.stop or "this process's hold in the pool was let go (taken for dead)"
            raise _Stopped(self.stop)

    def _came_back(self, job: Job, digest: str, hold: _Hold) -> None:
        """A try answered without a bill: nothing of this job is on the wire until the next."""
        pooled = hold.pools is not None
        self.journal.waiting(
            job,
            digest,
            held=hold.held,
            pool=self.plan.budget_pool if pooled else None,
            batch=self.source.batch if pooled else None,
        )
        hold.key = (self.run_id, job.id) if pooled else None

    def _not_sent(self, job: Job, digest: str, hold: _Hold, error: str) -> Result:
        hold.release()
        self.journal.not_sent(job, digest, error)
        return Result(job=job.id, status="not-sent", error=error)

    async def _poll_until_done(
        self, job: Job, digest: str, hold: _Hold, submitted: Submitted, started: float
    ) -> Result:
        """Poll a queued job until it ends, and download what it made."""
        # The job's clock starts when Segmind accepted it, not when it waited for a connection.
        polling = _Polling(accepted=time.monotonic())
        try:
            finished = await self._finished(submitted, polling)
            return await self._succeeded(job, hold, finished, started, polls=polling.polls)
        except JobFailed as problem:
            hold.release()
            polls = polling.polls
            return self._ended_badly(job, problem, "failed", started, polls=polls, request=submitted)  # fmt: skip
        except asyncio.CancelledError:
            # Interrupted while queued: Segmind will still bill it; the next run collects it.
            hold.unknown()
            raise
        except (Ambiguous, Retryable, Abort) as problem:
            polls = polling.polls
            lost = self._ended_badly(job, problem, "unknown", started, polls=polls, request=submitted)  # fmt: skip
            if problem.status == 404 and self.backend.charges:
                # Segmind keeps a queued request an hour: past that, request history knows it.
                return await self._settled_now(job, digest, hold, lost)
            hold.unknown()
            return lost

    async def _finished(self, submitted: Submitted, polling: _Polling) -> Finished:
        """Polls at the moments the latency model expects the job to be done, until it is."""
        while True:
            elapsed = time.monotonic() - polling.accepted
            if elapsed > self.options.max_poll_s:
                raise Ambiguous(
                    f"still running after {elapsed:.0f} s; request {submitted.request_id} is kept for the next run"
                )
            # A replay's answers are on disk: nothing to wait for.
            delay = 0.0 if self.backend.replays else self.latency.next_delay(elapsed, polling.polls)
            if delay > 0 and await self.latency.sleep(delay):
                continue  # another job taught the model something: plan again
            polling.polls += 1
            polled = await self.retry.call(
                functools.partial(self.client.status, self.spec, submitted)
            )
            if polled.state == "COMPLETED":
                finished: Finished = await self.retry.call(
                    functools.partial(self.client.result, self.spec, submitted, polled)
                )
                self.latency.observe(finished.inference_s or (time.monotonic() - polling.accepted))
                return finished
            if polled.state not in _WAITING:
                self._check_strange(polled.state, submitted, polling)

    def _check_strange(self, state: str, submitted: Submitted, polling: _Polling) -> None:
        """A state render does not know is polled a while (it may be new and harmless), then left
        for request history to settle."""
        now = time.monotonic()
        polling.strange_since = polling.strange_since if polling.strange_since is not None else now
        if now - polling.strange_since > self.options.max_unknown_status_s:
            raise Ambiguous(
                f"Segmind answered status '{state}', which render does not know, "
                f"for {self.options.max_unknown_status_s:.0f} s: it may have been billed; "
                f"request {submitted.request_id} is kept for request history to settle"
            )

    async def _settled_now(self, job: Job, digest: str, hold: _Hold, unknown: Result) -> Result:
        """A request this run just lost track of, settled through request history at once."""
        record = self.ledger.record(self.run_id, job.id)
        decision = await self._settle(job, digest, Decision("unknown", self.run_id, record=record))
        if decision.action == "fetch":
            hold.spend(self.journal.cost(job))
            return await self._fetch(job, digest, decision)
        if decision.action == "send":  # it failed, unbilled: the next run sends it again
            hold.release()
        else:
            hold.unknown()
        return unknown

    async def _downloaded(self, urls: Sequence[str]) -> tuple[list[Output], list[str]]:
        """The files at ``urls``, each tried under the retry policy; those that never came."""
        outputs: list[Output] = []
        missing: list[str] = []
        for url in urls:
            try:
                outputs.append(await self.retry.call(functools.partial(self.client.download, url)))
            except ApiProblem:
                missing.append(url)
        return outputs, missing

    async def _written(self, job: Job, outputs: Sequence[Output]) -> tuple[list[str], list[str]]:
        """The files on disk under the job's output paths, and their hashes."""
        paths = self.store.paths_for(job.output, [output.extension for output in outputs])
        # Files are written (and synced) off the event loop; the ledger says "succeeded" only after.
        hashes = [
            await asyncio.to_thread(self.store.write, path, output.data)
            for path, output in zip(paths, outputs, strict=True)
        ]
        return paths, hashes

    async def _succeeded(
        self, job: Job, hold: _Hold, finished: Finished, started: float, *, polls: int
    ) -> Result:
        """A request that ended well: its files written, its charge recorded once."""
        fetched, missing = await self._downloaded(finished.urls)
        paths, hashes = await self._written(job, [*finished.outputs, *fetched])
        charged = finished.charged_usd if self.backend.charges else None
        seconds = time.monotonic() - started
        error = _unfetched(missing) if missing else None
        # Recorded once per request: 0 here when another process has recorded it already.
        cost = self.journal.settle(
            job, UNFETCHED if missing else SUCCEEDED,
            cost_usd=charged if charged is not None else hold.estimate,
            charged_usd=charged, charge_source=finished.charge_source if charged is not None else None,
            credits_seen=finished.credits, output_paths=paths, output_sha256=hashes,
            output_urls=list(finished.urls), seconds=round(seconds, 3), request_id=finished.request_id,
            error=error,
        ) or 0.0  # fmt: skip
        hold.spend(cost)
        if charged is not None and cost:
            self._charged.append((charged, hold.estimate))
        return Result(
            job=job.id,
            status="unfetched" if missing else "succeeded",
            outputs=tuple(paths),
            sha256=tuple(hashes),
            cost_usd=cost,
            error=error,
            seconds=seconds,
            polls=polls,
            urls=finished.urls if missing else (),
        )

    async def _reuse(
        self, job: Job, digest: str, sources: tuple[Path, ...], *, note: str
    ) -> Result:
        """Skip a job whose pictures exist; copy them under this job's own path if it differs."""
        targets = self.store.paths_for(job.output, [p.suffix or ".bin" for p in sources])
        hashes = [
            await asyncio.to_thread(self.store.copy_in, source, target)
            for source, target in zip(sources, targets, strict=True)
        ]
        self.journal.row(
            job,
            digest,
            SKIPPED,
            cost_usd=0.0,
            output_paths=targets,
            output_sha256=hashes,
            error=note,
        )
        return Result(job=job.id, status="skipped", outputs=tuple(targets), sha256=tuple(hashes))

    def _ended_badly(
        self,
        job: Job,
        problem: ApiProblem,
        status: Literal["failed", "unknown"],
        started: float,
        *,
        attempts: int | None = None,
        polls: int = 0,
        request: Submitted | None = None,
    ) -> Result:
        """A job that failed (not billed) or whose outcome nobody knows (it may have been)."""
        self._note_abort(problem)
        seconds = time.monotonic() - started
        fields: dict[str, Any] = {"error": problem.message, "seconds": round(seconds, 3)}
        if attempts is not None:
            fields["attempts"] = attempts
        if status == "failed" and request is not None:
            self.journal.settle(job, FAILED, cost_usd=None, request_id=request.request_id, **fields)
        elif status == "failed":
            self.journal.finish(job, FAILED, **fields)
        else:
            # A queued job whose polling broke off stays "submitted": the next run polls it again
            # (not once Segmind has forgotten it: a 404, which request history settles).
            keep = request is not None and problem.status != 404
            self.journal.update(job, status=SUBMITTED if keep else UNKNOWN, **fields)
        return Result(
            job=job.id, status=status, error=problem.message, seconds=seconds, polls=polls
        )

    def _note_abort(self, problem: ApiProblem) -> None:
        """A 401/403/404 or a 406 about credits stops new submissions for the rest of the run (the
        first one says why)."""
        if isinstance(problem, Abort) and self.stop is None:
            self.stop = f"Segmind refused the account ({problem.message})"


def _unfetched(urls: Sequence[str]) -> str:
    return (
        f"paid, output not fetched: {len(urls)} file(s) could not be downloaded "
        f"({', '.join(urls[:2])}{', …' if len(urls) > 2 else ''}); the next run fetches them "
        "without paying again (Segmind keeps outputs about 7 days)"
    )
