"""Shared test configuration: pytester, to test the recipe plugin as pytest runs it; and a user data
folder of the test's own, so no test writes a ledger into the real one."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _own_user_data(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """platformdirs' user data folder (the default RENDER_HOME) inside the test's temp folder."""
    data = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data
