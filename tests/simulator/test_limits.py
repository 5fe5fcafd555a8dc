"""The simulator's limits: a body over the cap is answered 413 unread, and a connection that waits on
its client (nothing sent, half a request sent, nothing after a response) is closed after the idle
timeout, while keep-alive and slow answers still work.

Nothing here sleeps: each test waits on the event itself, such as a blocking ``recv`` that returns
``b""`` once the server closes (its 10 s socket timeout only fails a server that never does).
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from engine.simulator import serving
from tests.simulator.conftest import MakeApp, simulator_of

LIMIT = 64 * 1024
IDLE_S = 0.2
KEY = {"x-api-key": "sk-test"}
SCIFI_V1 = "/v1/sd1.5-scifi"
TOO_LARGE = {"error": f"Request body too large: the limit is {LIMIT} bytes"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(make_app: MakeApp) -> Starlette:
    return make_app(max_body_bytes=LIMIT, images="tiny")


@pytest.fixture
def base(app: Starlette) -> Iterator[str]:
    with serving(app, idle_timeout_s=IDLE_S) as url:
        yield url


def connect(base: str) -> socket.socket:
    host, _, port = base.removeprefix("http://").partition(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_by_server(sock: socket.socket) -> bool:
    """Blocks until the server closes (True), dropping anything it sends first."""
    with sock:
        while sock.recv(65536):
            pass
    return True


def head(method: str, path: str, *headers: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "host: sim", *headers, "", ""]).encode()


def response_on(sock: socket.socket) -> tuple[int, bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def body_of_size(size: int) -> bytes:
    """A valid JSON request of exactly ``size`` bytes (JSON allows trailing blanks)."""
    return json.dumps({"prompt": "a city"}).encode().ljust(size)


# --- the body cap ---------------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    app: Starlette, base: str
) -> None:
    sock = connect(base)
    sock.sendall(head("POST", SCIFI_V1, "x-api-key: sk-test", "content-length: 300000000"))
    status, body = response_on(sock)
    assert (status, json.loads(body)) == (413, TOO_LARGE)
    # The body it still owes never comes: the idle timeout ends the connection.
    assert closed_by_server(sock)
    assert simulator_of(app).state.charges == []


def test_a_client_waiting_for_100_continue_is_refused_and_let_go(base: str) -> None:
    sock = connect(base)
    sock.sendall(
        head(
            "POST",
            SCIFI_V1,
            "x-api-key: sk-test",
            "content-length: 300000000",
            "expect: 100-continue",
        )
    )
    response = http.client.HTTPResponse(sock)
    response.begin()
    assert (response.status, json.loads(response.read())) == (413, TOO_LARGE)
    # It will not send the body it was not asked for; the server says so and closes.
    assert response.getheader("connection") == "close"
    assert closed_by_server(sock)


@pytest.mark.parametrize("framing", ["declared", "streamed"])
@pytest.mark.parametrize("transport", ["socket", "asgi"])
@pytest.mark.anyio
async def test_a_body_up_to_the_limit_is_served_and_one_byte_more_is_refused(
    app: Starlette, request: pytest.FixtureRequest, transport: str, framing: str
) -> None:
    def content(size: int) -> bytes | AsyncIterator[bytes]:
        data = body_of_size(size)
        if framing == "declared":
            return data

        async def chunks() -> AsyncIterator[bytes]:  # no length known: sent chunked
            for start in range(0, len(data), 10_000):
                yield data[start : start + 10_000]

        return chunks()

    if transport == "socket":
        client = httpx.AsyncClient(base_url=request.getfixturevalue("base"), headers=KEY)
    else:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sim", headers=KEY
        )
    async with client:
        refused = await client.post(SCIFI_V1, content=content(LIMIT + 1))
        assert refused.status_code == 413
        assert refused.json() == TOO_LARGE
        assert ("transfer-encoding" in refused.request.headers) == (framing == "streamed")
        served = await client.post(SCIFI_V1, content=content(LIMIT))
        assert served.status_code == 200, served.text
    assert len(simulator_of(app).state.charges) == 1


@pytest.mark.parametrize("framing", ["declared", "streamed"])
def test_after_a_413_the_rest_of_the_body_is_dropped_and_the_connection_goes_on(
    base: str, framing: str
) -> None:
    body = b" " * (4 * LIMIT)
    if framing == "declared":
        sent = head("POST", SCIFI_V1, "x-api-key: sk-test", f"content-length: {len(body)}") + body
    else:
        chunks = [body[start : start + 10_000] for start in range(0, len(body), 10_000)]
        sent = head(
            "POST", SCIFI_V1, "x-api-key: sk-test", "transfer-encoding: chunked"
        ) + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in [*chunks, b""])
    sock = connect(base)
    sock.sendall(sent)
    status, answer = response_on(sock)
    assert (status, json.loads(answer)) == (413, TOO_LARGE)
    sock.sendall(head("GET", "/v1/get-user-credits", "x-api-key: sk-test"))
    assert response_on(sock)[0] == 200
    assert closed_by_server(sock)


@pytest.mark.anyio
async def test_an_endless_stream_is_read_only_up_to_the_limit(app: Starlette) -> None:
    chunk = b" " * 4096
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "server": ("sim", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
        "path": SCIFI_V1,
        "raw_path": SCIFI_V1.encode(),
        "query_string": b"",
        "headers": [(b"x-api-key", b"sk-test"), (b"transfer-encoding", b"chunked")],
    }
    await app(scope, receive, send)
    assert pulled == LIMIT // len(chunk) + 1
    assert sent[0]["status"] == 413
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:])) == TOO_LARGE


# --- idle connections -----------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(base: str) -> None:
    assert closed_by_server(connect(base))


def test_a_connection_that_sends_half_a_head_is_closed(base: str) -> None:
    sock = connect(base)
    sock.sendall(head("POST", SCIFI_V1, "x-api-key: sk-test")[:-10])
    assert closed_by_server(sock)


def test_a_connection_that_sends_half_a_body_is_closed_quietly(app: Starlette) -> None:
    logged = _Records()
    errors = logging.getLogger("uvicorn.error")
    try:
        with serving(app, idle_timeout_s=IDLE_S) as url:
            # Attached once uvicorn has configured its loggers, which drops their handlers.
            errors.addHandler(logged)
            sock = connect(url)
            body = body_of_size(100)
            sock.sendall(
                head("POST", SCIFI_V1, "x-api-key: sk-test", "content-length: 100") + body[:50]
            )
            assert closed_by_server(sock)
        # Leaving `serving` waited for the app's task, which saw its client go: nothing is an error.
    finally:
        errors.removeHandler(logged)
    assert [record.getMessage() for record in logged.records] == []


def test_keep_alive_serves_back_to_back_requests_then_times_out(base: str) -> None:
    sock = connect(base)
    for _ in range(3):
        sock.sendall(head("GET", "/v1/get-user-credits", "x-api-key: sk-test"))
        status, body = response_on(sock)
        assert status == 200
        assert json.loads(body)["credits"] == 100.0
    assert closed_by_server(sock)


def test_an_answer_slower_than_the_idle_timeout_still_arrives(make_app: MakeApp) -> None:
    # The client waits on the server here, not the other way round: no timer runs.
    app = make_app(latency_s=IDLE_S * 3, images="tiny")
    with serving(app, idle_timeout_s=IDLE_S) as url:
        sock = connect(url)
        data = body_of_size(50)
        sock.sendall(head("POST", SCIFI_V1, "x-api-key: sk-test", "content-length: 50") + data)
        status, _ = response_on(sock)
        assert status == 200
        assert closed_by_server(sock)


def test_the_idle_timeout_must_be_positive(app: Starlette) -> None:
    with (
        pytest.raises(ValueError, match="idle_timeout_s must be positive"),
        serving(app, idle_timeout_s=0),
    ):
        pass
