"""Test helpers: write small file trees from dedented text, find the seed Segmind API pages, run
`render` as a user does (and the simulator it talks to), and move a simulator's clock by hand."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from engine.backends import segmind_backend
from engine.budget import Budget
from engine.cli import cli
from engine.client import SegmindClient
from engine.ledger import Ledger
from engine.outputs import OutputStore
from engine.plan import Plan
from engine.results import RunOptions
from engine.runner import Runner
from engine.simulator import SimulatorConfig, all_specs, create_app, serving
from engine.simulator.state import SimState

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


# A test run from a background job (a script's `cmd &`) inherits SIGINT ignored, and a program
# keeps an ignored signal ignored across exec: Ctrl-C would never reach the run under test.
_WITH_CTRL_C = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def interruptible(command: list[str]) -> list[str]:
    """``command`` started so that SIGINT reaches it as Ctrl-C in a terminal does."""
    return [sys.executable, "-c", _WITH_CTRL_C, *command]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def simulator_process(*options: str, log: Path | None = None) -> Iterator[str]:
    """`render simulate OPTIONS...` in its own process on a free port; yields its base URL once the
    server says it listens (read from its stderr as it comes, never polled). ``log``: where its
    stderr is written when it stops."""
    port = free_port()
    render = Path(sys.executable).with_name("render")
    command = [str(render), "simulate", "--port", str(port), *options]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8"
    )
    said: list[str] = []
    listening = threading.Event()
    answered = threading.Event()  # it listens, or it has exited

    def read() -> None:
        # Drained to the end, whatever is kept: a full pipe would stall the server.
        assert process.stderr is not None
        for line in process.stderr:
            if log is not None or not listening.is_set():
                said.append(line)
            if "Uvicorn running on" in line:
                listening.set()
                answered.set()
        answered.set()

    reader = threading.Thread(target=read, name="render-simulate-stderr", daemon=True)
    reader.start()
    try:
        # A guard against a server that neither starts nor exits, not a wait for it.
        answered.wait(timeout=60)
        if not listening.is_set():
            raise RuntimeError(f"render simulate did not start: {''.join(said)}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
        if log is not None:
            log.write_text("".join(said), encoding="utf-8")


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


class SimClock:
    """A simulator's clock that a test moves by hand (``create_app(config, clock=clock)``).

    Running, it is real time plus what the test adds; stopped (``running=False``) it is only what
    the test adds, so a queued request finishes when the test says so, never by itself.
    """

    def __init__(self, *, running: bool = True) -> None:
        self.running = running
        self.offset = 0.0

    def __call__(self) -> float:
        return (time.monotonic() if self.running else 0.0) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def advance_to(self, moment: float) -> None:
        """On to ``moment`` (a reading of this clock), if it is still to come."""
        self.offset += max(0.0, moment - self())


# --- `render` as a user runs it, and a simulator for it to talk to -----------------------------


class Outcome(NamedTuple):
    """What a `render` command did: its exit code and what it printed on stdout and stderr."""

    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Simulated:
    """A simulator serving on a loopback socket: its app and base URL."""

    app: Starlette
    base: str

    @property
    def state(self) -> SimState:
        """What it remembers: balance, charge log, history."""
        state = self.app.state.simulator.state
        assert isinstance(state, SimState)
        return state

    def env(self, key: str = "sk-test") -> dict[str, str]:
        """The environment that points `render --backend segmind` at it, with API key ``key``."""
        return {"SEGMIND_API_KEY": key, "SEGMIND_BASE_URL": self.base}


class Render:
    """The `render` command (``render(*args, **env)``) and a simulator for it to talk to
    (``with render.simulator(**config) as segmind``): see the ``render`` fixture."""

    def __call__(self, *args: str, **env: str) -> Outcome:
        """`render ARGS...` through click's test runner, ``env`` added to the environment for this
        call only. It ends with an exit code, never an exception that escaped the CLI."""
        result = CliRunner().invoke(cli, list(args), env=env or None, prog_name="render")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"render {' '.join(args)} raised:\n{result.output}") from (
                result.exception
            )
        return Outcome(result.exit_code, result.stdout, result.stderr)

    @staticmethod
    @contextlib.contextmanager
    def simulator(**config: Any) -> Iterator[Simulated]:
        """A simulator over every spec (``config`` goes to its SimulatorConfig) on a loopback
        socket until the block ends."""
        app = create_app(SimulatorConfig(specs=all_specs(), **config))
        with serving(app) as base:
            yield Simulated(app, base)
