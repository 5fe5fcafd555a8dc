"""Run a plan end to end: open the ledger, the output folder and a client for the backend (through
a cassette if the run has one), and drive the runner on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.backends import Backend
from engine.budget import Budget
from engine.client import SegmindClient
from engine.ledger import Ledger, open_ledger
from engine.outputs import OutputStore
from engine.plan import Plan
from engine.results import CassetteUse, RunOptions, RunSummary
from engine.runner import JobSource, Runner

__all__ = ["execute"]

_Written = Callable[[], str | None]


def execute(
    plan: Plan,
    *,
    backend: Backend,
    out_dir: Path,
    options: RunOptions,
    source: Callable[[Ledger], JobSource] | None = None,
) -> RunSummary:
    """Run ``plan`` on ``backend``; Ctrl-C cancels it cleanly (what finished is recorded) and
    re-raises. Its budget is the plan's, where the backend charges; ``options.cassette`` records
    the run's HTTP, or (a replay backend) replays it. ``source``: where the jobs come from (a
    submitted run's queue), given the ledger; by default the plan's."""
    ledger = open_ledger(options.home)
    assert ledger is not None  # created when missing

    async def main() -> RunSummary:
        client = _client(backend, options)
        try:
            runner = Runner(
                plan,
                client=client,
                ledger=ledger,
                store=OutputStore(out_dir),
                budget=Budget(plan.budget_usd if backend.charges else None),
                options=options,
                backend=backend,
                source=source(ledger) if source is not None else None,
            )
            return await runner.run()
        finally:
            await client.aclose()

    try:
        with _cassette(options.cassette) as written:
            summary = asyncio.run(main())
        return summary.model_copy(update={"cassette": written()}) if options.cassette else summary
    finally:
        ledger.close()


def _client(backend: Backend, options: RunOptions) -> SegmindClient:
    client = SegmindClient(
        backend.base_url,
        backend.api_key,
        transport=backend.transport() if backend.transport is not None else None,
        max_connections=max(8, options.concurrency),
        storage_url=backend.storage_url,
        history_url=backend.history_url,
    )
    if options.cassette is not None:
        from engine.cassettes import CassetteMiss, payload_diff  # noqa: PLC0415 - vcrpy only when used

        client.cassette_misses = (CassetteMiss,)
        client.explain_miss = payload_diff
        if options.cassette.miss_advice is not None:
            client.miss_advice = options.cassette.miss_advice
    return client


@contextlib.contextmanager
def _cassette(use: CassetteUse | None) -> Iterator[_Written]:
    """The run's HTTP through ``use``'s cassette; yields what it wrote, in words, once it is saved."""
    if use is None:
        yield _nothing
        return
    from engine.cassettes import recording, use_cassette  # noqa: PLC0415 - vcrpy only when used

    with use_cassette(use.path, use.record, drop_unused=use.drop_unused):
        yield lambda: done.summary() if (done := recording()) else None


def _nothing() -> str | None:
    return None
