"""A worker's jobs: a submitted run's queue (engine.queue), claimed a group of twins at a time
under a lease, handed to the runner as if they were its plan's.

A group is claimed when a runner task asks for a job and none is waiting; its twins follow, so one
process (and one request) decides for them all. A group ends done when any of its jobs was decided
(rendered, reused, failed, unknown); when none was sent (the worker stopped, the pool ran out), it
goes back to the queue for another worker, or a later one, to take. A group a dead worker ended
before it could say so here is marked done, not rendered again.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import deque

from engine.errors import LedgerUnreachable
from engine.plan import Job
from engine.queue import Queue
from engine.results import Result

__all__ = ["QueueJobs", "worker_name"]

# How often a worker with nothing to claim looks whether the other workers have finished.
_LOOK_AGAIN_S = 2.0


def worker_name() -> str:
    """Who works: this machine and process, as `render status` lists workers."""
    return f"{socket.gethostname()}:{os.getpid()}"


class QueueJobs:
    """The jobs of the submitted run ``batch``, for one worker run."""

    def __init__(self, queue: Queue, batch: str, *, lease_s: float, worker: str) -> None:
        self.queue = queue
        self.batch: str | None = batch
        self.worker: str | None = worker
        self.lease_s = lease_s
        self._run_id = ""
        self._waiting: deque[Job] = deque()
        self._group_of: dict[str, str] = {}
        self._open: dict[str, set[str]] = {}
        self._decided: set[str] = set()
        self._empty = False
        self._lock = asyncio.Lock()

    def bind(self, run_id: str) -> None:
        self._run_id = run_id

    async def take(self, *, stopping: bool) -> Job | None:
        async with self._lock:
            if self._waiting:
                return self._waiting.popleft()
            if stopping or self._empty:
                return None
            return await self._claim()

    async def _claim(self) -> Job | None:
        assert self.batch is not None
        while True:
            claims = await asyncio.to_thread(
                self.queue.claim, self.batch, self._run_id, lease_s=self.lease_s
            )
            if not claims:
                expiry = await asyncio.to_thread(self.queue.next_expiry, self.batch, self._run_id)
                if expiry is None:
                    self._empty = True
                    return None
                # Other workers hold the rest: wait for them to end it (looked at every couple of
                # seconds), or for a lease of one that died to run out (its jobs are then ours).
                await asyncio.sleep(min(max(expiry - time.time(), 0.05), _LOOK_AGAIN_S))
                continue
            (claim,) = claims
            head = claim.jobs[0].id
            if claim.claims > 1 and await asyncio.to_thread(
                self.queue.ended_elsewhere, self.batch, head
            ):
                # A worker that died had ended it (its lease ran out before it said so here).
                await asyncio.to_thread(self.queue.done, self.batch, head, self._run_id)
                continue
            self._open[head] = {job.id for job in claim.jobs}
            for job in claim.jobs:
                self._group_of[job.id] = head
            self._waiting.extend(claim.jobs[1:])
            return claim.jobs[0]

    def ended(self, job: Job, result: Result) -> None:
        head = self._group_of.pop(job.id, None)
        if head is None or self.batch is None:
            return
        if result.status != "not-sent":
            self._decided.add(head)
        remaining = self._open[head]
        remaining.discard(job.id)
        if remaining:
            return
        del self._open[head]
        decided = head in self._decided
        self._decided.discard(head)
        try:
            if decided:
                self.queue.done(self.batch, head, self._run_id)
            else:
                self.queue.put_back(self.batch, head, self._run_id)
        except LedgerUnreachable:
            # The claim's lease runs out instead: a worker that takes the group again finds how
            # it ended in the ledger (once the journal is replayed) and does not render it twice.
            pass

    def renew(self, run_id: str) -> None:
        self.queue.renew(run_id, lease_s=self.lease_s)
