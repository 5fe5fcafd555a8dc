"""A real browser for the page tests: Debian's chromium driven by Playwright (its own browser
download cannot work offline), a tab that collects every console error, and a way to run `render`
beside Playwright's event loop. The ``browser`` fixture (tests/conftest.py) skips, saying why,
where either is missing."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

T = TypeVar("T")


def launched_browser() -> Iterator[Any]:
    """Chromium, headless, for as long as the fixture that yields it lives."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def aside(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(...)`` in a thread of its own: `render` runs an event loop, and this thread may
    have one running already (an async test's, or Playwright's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()


class Tab:
    """A page of its own browser context, with every console error and uncaught exception."""

    def __init__(self, browser: Any, *, width: int, height: int) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def close(self) -> None:
        self.context.close()
