"""What a simulator remembers: the balance and every charge, every request it accepted (its history),
the files those produced, uploaded assets, and each key's recent submissions.

The injectable ``clock`` decides everything that changes by itself: a queued request's state
(QUEUED, PROCESSING, then COMPLETED or FAILED at ``done_at``), its bill (:meth:`SimState.settle`
charges every request whose time has come, polled or not, as Segmind bills a finished job whether or
not its result is fetched), when it is forgotten (its retention runs from its submission), when its
files can be fetched and when they go, and each key's rate window. Wall-clock times (history rows,
the 429's reset moment) are ``epoch`` plus the clock, so they move with it.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.simulator.ratewindow import SlidingWindows
from engine.specs import Spec

__all__ = ["Charge", "Job", "SimState", "StoredFile"]


@dataclass(frozen=True)
class Charge:
    """One billed request."""

    request_id: str
    spec_id: str
    amount_usd: float
    payload_sha256: str
    at: float


@dataclass(frozen=True)
class Submission:
    """What one accepted request asks for, as the simulator records and bills it."""

    spec: Spec
    slug: str
    payload: dict[str, Any]
    key: str
    body_sha256: str
    price: float
    outputs: int
    # A "lost" fault: its output files answer 404/403 for a while after it completes.
    lost: bool


@dataclass
class Job:
    """One accepted submission (v1, v2 or workflow): what was asked, by which key, and how it ends.

    A queued job's state follows from the clock; a sync one's from its call (``done_at`` is None
    while the call runs).
    """

    id: str
    key: str
    spec: Spec
    slug: str
    payload: dict[str, Any]
    body_sha256: str
    price_usd: float
    created: float
    queued: bool
    done_at: float | None
    queued_until: float
    # How many images it makes (the samples asked for): a history list has a row for each.
    outputs: int = 1
    failed: bool = False
    lost: bool = False
    error: str | None = None
    settled: bool = False
    # Its output files' names under /files/, once rendered (a queued job's on first need).
    files: list[str] = field(default_factory=list)


@dataclass
class StoredFile:
    """An output image; before ``available_at`` (a ``lost`` request's) it answers ``denied``."""

    data: bytes
    media_type: str
    available_at: float
    denied: int
    expires_at: float


class SimState:
    """The mutable side of a simulator; every method takes the lock, so threads may share it."""

    def __init__(
        self,
        *,
        balance_usd: float,
        retention_s: float,
        file_retention_s: float,
        lost_for_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.balance_usd = balance_usd
        self.retention_s = retention_s
        self.file_retention_s = file_retention_s
        self.lost_for_s = lost_for_s
        self.charges: list[Charge] = []
        # Every accepted submission, in order, never forgotten: the request history.
        self.jobs: dict[str, Job] = {}
        # The queued ones still within their retention: what status and result URLs answer.
        self.requests: dict[str, Job] = {}
        self.files: dict[str, StoredFile] = {}
        self.assets: dict[str, tuple[bytes, str]] = {}
        self.attempts: dict[str, int] = {}
        # 429s answered (the rate limit's and injected ones) and upload requests served.
        self.rate_limited = 0
        self.upload_requests = 0
        self._clock = clock
        self.epoch = time.time() - clock()
        self._windows = SlidingWindows()
        self._pending: list[tuple[float, str]] = []
        # Retained requests in submission order: retention is the same for all, so the oldest
        # expires first.
        self._retained: deque[Job] = deque()
        self._file_expiry: list[tuple[float, str]] = []
        self._reserved = 0.0
        self._lock = threading.RLock()

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        """A new clock reads as the wall time now; set ``epoch`` afterwards to pin another."""
        self._clock = clock
        self.epoch = time.time() - clock()

    def utc(self, at: float) -> datetime:
        """The wall-clock moment of clock reading ``at``."""
        return datetime.fromtimestamp(self.epoch + at, UTC)

    def attempt(self, path: str, body: bytes) -> int:
        """How many times this exact request has been seen before (0 the first time)."""
        key = hashlib.sha256(path.encode() + b"\0" + body).hexdigest()
        with self._lock:
            count = self.attempts.get(key, 0)
            self.attempts[key] = count + 1
            return count

    def take_slot(self, key: str, *, limit: int, window_s: float) -> float | None:
        """Count a submission of ``key`` against its rate limit (None), or, over the limit, count a
        429 and return the clock time a slot frees."""
        with self._lock:
            reset = self._windows.take(key, self.clock(), limit=limit, window_s=window_s)
            if reset is not None:
                self.rate_limited += 1
            return reset

    def count_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def settle(self) -> None:
        """Charge every queued request that has completed by now; forget the expired."""
        now = self.clock()
        with self._lock:
            while self._pending and self._pending[0][0] <= now:
                _, request_id = heapq.heappop(self._pending)
                job = self.jobs[request_id]
                job.settled = True
                if not job.failed:
                    assert job.done_at is not None
                    self._reserved -= job.price_usd
                    self._charge(job, job.done_at)
            while self._retained and now >= self._retained[0].created + self.retention_s:
                self.requests.pop(self._retained.popleft().id, None)
            while self._file_expiry and self._file_expiry[0][0] <= now:
                self.files.pop(heapq.heappop(self._file_expiry)[1], None)

    def reserved_usd(self) -> float:
        """What queued, unfinished requests will cost when they complete."""
        with self._lock:
            return self._reserved

    def can_pay(self, price: float) -> bool:
        self.settle()
        with self._lock:
            return self.balance_usd - self.reserved_usd() >= price - 1e-9

    def hold(self, price: float) -> None:
        """Set aside the price of a sync request while it runs, so concurrent ones cannot overdraw."""
        with self._lock:
            self._reserved += price

    def release(self, price: float) -> None:
        with self._lock:
            self._reserved -= price

    def _charge(self, job: Job, at: float) -> None:
        self.balance_usd -= job.price_usd
        self.charges.append(Charge(job.id, job.spec.id, job.price_usd, job.body_sha256, at))

    def _new_job(self, asked: Submission, *, queued: bool, latency: float, failed: bool) -> Job:
        now = self.clock()
        return Job(
            id=uuid.uuid4().hex,
            key=asked.key,
            spec=asked.spec,
            slug=asked.slug,
            payload=asked.payload,
            body_sha256=asked.body_sha256,
            price_usd=asked.price,
            created=now,
            queued=queued,
            done_at=now + latency if queued else None,
            queued_until=now + latency * 0.1 if queued else now,
            outputs=asked.outputs,
            failed=failed,
            lost=asked.lost,
        )

    def begin_sync(self, asked: Submission) -> Job:
        """Record a sync request as it starts running (PENDING in the history until it answers)."""
        job = self._new_job(asked, queued=False, latency=0.0, failed=False)
        with self._lock:
            self.jobs[job.id] = job
        return job

    def finish_sync(self, job: Job) -> None:
        """Bill a sync request that has just finished (its price was held)."""
        with self._lock:
            job.done_at = self.clock()
            job.settled = True
            self._reserved -= job.price_usd
            self._charge(job, job.done_at)

    def abandon_sync(self, job: Job, error: str) -> None:
        """A sync request that never finished: FAILED, and not billed."""
        with self._lock:
            job.done_at = self.clock()
            job.settled = True
            job.failed = True
            job.error = error

    def enqueue(self, asked: Submission, *, latency: float, failed: bool) -> Job:
        job = self._new_job(asked, queued=True, latency=latency, failed=failed)
        if failed:
            job.error = "Generation failed (simulated): the content was blocked"
        assert job.done_at is not None
        with self._lock:
            self.jobs[job.id] = job
            self.requests[job.id] = job
            self._retained.append(job)
            heapq.heappush(self._pending, (job.done_at, job.id))
            if not failed:
                self._reserved += asked.price
        return job

    def lookup(self, request_id: str) -> Job | None:
        """A queued request still within its retention."""
        self.settle()
        with self._lock:
            return self.requests.get(request_id)

    def status_of(self, job: Job) -> str:
        """QUEUED, PROCESSING, COMPLETED or FAILED."""
        if not job.queued:
            if job.done_at is None:
                return "PROCESSING"
            return "FAILED" if job.failed else "COMPLETED"
        assert job.done_at is not None
        now = self.clock()
        if now < job.queued_until:
            return "QUEUED"
        if now < job.done_at:
            return "PROCESSING"
        return "FAILED" if job.failed else "COMPLETED"

    def keep_file(self, job: Job, name: str, data: bytes, media_type: str, *, denied: int) -> None:
        """Store an output of ``job``; a lost job's is missing until ``available_at``."""
        with self._lock:
            expires_at = job.created + self.file_retention_s
            available_at = float("-inf")
            if job.lost and job.done_at is not None:
                available_at = job.done_at + self.lost_for_s
            self.files[name] = StoredFile(data, media_type, available_at, denied, expires_at)
            heapq.heappush(self._file_expiry, (expires_at, name))
            job.files.append(name)

    def file(self, name: str) -> StoredFile | None:
        self.settle()
        with self._lock:
            return self.files.get(name)

    def keep_asset(self, name: str, data: bytes, media_type: str) -> None:
        with self._lock:
            self.assets.setdefault(name, (data, media_type))

    def count_upload(self) -> None:
        with self._lock:
            self.upload_requests += 1
