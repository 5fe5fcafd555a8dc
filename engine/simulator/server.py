"""Serving the simulator on a real socket: in the foreground (`render simulate`) or in a thread (tests)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

__all__ = ["serve", "serving"]


def _server(app: Starlette, host: str, port: int, *, quiet: bool) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        lifespan="off",
        # Far more connections than a run opens; a load test should hit the app, not a backlog.
        backlog=4096,
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


def serve(app: Starlette, *, host: str, port: int) -> None:
    """Serve until interrupted."""
    _server(app, host, port, quiet=False).run()


@contextlib.contextmanager
def serving(app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields its base URL (``http://127.0.0.1:PORT``)."""
    server = _server(app, host, port, quiet=True)
    thread = threading.Thread(target=server.run, name="simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
