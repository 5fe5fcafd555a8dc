"""What a run writes while the ledger's database does not answer: the state changes of the jobs in
flight (a request id, how a job ended, what it cost), appended to a local journal and synced, then
replayed into the ledger by the next process that opens it, before that process decides anything.

Nothing is *sent* on the strength of this journal: a ``sending`` row must reach the database first
(engine.runner stops sending while it does not answer). What is journaled here only records what
already happened, and every call replays to the same rows however often it is applied.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.ledger import Ledger

__all__ = ["Pending"]

# The ledger's methods a journal may hold: writes that record what happened, never a send.
_REPLAYABLE = frozenset(
    {"job", "update", "finish_job", "settle_request", "take_over", "finish_run", "waiting"}
)


class Pending:
    """The local journals of one ledger (``target``), in ``folder``: this process writes its own
    file; any process replays them all."""

    def __init__(self, folder: Path, target: str) -> None:
        self.folder = folder
        self.key = hashlib.sha256(target.encode()).hexdigest()[:16]
        self._mine = folder / f"{self.key}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.written = 0

    def add(self, call: str, *args: Any, **kwargs: Any) -> None:
        """One ledger call, on disk (synced) before this returns."""
        if call not in _REPLAYABLE:
            raise ValueError(f"{call} cannot wait in a local journal")
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"call": call, "args": list(args), "kwargs": kwargs}) + "\n"
        with self._mine.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        self.written += 1

    def files(self) -> list[Path]:
        return sorted(self.folder.glob(f"{self.key}-*.jsonl"))

    def replay(self, ledger: Ledger) -> int:
        """Every journaled call applied to ``ledger``, oldest file first, each file removed once
        applied; returns how many calls were. A call that fails leaves its file for the next try."""
        applied = 0
        for path in self.files():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                continue  # another process replayed it a moment ago
            for line in lines:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill while it was written: nothing was recorded
                if entry.get("call") in _REPLAYABLE:
                    getattr(ledger, entry["call"])(*entry["args"], **entry["kwargs"])
                    applied += 1
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return applied
