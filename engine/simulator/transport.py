"""What the simulator does at the transport level: the body cap (a body over ``max_bytes`` is answered
413 without being held in memory), and a connection dropped mid-answer (the ``drop`` fault)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "Dropped"]


class BodyLimit:
    """Answers 413 to a request whose body is over ``max_bytes``, holding no more than that of it.

    Pure ASGI, so the same check holds on a socket and in process. A declared Content-Length is
    refused before the app runs; a streamed (chunked) body is counted as the app reads it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            # A client waiting for a 100 Continue (which uvicorn sends only once the app reads) will
            # not send the body: closing keeps the connection's framing unambiguous.
            waiting = any(name == b"expect" for name, _ in scope["headers"])
            await self._refuse(scope, receive, send, close=waiting)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, close=False)
        except ClientDisconnect:
            pass  # gone mid-body (or closed by the server's idle timeout): no one to answer

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, *, close: bool) -> None:
        # Unless told to close, the server keeps the connection and reads and drops what is left of
        # the body (uvicorn discards a body once its response is complete), so a client still sending
        # gets its 413 rather than a reset; the idle timeout ends one that stops sending.
        response = JSONResponse(
            {"error": f"Request body too large: the limit is {self.max_bytes} bytes"},
            413,
            headers={"connection": "close"} if close else None,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    """Raised from ``receive`` inside the app once a streamed body passes the limit."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


class Dropped(Response):
    """A connection dropped after the request was received: headers promise a body that never comes."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        del scope, receive
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1024")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise _ConnectionDropped


class _ConnectionDropped(Exception):
    """Raised inside the app to make the server close the connection mid-response."""
