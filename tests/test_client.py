"""The protocol client against the simulator in process: every outcome sorted by who pays."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from engine.client import (
    Finished,
    SegmindClient,
    Submitted,
)
from engine.errors import Abort, Ambiguous, JobFailed, Retryable
from engine.localimage import LocalImage
from engine.simulator import SimulatorConfig, all_specs, create_app, parse_faults
from engine.specs import load_spec
from tests.helpers import ROOT

T = TypeVar("T")
SOFA = ROOT / "recipes" / "images" / "sofa.png"


def with_client(call: Callable[[SegmindClient], Awaitable[T]], **config: Any) -> T:
    app = create_app(SimulatorConfig(specs=all_specs(), **config))

    async def go() -> T:
        client = SegmindClient(
            "http://sim", config.pop("_key", "sk-test"), transport=httpx.ASGITransport(app=app)
        )
        try:
            return await call(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


async def submit(
    client: SegmindClient, spec_id: str, payload: dict[str, Any]
) -> Finished | Submitted:
    spec = load_spec(spec_id)
    return await client.send(spec, await client.body(spec, payload))


def test_local_images_go_as_their_uploaded_url_or_as_base64() -> None:
    async def body(client: SegmindClient) -> tuple[dict[str, Any], dict[str, Any]]:
        spec = load_spec("scenecraft")
        payload = {"image": LocalImage(SOFA), "prompt": "p"}
        url = await client.upload(SOFA.read_bytes())
        uploaded = json.loads(await client.body(spec, payload, urls={SOFA: url}))
        return dict(uploaded), dict(json.loads(await client.body(spec, payload)))

    uploaded, inline = with_client(body)
    assert uploaded["image"].startswith("http://sim/assets/")
    assert base64.b64decode(inline["image"]) == SOFA.read_bytes()


def test_v2_submit_then_status_then_result_names_the_image_to_download() -> None:
    async def flow(client: SegmindClient) -> tuple[str, Finished, bytes]:
        spec = load_spec("scenecraft")
        url = await client.upload(SOFA.read_bytes())
        payload = {"image": LocalImage(SOFA), "prompt": "p", "image_format": "png"}
        body = await client.body(spec, payload, urls={SOFA: url})
        submitted = await client.send(spec, body)
        assert isinstance(submitted, Submitted)
        polled = await client.status(spec, submitted)
        finished = await client.result(spec, submitted, polled)
        return polled.state, finished, (await client.download(finished.urls[0])).data

    state, finished, data = with_client(flow, strict_urls=True)
    assert state == "COMPLETED"
    assert len(finished.urls) == 1
    assert data.startswith(b"\x89PNG")


def test_a_workflows_json_string_output_is_parsed_and_fetched() -> None:
    async def flow(client: SegmindClient) -> Finished:
        spec = load_spec("consistent-character")
        submitted = await submit(client, "consistent-character", {"Prompt": "sitting"})
        assert isinstance(submitted, Submitted)
        polled = await client.status(spec, submitted)
        assert polled.state == "COMPLETED"
        return await client.result(spec, submitted, polled)

    finished = with_client(flow)
    assert len(finished.urls) == 1


@pytest.mark.parametrize(
    ("config", "payload", "problem", "status"),
    [
        ({}, {"prompt": "p", "samples": 9}, JobFailed, 400),
        ({"key": "secret"}, {"prompt": "p"}, Abort, 401),
        ({"balance_usd": 0.0, "unpriced_usd": 0.01}, {"prompt": "p"}, Abort, 406),
        ({"faults": parse_faults("429=1"), "retry_after_s": 7}, {"prompt": "p"}, Retryable, 429),
        ({"faults": parse_faults("502=1")}, {"prompt": "p"}, Retryable, 502),
    ],
)
def test_answers_are_sorted_by_who_pays(
    config: dict[str, Any], payload: dict[str, Any], problem: type[Exception], status: int
) -> None:
    with pytest.raises(problem) as caught:
        with_client(lambda client: submit(client, "sd1.5-scifi", payload), **config)
    assert getattr(caught.value, "status", None) == status
    if status == 429:
        assert caught.value.retry_after == pytest.approx(7, abs=1)  # type: ignore[attr-defined]


def test_a_failed_job_is_a_job_failure() -> None:
    async def flow(client: SegmindClient) -> None:
        spec = load_spec("sd1.5-scifi")
        submitted = await submit(client, "sd1.5-scifi", {"prompt": "p"})
        assert isinstance(submitted, Submitted)
        await client.status(spec, submitted)

    with pytest.raises(JobFailed, match="blocked"):
        with_client(flow, faults=parse_faults("failed=1"))


def test_an_unknown_request_is_ambiguous() -> None:
    async def flow(client: SegmindClient) -> None:
        spec = load_spec("sd1.5-scifi")
        await client.status(
            spec,
            Submitted("nope", "http://sim/v2/requests/nope/status", "http://sim/v2/requests/nope"),
        )

    with pytest.raises(Ambiguous, match="unknown or expired"):
        with_client(flow)


def test_a_refused_connection_is_retryable_because_nothing_left() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def go() -> None:
        client = SegmindClient(f"http://127.0.0.1:{port}", "k")
        try:
            await client.send(load_spec("sd1.5-scifi"), b"{}")
        finally:
            await client.aclose()

    with pytest.raises(Retryable, match="could not connect"):
        asyncio.run(go())


def test_an_image_changed_between_two_runs_is_sent_as_it_is_now(tmp_path: Path) -> None:
    image = tmp_path / "product.png"
    image.write_bytes(SOFA.read_bytes())

    async def sent(client: SegmindClient) -> bytes:
        body = await client.body(
            load_spec("scenecraft"), {"image": LocalImage(image), "prompt": "p"}
        )
        return base64.b64decode(json.loads(body)["image"])

    assert with_client(sent) == SOFA.read_bytes()
    lamp = (SOFA.parent / "lamp.png").read_bytes()
    image.write_bytes(lamp)
    assert with_client(sent) == lamp  # a new run reads the file again
