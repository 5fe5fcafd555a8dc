"""Serving the simulator on a real socket: in the foreground (`render simulate`) or in a thread (tests).

A connection that waits on its client for ``idle_timeout_s`` is closed, whatever the point of the
exchange: before a first request, between requests, in the middle of a request's head or body.
uvicorn alone times out only the wait between requests (its keep-alive timer is armed when a response
completes and cancelled by the next byte), so a client that connects and sends nothing, or half a
request, would hold its connection for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["IDLE_TIMEOUT_S", "serve", "serving"]

# Long enough for any client between two requests (httpx drops its idle connections after 5 s).
IDLE_TIMEOUT_S = 30.0


class _IdleTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools (what its ``auto`` picks: `uvicorn[standard]`
    installs httptools), with its keep-alive timer also armed while the connection waits on the
    client for a first request or for the rest of one.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_client()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # cancels the timer
        self._await_client()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # uvicorn cancels its timer only on a clean close; after a reset it would hold us till it fires.
        self._disarm()

    def _await_client(self) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        # No request yet, or the last one answered (the client owes the next, or the rest of a body
        # answered early, e.g. by a 413), or a body still arriving: the client owes bytes. Otherwise
        # the app is working on a request received whole, and the client waits on us.
        if cycle is None or cycle.response_complete or cycle.more_body:
            self._disarm()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _disarm(self) -> None:
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None


def _server(
    app: Starlette, host: str, port: int, *, quiet: bool, idle_timeout_s: float
) -> uvicorn.Server:
    if not idle_timeout_s > 0:
        raise ValueError(f"idle_timeout_s must be positive, not {idle_timeout_s}")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_IdleTimeoutProtocol,
        # The protocol's one timer, which uvicorn arms between requests itself. uvicorn annotates
        # an int but only hands it to loop.call_later, which takes a float (tests use fractions).
        timeout_keep_alive=idle_timeout_s,  # type: ignore[arg-type]
        # The simulator has no WebSocket routes; an upgraded connection would leave the idle timer.
        ws="none",
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        lifespan="off",
        # Far more connections than a run opens; a load test should hit the app, not a backlog.
        backlog=4096,
    )
    return uvicorn.Server(config)


def serve(app: Starlette, *, host: str, port: int, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
    """Serve until interrupted."""
    _server(app, host, port, quiet=False, idle_timeout_s=idle_timeout_s).run()


@contextlib.contextmanager
def serving(
    app: Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields its base URL (``http://127.0.0.1:PORT``)."""
    server = _server(app, host, port, quiet=True, idle_timeout_s=idle_timeout_s)
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
