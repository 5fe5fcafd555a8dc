"""The runner: a plan's jobs through the client, concurrently, under a hard budget, resumably.

For each job, the triage (engine.triage) says what it needs: reuse a picture already paid for,
collect a request an earlier run left queued, fetch the outputs of a paid request, settle an unknown
one through request history, or send it. To send, the runner reserves its price, uploads its local
images to Segmind Storage (once each), writes ``sending`` to the ledger and the manifest, and only
then sends it, at the pace the account allows (engine.ratelimit). Retries (429, 5xx, connections
that failed before the request left, downloads) happen here and only here, with tenacity; a 429
slows the whole run and never fails a job. A 401/403/404 or a 406 about credits stops new
submissions while jobs in flight finish.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import tenacity
from pydantic import BaseModel, ConfigDict

from engine.budget import Budget
from engine.client import MAX_RATE_WAIT_S, Finished, Output, SegmindClient, Submitted
from engine.errors import Abort, Ambiguous, ApiProblem, JobFailed, Retryable
from engine.ledger import (
    FAILED,
    HELD,
    NOT_SENT,
    SENDING,
    SKIPPED,
    SUBMITTED,
    SUCCEEDED,
    UNFETCHED,
    UNKNOWN,
    Ledger,
    new_run_id,
)
from engine.outputs import OutputStore
from engine.plan import Job, Plan
from engine.polling import LatencyModel
from engine.ratelimit import Pace
from engine.settle import body_sha256, model_slug, settle_row
from engine.triage import Decision, Triage, payload_sha256
from engine.uploads import Uploads, to_upload

__all__ = ["Result", "RunOptions", "RunSummary", "Runner", "payload_sha256"]

Status = Literal["succeeded", "skipped", "failed", "unknown", "unfetched", "not-sent"]


class Result(BaseModel):
    """How one job ended."""

    model_config = ConfigDict(frozen=True)

    job: str
    status: Status
    outputs: tuple[str, ...] = ()
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
class RunOptions:
    """How to run: concurrency, rate, what to re-send, and the retry policy's pace."""

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
    replay: bool = False


class _Stopped(Exception):
    """The run was aborted before this job's request could go out."""


@dataclass
class _Hold:
    """The money one job holds in a budget, and the estimate it was held for."""

    budget: Budget
    held: float
    estimate: float

    def spend(self, charged: float | None) -> None:
        self.budget.spend(self.held, charged=charged, estimate=self.estimate)

    def release(self) -> None:
        self.budget.release(self.held)

    def unknown(self) -> None:
        self.budget.mark_unknown(self.held)


@dataclass
class _State:
    stop: str | None = None
    budget_reached: bool = False
    results: list[Result] = field(default_factory=list)
    polls: int = 0


