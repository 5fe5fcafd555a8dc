"""The runner: a plan's jobs through the client, concurrently, under a hard budget, resumably.

For each job: skip it if its identical payload already succeeded and its files are intact; resume
polling if an earlier run left it queued; otherwise reserve its price, write ``sending`` to the
ledger, and only then send it. Retries (429, 5xx, connections that failed before the request left)
happen here and only here, with tenacity, honouring ``Retry-After``. A 401/403/404/406 stops new
submissions while jobs in flight finish.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import tenacity
from pydantic import BaseModel, ConfigDict

from engine.budget import Budget
from engine.client import (
    Abort,
    Ambiguous,
    ApiProblem,
    Finished,
    JobFailed,
    Retryable,
    SegmindClient,
    Submitted,
)
from engine.ledger import (
    FAILED,
    SENDING,
    SKIPPED,
    SUBMITTED,
    SUCCEEDED,
    UNKNOWN,
    Ledger,
    new_run_id,
)
from engine.localimage import LocalImage
from engine.outputs import OutputStore, file_sha256
from engine.plan import Job, Plan
from engine.polling import LatencyModel
from engine.ratelimit import RateLimiter

__all__ = ["Result", "RunOptions", "RunSummary", "Runner", "payload_sha256"]

Status = Literal["succeeded", "skipped", "failed", "unknown", "not-sent"]


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

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)


@dataclass(frozen=True)
class RunOptions:
    """How to run: concurrency, rate, what to re-send, and the retry policy's pace."""

    backend: str
    # False for the preview: it costs nothing, whatever Segmind would charge.
    charge: bool = True
    concurrency: int = 8
    rpm: int | None = None
    force: bool = False
    retry_unknown: bool = False
    max_attempts: int = 8
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_poll_s: float = 3600.0
    replay: bool = False


