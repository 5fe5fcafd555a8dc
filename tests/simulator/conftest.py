"""Fixtures: a simulator app, the same app on a real loopback socket, and small images to send."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator

import pytest
from PIL import Image
from starlette.applications import Starlette

from engine.simulator import Simulator, SimulatorConfig, all_specs, create_app, serving

MakeApp = Callable[..., Starlette]


@pytest.fixture
def make_app() -> MakeApp:
    """``make_app(latency_s=0.1, faults=..., ...)``: a simulator over every spec."""

    def make(**options: object) -> Starlette:
        return create_app(SimulatorConfig(specs=all_specs(), **options))  # type: ignore[arg-type]

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
