"""Fixtures: a simulator app, the same app on a real loopback socket, a clock tests move by hand, and
small images to send."""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from engine.simulator import Simulator, SimulatorConfig, all_specs, create_app, serving

MakeApp = Callable[..., Starlette]
Connect = Callable[[Starlette], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
KEY = {"x-api-key": "sk-test"}
# What the charge log adds to balance and charges when nothing was limited or uploaded.
QUIET = {"rate_limited": 0, "uploads": {"requests": 0, "assets": 0}}
# The wall-clock time a FakeClock's start stands for, in tests that pin it.
START = datetime(2026, 11, 30, 18, 30, tzinfo=UTC)


class FakeClock:
    """A monotonic clock that moves only when told: ``clock.advance(3600)``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app() -> MakeApp:
    """``make_app(latency_s=0.1, faults=..., ..., clock=..., now=...)``: a simulator over every spec;
    ``clock`` and ``now`` go to :func:`create_app`, the rest to its config."""

    def make(
        *, clock: Callable[[], float] | None = None, now: datetime | None = None, **options: object
    ) -> Starlette:
        config = SimulatorConfig(specs=all_specs(), **options)  # type: ignore[arg-type]
        return create_app(config, clock=clock, now=now)

    return make


@pytest.fixture
def serve() -> Iterator[Callable[[Starlette], str]]:
    """``serve(app)`` → its base URL on a real loopback socket; stopped after the test."""
    stack: list[object] = []

    def start(app: Starlette) -> str:
        context = serving(app)
        url = context.__enter__()
        stack.append(context)
        return url

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)  # type: ignore[attr-defined]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["socket", "asgi"])
def connect(request: pytest.FixtureRequest, serve: Callable[[Starlette], str]) -> Connect:
    """``async with connect(app) as client``: a client on a loopback socket, or in process (ASGI)."""

    @contextlib.asynccontextmanager
    async def open_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
        if request.param == "socket":
            client = httpx.AsyncClient(base_url=serve(app))
        else:
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://sim"
            )
        async with client:
            yield client

    return open_client


@contextlib.asynccontextmanager
async def in_process(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client


def base_of(client: httpx.AsyncClient | httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def assert_error(response: httpx.Response, status: int) -> str:
    """The response is ``status`` with a body of exactly ``{"error": <text>}``; returns the text."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str)
    assert body["error"]
    return str(body["error"])


async def charges(client: httpx.AsyncClient) -> dict[str, Any]:
    """The simulator's charge log (``/_simulator/charges``)."""
    response = await client.get("/_simulator/charges")
    assert response.status_code == 200
    result = response.json()
    assert isinstance(result, dict)
    return result


def simulator_of(app: Starlette) -> Simulator:
    sim = app.state.simulator
    assert isinstance(sim, Simulator)
    return sim


def png_b64(
    color: str = "orange", size: tuple[int, int] = (64, 48), *, background: str = "white"
) -> str:
    """A product-like PNG: a coloured rectangle on a white background, as base64."""
    image = Image.new("RGB", (size[0] * 2, size[1] * 2), background)
    image.paste(Image.new("RGB", size, color), (size[0] // 2, size[1] // 2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def png_bytes(color: str = "orange", size: tuple[int, int] = (64, 48)) -> bytes:
    return base64.b64decode(png_b64(color, size))