class Runner:
    """Runs one plan; ``on_result`` hears of each job as it ends (the progress bar).

    ``label`` names the backend in the ledger (``segmind``, ``segmind@host:port``, ``preview``,
    ``replay``); ``charge`` is False where nothing is billed (the preview, a replay); ``storage``
    names the host uploads are remembered for (None: within this run only, as a cassette needs).
    """

    def __init__(
        self,
        plan: Plan,
        *,
        client: SegmindClient,
        ledger: Ledger,
        store: OutputStore,
        budget: Budget,
        options: RunOptions,
        label: str = "segmind",
        charge: bool = True,
        storage: str | None = None,
        triage: Triage | None = None,
        on_result: Callable[[Result], None] = lambda _result: None,
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
        self.label = label
        self.charge = charge
        self.triage = triage or Triage(
            ledger,
            label,
            store,
            force=options.force,
            retry_unknown=options.retry_unknown,
            model=self.spec.id,
            storage=storage,
        )
        self.on_result = on_result
        self.run_id = new_run_id()
        self.pace = Pace(options.rpm, window_s=options.rate_window_s)
        self.uploads = Uploads(client, ledger, host=storage, retrying=self._with_retries)
        self.latency = LatencyModel(self.spec.latency_s)
        self.state = _State()
        self._syncs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="manifest")
        self._twins: dict[str, asyncio.Future[Result]] = {}
        self._charged: list[tuple[float, float]] = []
        # Request history's listings, read once a run however many unknown jobs they settle.
        self._history: dict[Any, Any] = {}

    async def run(self) -> RunSummary:
        started = time.monotonic()
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.store.prepare()
        self.ledger.start_run(
            self.run_id,
            recipe=self.plan.recipe,
            recipe_path=str(Path(self.plan.recipe_path).absolute()),
            model=self.spec.id,
            backend=self.label,
            out_dir=str(self.store.root),
            budget_usd=self.budget.cap_usd,
        )
        jobs = iter(self.plan.jobs)
        interrupted = False
        try:
            await asyncio.gather(
                *(self._worker(jobs) for _ in range(max(1, self.options.concurrency)))
            )
        except asyncio.CancelledError:
            interrupted = True
            raise
        finally:
            self._syncs.shutdown(wait=True)
            status = "interrupted" if interrupted else "aborted" if self.state.stop else "done"
            self.ledger.finish_run(
                self.run_id,
                status,
                rate_limited=self.pace.limited_count,
                learned_rpm=self.pace.learned,
            )
            self._record_run(status, started)
            self.summary = RunSummary(
                run_id=self.run_id,
                out_dir=str(self.store.root),
                results=tuple(self.state.results),
                spent_usd=round(self.budget.spent_usd + self.carried.spent_usd, 6),
                unknown_usd=round(self.budget.unknown_usd + self.carried.unknown_usd, 6),
                aborted=self.state.stop,
                budget_reached=self.state.budget_reached,
                interrupted=interrupted,
                seconds=time.monotonic() - started,
                rate_limited=self.pace.limited_count,
                learned_rpm=self.pace.learned,
                uploads=self.uploads.uploaded,
                charged_usd=round(sum(charged for charged, _ in self._charged), 6),
                charged_estimate_usd=round(sum(estimate for _, estimate in self._charged), 6),
                charged_jobs=len(self._charged),
            )
        return self.summary

    def _record_run(self, status: str, started: float) -> None:
        """``runs/<run id>.json`` beside the manifest: what a report of this run needs to say."""
        self.store.write_run(
            self.run_id,
            {
                "id": self.run_id,
                "recipe": self.plan.recipe,
                "recipe_path": self.plan.recipe_path,
                "model": self.spec.id,
                "backend": self.label,
                "status": status,
                "budget_usd": self.budget.cap_usd,
                "spent_usd": round(self.budget.spent_usd + self.carried.spent_usd, 6),
                "unknown_usd": round(self.budget.unknown_usd + self.carried.unknown_usd, 6),
                "started": self._started_at,
                "seconds": round(time.monotonic() - started, 3),
                "axes": list(self.plan.axes),
                "values": {axis: list(values) for axis, values in self.plan.value_order.items()},
                "jobs": [job.id for job in self.plan.jobs],
                "recipe_jobs": list(self.plan.recipe_jobs),
            },
        )

    async def _worker(self, jobs: Iterator[Job]) -> None:
        for job in jobs:
            if self.state.stop:
                error = f"not sent: {self.state.stop}"
                self._finish(self._ended(job, Result(job=job.id, status="not-sent", error=error)))
                continue
            self._finish(await self._job(job))

    def _finish(self, result: Result) -> None:
        self.state.results.append(result)
        self.on_result(result)

    async def _job(self, job: Job) -> Result:
        digest = payload_sha256(job, self.triage.digests)
        twin = self._twins.get(digest)
        if twin is not None:
            return await self._copy_of(job, digest, await asyncio.shield(twin))
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
        result = original.model_copy(update={"job": job.id, "cost_usd": 0.0, "outputs": ()})
        if result.status in {"failed", "unknown", "unfetched"}:
            # An unknown or unfetched twin is decided by the original's row (the same payload).
            status = FAILED if result.status == "failed" else HELD
            self._record(
                job,
                digest,
                status,
                0.0,
                error=f"same payload as another job of this run: {result.error}",
            )
        return self._ended(job, result, digest=digest)

    async def _decided(self, job: Job, digest: str) -> Result:
        # Checking earlier outputs hashes files: off the event loop.
        decision = await asyncio.to_thread(self.triage.decide, job, digest)
        if decision.action == "unknown" and decision.record is not None and self.charge:
            decision = await self._settle(job, digest, decision)
        if decision.action == "reuse":
            return await self._reuse(
                job, digest, decision.sources, note=f"done by run {decision.run_id}"
            )
        if decision.action == "collect":
            return await self._collect(job, digest, decision)
        if decision.action == "fetch":
            return await self._fetch(job, digest, decision)
        if decision.action == "unknown":
            error = (
                f"sent by run {decision.run_id} but never answered: it may have been billed; "
                "--retry-unknown sends it again"
            )
            self._record(job, digest, HELD, 0.0, error=error)
            return self._ended(
                job, Result(job=job.id, status="unknown", error=error), digest=digest
            )
        price = self._price(job)
        held = self.budget.reserve(price)
        if held is None:
            self.state.budget_reached = True
            error = f"not sent: the budget (${self.budget.cap_usd:.2f}) is reached"
            return self._ended(
                job, Result(job=job.id, status="not-sent", error=error), digest=digest
            )
        return await self._send(job, digest, _Hold(self.budget, held, price))

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
            retrying=self._with_retries,
            pages=self._history,
        )
        # What the ledger now says decides again: fetch what succeeded, send what failed.
        return (
            await asyncio.to_thread(self.triage.decide, job, digest)
            if settled.status != "unknown"
            else decision
        )

    def _price(self, job: Job) -> float:
        return (job.cost_usd or 0.0) if self.charge else 0.0

    def _record(self, job: Job, digest: str, status: str, reserved: float, **fields: Any) -> None:
        self.ledger.job(
            self.run_id,
            job.id,
            model=self.spec.id,
            backend=self.label,
            payload_sha256=digest,
            status=status,
            reserved_usd=reserved,
            **fields,
        )

    async def _collect(self, job: Job, digest: str, decision: Decision) -> Result:
        """A request an earlier run left queued: poll it; its money moves to this run's row."""
        submitted = decision.request
        assert submitted is not None
        price = self._price(job)
        self.carried.hold(price)
        self.ledger.take_over(
            self.run_id,
            job.id,
            model=self.spec.id,
            backend=self.label,
            payload_sha256=digest,
            reserved_usd=price,
            request_id=submitted.request_id,
            poll_url=submitted.status_url,
            result_url=submitted.result_url,
            estimated_usd=price,
        )
        self._note(job, digest, SUBMITTED, request=submitted)
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
                self._record(
                    job,
                    digest,
                    UNFETCHED,
                    0.0,
                    cost_usd=0.0,
                    output_urls=list(decision.urls),
                    error=error,
                )
            return self._ended(
                job, Result(job=job.id, status="unfetched", error=error), digest=digest
            )
        paths, hashes = await self._written(job, outputs)
        fields = {
            "output_paths": paths,
            "output_sha256": hashes,
            "seconds": round(time.monotonic() - started, 3),
        }
        if own:
            self.ledger.finish_job(self.run_id, job.id, SUCCEEDED, **fields)
            cost = self.ledger.cost(self.run_id, job.id)
        else:
            # The same request: its id, and no money (the row that recorded the charge keeps it).
            note = f"outputs of the request run {decision.run_id} paid for"
            request = decision.record.request_id if decision.record is not None else None
            self._record(
                job, digest, SUCCEEDED, 0.0, cost_usd=0.0, error=note, request_id=request, **fields
            )
            cost = 0.0
        result = Result(
            job=job.id,
            status="succeeded",
            outputs=tuple(paths),
            cost_usd=cost,
            seconds=time.monotonic() - started,
        )
        return self._ended(job, result, digest=digest, hashes=hashes)

    async def _send(self, job: Job, digest: str, hold: _Hold) -> Result:
        started = time.monotonic()
        try:
            # Images are read (and uploaded, once) now, before anything says "sending": one that
            # vanished or changed since the plan fails this job alone, and nothing is sent.
            urls = await self.uploads.urls(to_upload(self.spec, job.payload))
            body = await self.client.body(self.spec, job.payload, urls=urls)
        except Abort as problem:
            self._note_abort(problem)
            return self._not_sent(job, digest, hold, f"not sent: {self.state.stop}")
        except ApiProblem as problem:
            hold.release()
            self._record(job, digest, FAILED, 0.0, error=problem.message)
            return self._ended(
                job, Result(job=job.id, status="failed", error=problem.message), digest=digest
            )
        # Written before the request leaves: a kill now leaves "sending", never a silent re-send.
        self._record(
            job,
            digest,
            SENDING,
            hold.held,
            estimated_usd=hold.estimate,
            body_sha256=body_sha256(body),
        )
        self._note(job, digest, SENDING)
        attempts = 0
        on_the_wire = False
        try:
            async for attempt in self._retrying(submission=True):
                with attempt:
                    attempts += 1
                    await self.pace.wait()
                    if self.state.stop:
                        # An abort came while this job waited to (re)try: it must not go out now.
                        raise _Stopped(self.state.stop)
                    on_the_wire = True
                    answer = await self.client.send(self.spec, body)
                    on_the_wire = False
                    self.pace.accepted()
        except _Stopped as stopped:
            return self._not_sent(job, digest, hold, f"not sent: {stopped}")
        except (JobFailed, Abort, Retryable) as problem:
            hold.release()
            return self._ended_badly(job, digest, problem, "failed", started, attempts=attempts)
        except Ambiguous as problem:
            hold.unknown()
            return self._ended_badly(job, digest, problem, "unknown", started, attempts=attempts)
        except asyncio.CancelledError:
            if on_the_wire:
                hold.unknown()
            else:
                self._not_sent(job, digest, hold, "not sent: interrupted")
            raise
        if isinstance(answer, Finished):
            self.ledger.update(self.run_id, job.id, attempts=attempts)
            return await self._succeeded(job, digest, hold, answer, started, polls=0)
        # The request id is on disk the moment it returns: a kill now means "poll it", not "pay again".
        self.ledger.update(
            self.run_id,
            job.id,
            attempts=attempts,
            status=SUBMITTED,
            request_id=answer.request_id,
            poll_url=answer.status_url,
            result_url=answer.result_url,
        )
        self._note(job, digest, SUBMITTED, request=answer)
        return await self._poll_until_done(job, digest, hold, answer, started)

    def _not_sent(self, job: Job, digest: str, hold: _Hold, error: str) -> Result:
        hold.release()
        self._record(job, digest, NOT_SENT, 0.0, error=error)
        return self._ended(job, Result(job=job.id, status="not-sent", error=error), digest=digest)

    async def _poll_until_done(
        self, job: Job, digest: str, hold: _Hold, submitted: Submitted, started: float
    ) -> Result:
        """Poll a queued job until it ends, at the moments the latency model expects it to."""
        polls = 0
        # The job's clock starts when Segmind accepted it, not when it waited for a connection.
        accepted = time.monotonic()
        strange_since: float | None = None
        try:
            while True:
                elapsed = time.monotonic() - accepted
                if elapsed > self.options.max_poll_s:
                    raise Ambiguous(
                        f"still running after {elapsed:.0f} s; request {submitted.request_id} is kept for the next run"
                    )
                # A replay's answers are on disk: nothing to wait for.
                delay = 0.0 if self.options.replay else self.latency.next_delay(elapsed, polls)
                if delay > 0 and await self.latency.sleep(delay):
                    continue  # another job taught the model something: plan again
                polls += 1
                polled = await self._with_retries(
                    functools.partial(self.client.status, self.spec, submitted)
                )
                if polled.state == "COMPLETED":
                    finished = await self._with_retries(
                        functools.partial(self.client.result, self.spec, submitted, polled)
                    )
                    self.latency.observe(finished.inference_s or (time.monotonic() - accepted))
                    return await self._succeeded(job, digest, hold, finished, started, polls=polls)
                if polled.state not in {
                    "QUEUED",
                    "PROCESSING",
                    "IN_PROGRESS",
                    "PENDING",
                    "STARTING",
                }:
                    strange_since = strange_since if strange_since is not None else time.monotonic()
                    if time.monotonic() - strange_since > self.options.max_unknown_status_s:
                        raise Ambiguous(
                            f"Segmind answered status '{polled.state}', which render does not know, "
                            f"for {self.options.max_unknown_status_s:.0f} s: it may have been billed; "
                            f"request {submitted.request_id} is kept for request history to settle"
                        )
        except JobFailed as problem:
            hold.release()
            return self._ended_badly(
                job, digest, problem, "failed", started, polls=polls, request=submitted
            )
        except asyncio.CancelledError:
            # Interrupted while queued: Segmind will still bill it; the next run collects it.
            hold.unknown()
            raise
        except (Ambiguous, Retryable, Abort) as problem:
            ended = self._ended_badly(
                job, digest, problem, "unknown", started, polls=polls, request=submitted
            )
            if problem.status == 404 and self.charge:
                # Segmind keeps a queued request an hour: past that, request history knows it.
                return await self._settled_now(job, digest, hold, ended)
            hold.unknown()
            return ended

    async def _settled_now(self, job: Job, digest: str, hold: _Hold, unknown: Result) -> Result:
        """A request this run just lost track of, settled through request history at once."""
        record = self.ledger.record(self.run_id, job.id)
        decision = await self._settle(job, digest, Decision("unknown", self.run_id, record=record))
        if decision.action == "fetch":
            hold.spend(self.ledger.cost(self.run_id, job.id))
            return await self._fetch(job, digest, decision)
        if decision.action == "send":  # it failed, unbilled: the next run sends it again
            hold.release()
        else:
            hold.unknown()
        return unknown

    async def _with_retries(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()`` under the run's retry policy (a GET, or an upload: asking again is safe)."""
        return await self._retrying()(call)

    def _retrying(self, *, submission: bool = False) -> tenacity.AsyncRetrying:
        """Exponential backoff with jitter for 5xx and lost connections, a limited number of times;
        a 429 waits for the account's reset (the whole run's pace learns from it) and does not
        count, up to ``max_rate_wait_s``. ``submission``: the pace already spaces these."""
        options = self.options
        # Exponential with jitter, spelt in tenacity's long-stable terms (`initial=` is deprecated).
        backoff = tenacity.wait_exponential(
            multiplier=options.backoff_s, max=options.max_backoff_s
        ) + tenacity.wait_random(0, options.backoff_s)
        limited = {"count": 0, "waited": 0.0}

        def wait(state: tenacity.RetryCallState) -> float:
            problem = state.outcome.exception() if state.outcome else None
            if isinstance(problem, Retryable) and problem.rate_limited:
                paced = self.pace.limited(problem.retry_after)
                limited["count"] += 1
                pause = problem.retry_after or float(backoff(state))
                limited["waited"] += pause
                # A submission the pace now holds waits on the pace; anything else waits here.
                return 0.0 if submission and paced else pause
            if isinstance(problem, Retryable) and problem.retry_after is not None:
                return min(problem.retry_after, MAX_RATE_WAIT_S)
            return float(backoff(state))

        def stop(state: tenacity.RetryCallState) -> bool:
            others = state.attempt_number - limited["count"]
            return others >= options.max_attempts or limited["waited"] > options.max_rate_wait_s

        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(Retryable),
            stop=stop,
            wait=wait,
            reraise=True,
        )

    async def _downloaded(self, urls: Sequence[str]) -> tuple[list[Output], list[str]]:
        """The files at ``urls``, each tried under the retry policy; those that never came."""
        outputs: list[Output] = []
        missing: list[str] = []
        for url in urls:
            try:
                outputs.append(
                    await self._with_retries(functools.partial(self.client.download, url))
                )
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
        self, job: Job, digest: str, hold: _Hold, finished: Finished, started: float, *, polls: int
    ) -> Result:
        fetched, missing = await self._downloaded(finished.urls)
        outputs = [*finished.outputs, *fetched]
        paths, hashes = await self._written(job, outputs)
        charged = finished.charged_usd if self.charge else None
        seconds = time.monotonic() - started
        status = UNFETCHED if missing else SUCCEEDED
        # Recorded once per request: 0 here when another process has recorded it already.
        cost = self.ledger.settle_request(
            self.run_id, job.id, status,
            cost_usd=charged if charged is not None else hold.estimate,
            charged_usd=charged, charge_source=finished.charge_source if charged is not None else None,
            credits_seen=finished.credits, output_paths=paths, output_sha256=hashes,
            output_urls=list(finished.urls), seconds=round(seconds, 3), request_id=finished.request_id,
            error=_unfetched(missing) if missing else None,
        ) or 0.0  # fmt: skip
        hold.spend(cost)
        if charged is not None and cost:
            self._charged.append((charged, hold.estimate))
        self.state.polls += polls
        result = Result(
            job=job.id,
            status="unfetched" if missing else "succeeded",
            outputs=tuple(paths),
            cost_usd=cost,
            error=_unfetched(missing) if missing else None,
            seconds=seconds,
            polls=polls,
            urls=finished.urls if missing else (),
        )
        return self._ended(job, result, digest=digest, hashes=hashes)

    async def _reuse(
        self, job: Job, digest: str, sources: tuple[Path, ...], *, note: str
    ) -> Result:
        """Skip a job whose pictures exist; copy them under this job's own path if it differs."""
        targets = self.store.paths_for(job.output, [p.suffix or ".bin" for p in sources])
        hashes = [
            await asyncio.to_thread(self.store.copy_in, source, target)
            for source, target in zip(sources, targets, strict=True)
        ]
        self._record(
            job,
            digest,
            SKIPPED,
            0.0,
            cost_usd=0.0,
            output_paths=targets,
            output_sha256=hashes,
            error=note,
        )
        result = Result(job=job.id, status="skipped", outputs=tuple(targets), error=None)
        return self._ended(job, result, digest=digest, hashes=hashes)

    def _ended_badly(
        self,
        job: Job,
        digest: str,
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
            self.ledger.settle_request(
                self.run_id, job.id, FAILED, cost_usd=None, request_id=request.request_id, **fields
            )
        elif status == "failed":
            self.ledger.finish_job(self.run_id, job.id, FAILED, **fields)
        else:
            # A queued job whose polling broke off stays "submitted": the next run polls it again
            # (not once Segmind has forgotten it: a 404, which request history settles).
            keep = request is not None and problem.status != 404
            self.ledger.update(self.run_id, job.id, status=SUBMITTED if keep else UNKNOWN, **fields)
        result = Result(
            job=job.id, status=status, error=problem.message, seconds=seconds, polls=polls
        )
        return self._ended(job, result, digest=digest)

    def _note_abort(self, problem: ApiProblem) -> None:
        """A 401/403/404 or a 406 about credits stops new submissions for the rest of the run (the
        first one says why)."""
        if isinstance(problem, Abort) and self.state.stop is None:
            self.state.stop = f"Segmind refused the account ({problem.message})"

    def _note(
        self, job: Job, digest: str, status: str, *, request: Submitted | None = None
    ) -> None:
        """A manifest line for a request about to leave or queued: written (not synced) before
        going on, so that a kill leaves it for a run with another ledger to find."""
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

    def _ended(
        self,
        job: Job,
        result: Result,
        *,
        digest: str | None = None,
        hashes: list[str] | None = None,
    ) -> Result:
        entry = self._entry(job, digest, result.status)
        entry.update(
            outputs=list(result.outputs),
            sha256=hashes or [],
            cost_usd=result.cost_usd,
            error=result.error,
            seconds=round(result.seconds, 3),
        )
        if result.urls:
            entry["urls"] = list(result.urls)
        self.store.record(entry, sync=False)
        # The line is written; pushing it to disk waits on one thread, off the event loop.
        self._syncs.submit(self.store.sync)
        return result


def _unfetched(urls: Sequence[str]) -> str:
    return (
        f"paid, output not fetched: {len(urls)} file(s) could not be downloaded "
        f"({', '.join(urls[:2])}{', …' if len(urls) > 2 else ''}); the next run fetches them "
        "without paying again (Segmind keeps outputs about 7 days)"
    )


def _prompt_of(payload: dict[str, Any]) -> str | None:
    """The prompt a person reads on the report (workflows spell it "Prompt")."""
    for name in ("prompt", "Prompt"):
        if isinstance(payload.get(name), str):
            return str(payload[name])
    return None
