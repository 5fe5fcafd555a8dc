"""Run a plan end to end: pick the backend (Segmind or the free in-process preview), open the ledger
and the output folder, and drive the runner on one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from engine import settings
from engine.budget import Budget
from engine.client import SegmindClient
from engine.ledger import Ledger
from engine.outputs import OutputStore
from engine.plan import Plan
from engine.runner import Result, Runner, RunOptions, RunSummary
from engine.settings import DEFAULT_BASE_URL, host_label, ledger_path

__all__ = [
    "DEFAULT_BASE_URL",
    "Backend",
    "execute",
    "preview_backend",
    "segmind_backend",
]


@dataclass(frozen=True)
class Backend:
    """Where requests go: Segmind's three hosts (or a stand-in for all three), a key, and for the
    preview an in-process transport."""

    name: str
    base_url: str
    api_key: str
    transport: httpx.AsyncBaseTransport | None = None
    storage_url: str | None = None
    history_url: str | None = None

    @property
    def charges(self) -> bool:
        return self.name == "segmind"

    @property
    def label(self) -> str:
        """The backend as the ledger names it: money sent to a stand-in is never "Segmind's"."""
        return host_label(self.base_url) if self.name == "segmind" else self.name


def segmind_backend(api_key: str, base_url: str | None = None) -> Backend:
    hosts = settings.segmind_hosts(base_url)
    return Backend(
        "segmind", hosts.api, api_key, storage_url=hosts.storage, history_url=hosts.history
    )


def preview_backend() -> Backend:
    """The simulator inside this process, through httpx's ASGI transport: no socket, no cost."""
    from engine.simulator import SimulatorConfig, all_specs, create_app  # noqa: PLC0415 - Pillow only when previewing

    app = create_app(SimulatorConfig(specs=all_specs(), balance_usd=1e12))
    # The host cassettes recognise as the bundled simulator's (engine.cassettes.PREVIEW_HOST).
    return Backend("preview", "http://preview.local", "preview", httpx.ASGITransport(app=app))


def execute(
    plan: Plan,
    *,
    backend: Backend,
    out_dir: Path,
    options: RunOptions,
    budget_usd: float | None,
    home: Path | None = None,
    on_result: Callable[[Result], None] = lambda _result: None,
    cassette: Path | None = None,
    record: str = "once",
    drop_unused: bool = False,
    miss_advice: str | None = None,
) -> RunSummary:
    """Run ``plan``; Ctrl-C cancels it cleanly (what finished is recorded) and re-raises.

    With a ``cassette`` the run's HTTP is recorded there, or (``record="none"``) replayed from it;
    ``miss_advice`` says what to do about a request it has no recording of.
    """
    ledger = Ledger(ledger_path(home))
    charge = backend.charges and not options.replay

    async def main() -> RunSummary:
        client = SegmindClient(
            backend.base_url,
            backend.api_key,
            transport=backend.transport,
            max_connections=max(8, options.concurrency),
            storage_url=backend.storage_url,
            history_url=backend.history_url,
        )
        if cassette is not None:
            from engine.cassettes import CassetteMiss, payload_diff  # noqa: PLC0415 - vcrpy only when used

            client.cassette_misses = (CassetteMiss,)
            client.explain_miss = payload_diff
            if miss_advice is not None:
                client.miss_advice = miss_advice
        try:
            runner = Runner(
                plan,
                client=client,
                ledger=ledger,
                store=OutputStore(out_dir),
                budget=Budget(budget_usd if charge else None),
                options=options,
                label="replay" if options.replay else backend.label,
                charge=charge,
                # Uploads are remembered across runs on Segmind's storage; not for a preview (its
                # store lives as long as the run) nor with a cassette (which must hold them all).
                storage=backend.storage_url if backend.charges and cassette is None else None,
                on_result=on_result,
            )
            return await runner.run()
        finally:
            await client.aclose()

    try:
        if cassette is None:
            return asyncio.run(main())
        from engine.cassettes import recording, use_cassette  # noqa: PLC0415 - vcrpy only when used

        with use_cassette(cassette, record, drop_unused=drop_unused):  # type: ignore[arg-type]
            summary = asyncio.run(main())
        done = recording()
        return summary.model_copy(update={"cassette": done.summary() if done else None})
    finally:
        ledger.close()
