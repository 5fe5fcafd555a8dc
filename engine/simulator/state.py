"""What a simulator remembers: the balance, every charge, queued requests and the files they produced.

Time decides a queued request's state (QUEUED, PROCESSING, then COMPLETED or FAILED at ``done_at``);
:meth:`SimState.settle` charges every request whose time has come, in order, whether or not anyone
polls it, as Segmind bills a finished job whether or not its result is fetched.
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
from typing import Any

from engine.specs import Spec

__all__ = ["Charge", "QueuedRequest", "SimState"]


@dataclass(frozen=True)
class Charge:
    """One billed request."""

    request_id: str
    spec_id: str
    amount_usd: float
    payload_sha256: str
    at: float


@dataclass
class QueuedRequest:
    """A v2 or workflow request: what was asked, when it is done, and how it ends."""

    id: str
    spec: Spec
    payload: dict[str, Any]
    body_sha256: str
    price_usd: float
    created: float
    done_at: float
    failed: bool
    queued_until: float
    output: Any = None
    settled: bool = False
    files: list[str] = field(default_factory=list)


@dataclass
class SimState:
    """The mutable side of a simulator; every method takes the lock, so threads may share it."""

    balance_usd: float
    retention_s: float
    clock: Callable[[], float] = time.monotonic
    charges: list[Charge] = field(default_factory=list)
    requests: dict[str, QueuedRequest] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    _pending: list[tuple[float, str]] = field(default_factory=list)
    # Settled requests in the order they finished, so expiry looks only at the oldest.
    _settled: deque[str] = field(default_factory=deque)
    _reserved: float = 0.0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def attempt(self, path: str, body: bytes) -> int:
        """How many times this exact request has been seen before (0 the first time)."""
        key = hashlib.sha256(path.encode() + b"\0" + body).hexdigest()
        with self._lock:
            count = self.attempts.get(key, 0)
            self.attempts[key] = count + 1
            return count

    def settle(self) -> None:
        """Charge every queued request that has completed by now; forget the expired."""
        now = self.clock()
        with self._lock:
            while self._pending and self._pending[0][0] <= now:
                _, request_id = heapq.heappop(self._pending)
                request = self.requests[request_id]
                request.settled = True
                self._settled.append(request_id)
                if not request.failed:
                    self._reserved -= request.price_usd
                    self._charge(
                        request.id,
                        request.spec.id,
                        request.price_usd,
                        request.body_sha256,
                        request.done_at,
                    )
            while (
                self._settled and now > self.requests[self._settled[0]].done_at + self.retention_s
            ):
                request = self.requests.pop(self._settled.popleft())
                for name in request.files:
                    self.files.pop(name, None)

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

    def charge_now(self, spec_id: str, price: float, body_sha256: str) -> str:
        """Bill a sync request that has just finished (its price was held); returns its request id."""
        request_id = uuid.uuid4().hex
        with self._lock:
            self._reserved -= price
            self._charge(request_id, spec_id, price, body_sha256, self.clock())
        return request_id

    def _charge(
        self, request_id: str, spec_id: str, price: float, body_sha256: str, at: float
    ) -> None:
        self.balance_usd -= price
        self.charges.append(Charge(request_id, spec_id, price, body_sha256, at))

    def enqueue(
        self,
        spec: Spec,
        payload: dict[str, Any],
        *,
        body_sha256: str,
        price: float,
        latency: float,
        failed: bool,
    ) -> QueuedRequest:
        now = self.clock()
        request = QueuedRequest(
            id=uuid.uuid4().hex,
            spec=spec,
            payload=payload,
            body_sha256=body_sha256,
            price_usd=price,
            created=now,
            done_at=now + latency,
            failed=failed,
            queued_until=now + latency * 0.1,
        )
        with self._lock:
            self.requests[request.id] = request
            heapq.heappush(self._pending, (request.done_at, request.id))
            if not failed:
                self._reserved += price
        return request

    def lookup(self, request_id: str) -> QueuedRequest | None:
        self.settle()
        with self._lock:
            return self.requests.get(request_id)

    def status_of(self, request: QueuedRequest) -> str:
        now = self.clock()
        if now < request.queued_until:
            return "QUEUED"
        if now < request.done_at:
            return "PROCESSING"
        return "FAILED" if request.failed else "COMPLETED"
