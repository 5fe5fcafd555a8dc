"""Shared test configuration: pytester, to test the recipe plugin as pytest runs it; a user data
folder of the test's own, so no test writes a ledger into the real one; and `render` as a user runs
it, with a simulator to point it at."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.browser import launched_browser
from tests.helpers import Render
from tests.postgres import Cluster, fresh_database, start_session_cluster, why_unavailable

pytest_plugins = ["pytester"]

# Hypothesis's deadline is a wall-clock assertion: on two shared cores a busy moment would fail a
# correct example. No test here asserts time.
settings.register_profile("render", deadline=None)
settings.load_profile("render")

# What a developer's shell may set that would point a test's `render` at their account, ledger or
# specs.
_USER_SETTINGS = (
    "SEGMIND_API_KEY",
    "SEGMIND_BASE_URL",
    "RENDER_HOME",
    "RENDER_SPECS_PATH",
    "RENDER_LEDGER_URL",
)


@pytest.fixture(autouse=True)
def _own_user_data(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """platformdirs' user data folder (the default RENDER_HOME) inside the test's temp folder."""
    data = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    # A developer's team ledger must never be a test's.
    monkeypatch.delenv("RENDER_LEDGER_URL", raising=False)
    return data


@pytest.fixture
def render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Render:
    """`render` run as a user types it, in ``tmp_path`` (the working folder) with none of the
    developer's Segmind or render settings: ``code, out, err = render("r.yaml", RENDER_HOME=...)``.
    ``with render.simulator(**config) as segmind``: a simulator on a loopback socket for the block;
    ``render(..., **segmind.env(key))`` points a run at it."""
    monkeypatch.chdir(tmp_path)
    for name in _USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return Render()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright, one a test module (skipped, saying why, without)."""
    yield from launched_browser()


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A throwaway PostgreSQL server for the session (tests/postgres.py), stopped at its end;
    skipped, saying why, only where no server can be had."""
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(reason)
    cluster = start_session_cluster(tmp_path_factory)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.directory, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of this test's own."""
    return fresh_database(pg_cluster, request)
