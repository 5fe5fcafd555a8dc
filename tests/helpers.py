"""Test helpers: write small file trees from dedented text, and find the seed Segmind API pages."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.backends import segmind_backend
from engine.budget import Budget
from engine.client import SegmindClient
from engine.ledger import Ledger
from engine.outputs import OutputStore
from engine.plan import Plan
from engine.results import RunOptions
from engine.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
# The seed API pages the shipped specs are generated from, kept byte for byte as published.
PAGES = ROOT / "specs" / "pages"
SPEC_IDS = (
    "scenecraft",
    "ai-product-photography",
    "consistent-character",
    "sd1.5-scifi",
    "furniture-staging",
)


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative path → text, dedented, or bytes) under ``root``; returns ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def seed_page(spec_id: str) -> Path:
    """The seed API page for ``spec_id``, shipped in specs/pages/; a missing one fails the test."""
    path = PAGES / f"{spec_id}.txt"
    if not path.is_file():
        pytest.fail(f"{path} is missing: every seed API page ships in specs/pages/")
    return path


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def simulator_process(*options: str) -> Iterator[str]:
    """`render simulate OPTIONS...` in its own process on a free port; yields its base URL."""
    port = free_port()
    render = Path(sys.executable).with_name("render")
    command = [str(render), "simulate", "--port", str(port), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "/v1/get-user-credits", headers={"x-api-key": "k"}, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def asset_url(base: str, path: Path) -> str:
    """The URL the simulator's storage gives an uploaded file: content-addressed, so a test can
    say what a request body carried without uploading."""
    data = path.read_bytes()
    extension = ".png" if data.startswith(b"\x89PNG") else ".jpg"
    return f"{base}/assets/{hashlib.sha256(data).hexdigest()}{extension}"


class _Watching(Ledger):
    """The ledger, telling the test the moment every job of a run has its request id on record."""

    def __init__(self, path: Path, jobs: int) -> None:
        super().__init__(path)
        self.all_queued = asyncio.Event()
        self._jobs = jobs
        self._queued: set[str] = set()

    def update(self, run_id: str, job_id: str, **fields: Any) -> None:
        super().update(run_id, job_id, **fields)
        if fields.get("status") == "submitted":
            self._queued.add(job_id)
            if len(self._queued) >= self._jobs:
                self.all_queued.set()


async def interrupt_when_queued(
    plan: Plan, *, base: str, key: str, out: Path, home: Path, options: RunOptions | None = None
) -> Runner:
    """A run of ``plan`` cancelled (Ctrl-C) once every job is queued at the server and none has
    been collected: waits on the ledger's own writes, not on time."""
    client = SegmindClient(base, key)
    ledger = _Watching(home / "ledger.sqlite", len(plan.jobs))
    runner = Runner(
        plan,
        client=client,
        ledger=ledger,
        store=OutputStore(out),
        budget=Budget(100.0),
        options=options or RunOptions(),
        backend=segmind_backend(key, base_url=base),
    )
    task = asyncio.create_task(runner.run())
    await ledger.all_queued.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.aclose()
    ledger.close()
    return runner