def payload_sha256(job: Job, digests: dict[Path, str] | None = None) -> str:
    """The payload's identity: a local image counts by its bytes, not its path."""
    cache = digests if digests is not None else {}

    def canonical(value: Any) -> Any:
        if isinstance(value, LocalImage):
            if value.path not in cache:
                cache[value.path] = file_sha256(value.path) or "missing"
            return {"file-sha256": cache[value.path]}
        return value

    text = json.dumps(
        {k: canonical(v) for k, v in job.payload.items()}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


class _Stopped(Exception):
    """The run was aborted before this job's request could go out."""


@dataclass
class _State:
    stop: str | None = None
    budget_reached: bool = False
    results: list[Result] = field(default_factory=list)
    polls: int = 0


class Runner:
    """Runs one plan; ``on_result`` hears of each job as it ends (the progress bar)."""

    def __init__(
        self,
        plan: Plan,
        *,
        client: SegmindClient,
        ledger: Ledger,
        store: OutputStore,
        budget: Budget,
        options: RunOptions,
        on_result: Callable[[Result], None] = lambda _result: None,
    ) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.client = client
        self.ledger = ledger
        self.store = store
        self.budget = budget
        self.options = options
        self.on_result = on_result
        self.run_id = new_run_id()
        self.limiter = RateLimiter(options.rpm)
        self.latency = LatencyModel(self.spec.latency_s)
        self.state = _State()
        self._digests: dict[Path, str] = {}
        self._manifest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="manifest")
        self._twins: dict[str, asyncio.Future[Result]] = {}

    async def run(self) -> RunSummary:
        started = time.monotonic()
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.store.prepare()
        self.ledger.start_run(
            self.run_id,
            recipe=self.plan.recipe,
            recipe_path=self.plan.recipe_path,
            model=self.spec.id,
            backend=self.options.backend,
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
            self._manifest.shutdown(wait=True)
            status = "interrupted" if interrupted else "aborted" if self.state.stop else "done"
            self.ledger.finish_run(self.run_id, status)
            self._record_run(status, started)
            self.summary = RunSummary(
                run_id=self.run_id,
                out_dir=str(self.store.root),
                results=tuple(self.state.results),
                spent_usd=round(self.budget.spent_usd, 6),
                unknown_usd=round(self.budget.unknown_usd, 6),
                aborted=self.state.stop,
                budget_reached=self.state.budget_reached,
                interrupted=interrupted,
                seconds=time.monotonic() - started,
            )
        return self.summary

    def _record_run(self, status: str, started: float) -> None:
        """``runs/<run id>.json`` beside the manifest: what a report of this run needs to say."""
        order: dict[str, list[str]] = {axis: [] for axis in self.plan.axes}
        for job in self.plan.jobs:
            for axis, value in job.values.items():
                if axis in order and value not in order[axis]:
                    order[axis].append(value)
        self.store.write_run(
            self.run_id,
            {
                "id": self.run_id,
                "recipe": self.plan.recipe,
                "recipe_path": self.plan.recipe_path,
                "model": self.spec.id,
                "backend": self.options.backend,
                "status": status,
                "budget_usd": self.budget.cap_usd,
                "spent_usd": round(self.budget.spent_usd, 6),
                "unknown_usd": round(self.budget.unknown_usd, 6),
                "started": self._started_at,
                "seconds": round(time.monotonic() - started, 3),
                "axes": list(self.plan.axes),
                "values": order,
            },
        )

    async def _worker(self, jobs: Iterator[Job]) -> None:
        for job in jobs:
            if self.state.stop:
                self._finish(
                    self._ended(
                        job,
                        Result(job=job.id, status="not-sent", error=f"not sent: {self.state.stop}"),
                    )
                )
                continue
            self._finish(await self._job(job))

    def _finish(self, result: Result) -> None:
        self.state.results.append(result)
        self.on_result(result)

    async def _job(self, job: Job) -> Result:
        digest = payload_sha256(job, self._digests)
        twin = self._twins.get(digest)
        if twin is not None:
            return await self._copy_of(job, await asyncio.shield(twin))
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._twins[digest] = future
        try:
            result = await self._first(job, digest)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a twin that never asks must not warn
            raise
        except BaseException:
            future.cancel()
            raise
        future.set_result(result)
        return result

    async def _copy_of(self, job: Job, original: Result) -> Result:
        """A job whose payload another job of this run sent: same pictures, not paid twice."""
        if original.status not in {"succeeded", "skipped"}:
            result = original.model_copy(update={"job": job.id, "cost_usd": 0.0, "outputs": ()})
            if result.status in {"failed", "unknown"}:
                status = FAILED if result.status == "failed" else UNKNOWN
                digest = payload_sha256(job, self._digests)
                self._record(job, digest, status, 0.0)
                self.ledger.finish_job(
                    self.run_id,
                    job.id,
                    status,
                    error=f"same payload as another job of this run: {result.error}",
                )
            return self._ended(job, result)
        return await self._reuse(
            job, original.outputs, note="same payload as another job of this run"
        )

    async def _first(self, job: Job, digest: str) -> Result:
        record = self.ledger.latest(
            backend=self.options.backend, model=self.spec.id, payload_sha256=digest
        )
        price = (job.cost_usd or 0.0) if self.options.charge else 0.0
        if record is not None and not self.options.force:
            if record.status in {SUCCEEDED, SKIPPED} and await asyncio.to_thread(
                self.store.intact, record.output_paths, record.output_sha256
            ):
                return await self._reuse(
                    job, record.output_paths, note=f"done by run {record.run_id}"
                )
            if (
                record.status == SUBMITTED
                and record.request_id
                and record.poll_url
                and record.result_url
            ):
                self.budget.hold(price)
                self._record(
                    job,
                    digest,
                    SUBMITTED,
                    price,
                    request_id=record.request_id,
                    poll_url=record.poll_url,
                    result_url=record.result_url,
                )
                submitted = Submitted(record.request_id, record.poll_url, record.result_url)
                return await self._collect(job, digest, price, submitted, time.monotonic())
            if record.status in {SENDING, UNKNOWN} and not self.options.retry_unknown:
                error = f"sent by run {record.run_id} but never answered: it may have been billed; --retry-unknown sends it again"
                self.ledger.job(
                    self.run_id,
                    job.id,
                    model=self.spec.id,
                    backend=self.options.backend,
                    payload_sha256=digest,
                    status=UNKNOWN,
                    reserved_usd=0.0,
                )
                self.ledger.finish_job(self.run_id, job.id, UNKNOWN, error=error)
                return self._ended(job, Result(job=job.id, status="unknown", error=error))
        if not self.budget.reserve(price):
            self.state.budget_reached = True
            error = f"not sent: the budget (${self.budget.cap_usd:.2f}) is reached"
            return self._ended(job, Result(job=job.id, status="not-sent", error=error))
        return await self._send(job, digest, price)

    def _record(self, job: Job, digest: str, status: str, price: float, **fields: Any) -> None:
        self.ledger.job(
            self.run_id,
            job.id,
            model=self.spec.id,
            backend=self.options.backend,
            payload_sha256=digest,
            status=status,
            reserved_usd=price,
            **fields,
        )

    async def _send(self, job: Job, digest: str, price: float) -> Result:
        started = time.monotonic()
        # Written before the request leaves: a kill now leaves "sending", never a silent re-send.
        self._record(job, digest, SENDING, price)
        attempts = 0
        sent = False
        try:
            body = await self.client.body(self.spec, job.payload)
            async for attempt in self._retrying():
                with attempt:
                    attempts += 1
                    await self.limiter.wait()
                    if self.state.stop:
                        # An abort came while this job waited to (re)try: it must not go out now.
                        raise _Stopped(self.state.stop)
                    sent = True
                    answer = await self.client.send(self.spec, body)
        except _Stopped as stopped:
            self.budget.release(price)
            self.ledger.finish_job(self.run_id, job.id, FAILED, error=f"not sent: {stopped}")
            return self._ended(
                job, Result(job=job.id, status="not-sent", error=f"not sent: {stopped}")
            )
        except (JobFailed, Abort, Retryable) as exc:
            self.budget.release(price)
            return self._failed(job, exc, attempts, started)
        except Ambiguous as exc:
            return self._unknown(job, price, exc, started)
        except asyncio.CancelledError:
            if sent:
                self.budget.mark_unknown(price)
            else:
                self.budget.release(price)
            raise
        if isinstance(answer, Finished):
            self.ledger.update(self.run_id, job.id, attempts=attempts)
            return await self._succeeded(job, price, answer, started, polls=0)
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
        return await self._collect(job, digest, price, answer, started)

    async def _collect(
        self, job: Job, digest: str, price: float, submitted: Submitted, started: float
    ) -> Result:
        """Poll a queued job until it ends, at the moments the latency model expects it to."""
        del digest
        polls = 0
        # The job's clock starts when Segmind accepted it, not when it waited for a connection.
        accepted = time.monotonic()
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
                polled = await self._patiently(
                    functools.partial(self.client.status, self.spec, submitted)
                )
                if polled.state == "COMPLETED":
                    finished = await self._patiently(
                        functools.partial(self.client.result, self.spec, submitted, polled)
                    )
                    self.latency.observe(finished.inference_s or (time.monotonic() - accepted))
                    return await self._succeeded(job, price, finished, started, polls=polls)
        except JobFailed as exc:
            self.budget.release(price)
            return self._failed(job, exc, 1, started, polls=polls)
        except asyncio.CancelledError:
            # Interrupted while queued: Segmind will still bill it; the next run collects it.
            self.budget.mark_unknown(price)
            raise
        except (Ambiguous, Retryable, Abort) as exc:
            return self._unknown(job, price, exc, started, keep_submitted=True, polls=polls)

    async def _patiently(self, call: Callable[[], Any]) -> Any:
        async for attempt in self._retrying():
            with attempt:
                return await call()
        raise AssertionError("unreachable")

    def _retrying(self) -> tenacity.AsyncRetrying:
        options = self.options
        # Exponential with jitter, spelt in tenacity's long-stable terms (`initial=` is deprecated).
        backoff = tenacity.wait_exponential(
            multiplier=options.backoff_s, max=options.max_backoff_s
        ) + tenacity.wait_random(0, options.backoff_s)

        def wait(state: tenacity.RetryCallState) -> float:
            problem = state.outcome.exception() if state.outcome else None
            if isinstance(problem, Retryable) and problem.retry_after is not None:
                return min(problem.retry_after, 120.0)
            return float(backoff(state))

        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(Retryable),
            stop=tenacity.stop_after_attempt(options.max_attempts),
            wait=wait,
            reraise=True,
        )

    async def _succeeded(
        self, job: Job, price: float, finished: Finished, started: float, *, polls: int
    ) -> Result:
        paths = self.store.paths_for(job.output, [output.extension for output in finished.outputs])
        # Files are written (and synced) off the event loop; the ledger says "succeeded" only after.
        hashes = [
            await asyncio.to_thread(self.store.write, path, output.data)
            for path, output in zip(paths, finished.outputs, strict=True)
        ]
        cost = finished.charged_usd if finished.charged_usd is not None else price
        self.budget.spend(price, charged=cost)
        seconds = time.monotonic() - started
        self.ledger.finish_job(
            self.run_id, job.id, SUCCEEDED,
            cost_usd=cost, credits_seen=finished.credits, output_paths=paths, output_sha256=hashes,
            seconds=round(seconds, 3), request_id=finished.request_id,
        )  # fmt: skip
        self.state.polls += polls
        return self._ended(
            job,
            Result(
                job=job.id,
                status="succeeded",
                outputs=tuple(paths),
                cost_usd=cost,
                seconds=seconds,
                polls=polls,
            ),
        )

    async def _reuse(self, job: Job, paths: tuple[str, ...], *, note: str) -> Result:
        """Skip a job whose pictures exist; copy them under this job's own path if it differs."""
        targets = self.store.paths_for(job.output, [Path(p).suffix or ".bin" for p in paths])
        hashes = [
            await asyncio.to_thread(self.store.place, source, target)
            for source, target in zip(paths, targets, strict=True)
        ]
        self.ledger.job(
            self.run_id,
            job.id,
            model=self.spec.id,
            backend=self.options.backend,
            payload_sha256=payload_sha256(job, self._digests),
            status=SKIPPED,
            reserved_usd=0.0,
        )
        self.ledger.finish_job(
            self.run_id,
            job.id,
            SKIPPED,
            cost_usd=0.0,
            output_paths=targets,
            output_sha256=hashes,
            error=note,
        )
        return self._ended(
            job, Result(job=job.id, status="skipped", outputs=tuple(targets), error=None)
        )

    def _failed(
        self, job: Job, problem: ApiProblem, attempts: int, started: float, *, polls: int = 0
    ) -> Result:
        self._note_abort(problem)
        self.ledger.finish_job(
            self.run_id,
            job.id,
            FAILED,
            error=problem.message,
            attempts=attempts,
            seconds=round(time.monotonic() - started, 3),
        )
        return self._ended(
            job,
            Result(
                job=job.id,
                status="failed",
                error=problem.message,
                seconds=time.monotonic() - started,
                polls=polls,
            ),
        )

    def _unknown(
        self,
        job: Job,
        price: float,
        problem: ApiProblem,
        started: float,
        *,
        keep_submitted: bool = False,
        polls: int = 0,
    ) -> Result:
        self.budget.mark_unknown(price)
        self._note_abort(problem)
        # A queued job whose polling broke off stays "submitted": the next run polls it again.
        status = SUBMITTED if keep_submitted and problem.status != 404 else UNKNOWN
        self.ledger.update(self.run_id, job.id, status=status, error=problem.message)
        return self._ended(
            job,
            Result(
                job=job.id,
                status="unknown",
                error=problem.message,
                seconds=time.monotonic() - started,
                polls=polls,
            ),
        )

    def _note_abort(self, problem: ApiProblem) -> None:
        """A 401/403/404/406 stops new submissions for the rest of the run (the first one says why)."""
        if isinstance(problem, Abort) and self.state.stop is None:
            self.state.stop = f"Segmind refused the account ({problem.message})"

    def _ended(self, job: Job, result: Result) -> Result:
        # One writer thread keeps the manifest's lines in order without blocking the event loop.
        self._manifest.submit(
            self.store.record,
            {
                "run": self.run_id,
                "job": job.id,
                "status": result.status,
                "outputs": list(result.outputs),
                "cost_usd": result.cost_usd,
                "seed": job.payload.get("seed"),
                "values": job.values,
                "prompt": _prompt_of(job.payload),
                "error": result.error,
                "seconds": round(result.seconds, 3),
            },
        )
        return result


def _prompt_of(payload: dict[str, Any]) -> str | None:
    """The prompt a person reads on the report (workflows spell it "Prompt")."""
    for name in ("prompt", "Prompt"):
        if isinstance(payload.get(name), str):
            return str(payload[name])
    return None
