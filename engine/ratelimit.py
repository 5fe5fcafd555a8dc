"""The run's pace: submissions spaced so the account's rate limit is met, not provoked.

Segmind limits requests per account and minute (free 5, Pro 50, Enterprise more) and answers a 429
with no ``Retry-After``, only ``x-rate-limit-reset-at-utc``. So the pace is learned: a run starts at
full speed (or at ``--rpm``); a 429 tells it that the submissions accepted in the last minute are
about what the account allows, so every later submission of the run (not just the refused one)
waits for the reset and is spaced to that rate; a whole window's worth of submissions without a 429
raises the rate by a quarter, up to ``--rpm`` when given, so a 429 that was not the limit (a glitch)
costs the run little, and one that was costs it a 429 now and then.

Every process sending with one key shares one pace (``SharedPace``): what is learned, and whose
turn it is, are kept in the ledger, so two processes on one account together stay under its limit
rather than each provoking 429s at its own full speed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, TypeVar

from engine.errors import LedgerUnreachable

if TYPE_CHECKING:
    from engine.ledger import Ledger

__all__ = ["Pace", "PaceState", "SharedPace", "account_id"]

_T = TypeVar("_T")

# The first 429 with no reset time waits this long before anything more is sent.
_DEFAULT_WAIT_S = 5.0
# A reset time within a second (resets are given to the second) says no window is full for long:
# that request waits for it alone, and the run's pace learns nothing from it.
_GLITCH_S = 1.0
# How much a 429 at the learned rate lowers it; and the margin kept below the learned rate.
_DECREASE = 0.9
_MARGIN = 1.02
# How much a window's worth of submissions without a 429 raises the learned rate.
_INCREASE = 1.25
# Submissions accepted are counted in this many slots of a window.
_SLOTS = 60


@dataclass
class PaceState:
    """What a pace has learned: the rate the account allows (None: no limit met yet), how many
    submissions were accepted in the last window (``[start, count]`` of each sixtieth of it: the
    state stays small however fast they go), how many since the last 429, and when the next
    submission may go (``next_at``, ``hold_until``: times on the pace's clock)."""

    learned: float | None = None
    accepted: list[list[float]] = field(default_factory=list)
    since_limit: int = 0
    next_at: float = 0.0
    hold_until: float = 0.0


class Pace:
    """``await pace.wait()`` before each submission; tell it what came back with ``accepted()`` or
    ``limited()``. ``rpm`` is a ceiling (``--rpm``); ``window_s`` the length of Segmind's minute."""

    def __init__(
        self,
        rpm: int | None = None,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ceiling = rpm
        self.window_s = window_s
        self.clock = clock
        self.sleep = sleep
        self.state = PaceState()
        self.limited_count = 0
        self._lock = asyncio.Lock()

    @property
    def learned(self) -> float | None:
        """Requests a minute the account allows, as far as the run has learned (None: no limit met)."""
        return self.state.learned

    @property
    def rpm(self) -> float | None:
        """The rate submissions are spaced to now."""
        rates = [rate for rate in (self.state.learned, self.ceiling) if rate is not None]
        return min(rates) if rates else None

    async def wait(self) -> None:
        """Wait for this submission's turn."""
        async with self._lock:
            now, start = await self._turn()
        if start > now:
            await self.sleep(start - now)

    async def _turn(self) -> tuple[float, float]:
        """Now, and when this submission may go (its turn taken)."""
        return self._take_turn(self.clock())

    def _take_turn(self, now: float) -> tuple[float, float]:
        state, rate = self.state, self.rpm
        start = max(now, state.next_at, state.hold_until)
        state.next_at = start + (self.window_s / rate * _MARGIN if rate else 0.0)
        return now, start

    def accepted(self) -> None:
        """A submission was not refused for the rate: after a whole window of those, try one more."""
        self._on_accepted(self.clock())

    def _on_accepted(self, now: float) -> None:
        state = self.state
        slot = now - now % (self.window_s / _SLOTS)
        same = next((item for item in reversed(state.accepted) if item[0] == slot), None)
        if same is not None:
            same[1] += 1
        else:
            state.accepted.append([slot, 1])
            state.accepted.sort()  # another process's clock may be a little behind
        self._trim(now)
        if state.learned is None:
            return
        state.since_limit += 1
        if state.since_limit >= state.learned:
            state.since_limit = 0
            raised = max(state.learned + 1, state.learned * _INCREASE)
            state.learned = min(raised, self.ceiling) if self.ceiling else raised

    def limited(self, retry_after: float | None) -> bool:
        """A 429: what was accepted in the last window is what the account allows; nothing more
        goes out until the reset time it gave (or a few seconds, when it gave none). A 429 whose
        reset is within a second is not the window filling up: nothing is learned from it, and
        False says the refused request waits on its own."""
        self.limited_count += 1
        return self._on_limited(self.clock(), retry_after)

    def _on_limited(self, now: float, retry_after: float | None) -> bool:
        state = self.state
        self._trim(now)
        if retry_after is not None and retry_after <= _GLITCH_S:
            return False
        wait = retry_after if retry_after is not None else _DEFAULT_WAIT_S
        holding = now < state.hold_until
        state.hold_until = max(state.hold_until, now + wait)
        state.next_at = max(state.next_at, state.hold_until)
        if holding:
            return True  # more of the same crowd the last 429 answered: learned from already
        seen = float(max(1, sum(count for _, count in state.accepted)))
        # A 429 at the rate already learned means the account allows a little less.
        state.learned = (
            seen
            if state.learned is None or seen < state.learned
            else max(1.0, state.learned * _DECREASE)
        )
        state.since_limit = 0
        return True

    def _trim(self, now: float) -> None:
        accepted = self.state.accepted
        cut = next(
            (i for i, (at, _) in enumerate(accepted) if now - at <= self.window_s), len(accepted)
        )
        del accepted[:cut]


class SharedPace(Pace):
    """One pace for every process sending with the same key, kept in the ledger: each turn,
    acceptance and 429 is read, applied and written back in one transaction locked on the
    account, on the wall clock (the processes may be on several machines). The account is
    named by a hash of its key and host (``account_id``); the key itself is never stored."""

    def __init__(
        self,
        ledger: Ledger,
        account: str,
        rpm: int | None = None,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(rpm, window_s=window_s, clock=clock, sleep=sleep)
        self.ledger = ledger
        self.account = account

    async def _turn(self) -> tuple[float, float]:
        return await asyncio.to_thread(self._shared, self._take_turn)

    def accepted(self) -> None:
        self._shared(self._on_accepted)

    def limited(self, retry_after: float | None) -> bool:
        self.limited_count += 1
        return self._shared(lambda now: self._on_limited(now, retry_after))

    def _shared(self, step: Callable[[float], _T]) -> _T:
        """``step`` applied to the account's pace as the ledger holds it, under its lock."""
        db = self.ledger.db
        try:
            with self.ledger.transaction(lock=f"pace:{self.account}"):
                row = db.execute(
                    "SELECT state FROM paces WHERE account = ?", (self.account,)
                ).fetchone()
                self.state = PaceState(**json.loads(row[0])) if row is not None else PaceState()
                found = step(self.clock())
                db.execute(
                    "INSERT INTO paces (account, state, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (account) DO UPDATE SET state = excluded.state, "
                    "updated_at = excluded.updated_at",
                    (self.account, json.dumps(asdict(self.state)), _now_text()),
                )
        except LedgerUnreachable:
            # A request in flight (a retry, an answer) must not fail for the ledger: this
            # process paces on what it last read (the runner sends nothing new meanwhile).
            return step(self.clock())
        return found


def account_id(api_key: str, host: str) -> str:
    """The ledger's name for an account: a hash of its key and the host it is sent to."""
    return hashlib.sha256(f"render-pace\0{host}\0{api_key}".encode()).hexdigest()[:32]


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
