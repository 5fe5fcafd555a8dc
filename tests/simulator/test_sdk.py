"""The official `segmind` SDK, pointed at the simulator on a real loopback socket, works against it.

That is how we know the simulator speaks Segmind's protocol (DESIGN.md, Simulator and preview). Only
fake keys are used and the SDK's base URL is always the simulator's.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from segmind import SegmindClient
from segmind.exceptions import SegmindError
from segmind.v2 import InferenceFailed
from starlette.applications import Starlette

from engine.simulator import parse_faults
from engine.specs import available_specs, load_spec
from tests.simulator.conftest import png_b64, simulator_of

WORKFLOW_ID = "6865fd064727e611dfa21d4f-v5"

# A minimal valid payload for every spec served on v1/v2, with the content type a v1 call answers.
PAYLOADS: dict[str, tuple[dict[str, Any], str]] = {
    "scenecraft": ({"image": png_b64(), "prompt": "a sofa in a sunlit loft"}, "image/jpeg"),
    "ai-product-photography": (
        {"image": png_b64("teal"), "prompt": "a bottle on marble"},
        "image/png",
    ),
    "sd1.5-scifi": ({"prompt": "a starship over a red planet", "base64": True}, "application/json"),
    "furniture-staging": (
        {
            "prompt": "a staged living room",
            "main_image": png_b64("tan", background="beige"),
            "overlay_image": png_b64("navy"),
            "steps": 10,
            "seed": 42,
            "guidance": 5,
            "image_format": "jpeg",
            "image_quality": 80,
        },
        "image/jpeg",
    ),
}

Serve = Callable[[Starlette], str]
Connect = Callable[..., SegmindClient]


def slug_of(spec_id: str) -> str:
    return load_spec(spec_id).endpoint.rsplit("/", 1)[1]


@pytest.fixture
def sdk() -> Iterator[Connect]:
    """``sdk(base, api_key=...)``: an SDK client on the simulator; closed after the test."""
    clients: list[SegmindClient] = []

    def connect(base: str, api_key: str = "sk-test") -> SegmindClient:
        client = SegmindClient(api_key=api_key, base_url=base + "/v1")
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client._client.close()


def image_format(data: bytes) -> str | None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.format


def fetch_image(url: str, base: str) -> str | None:
    assert url.startswith(base + "/")
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/")
    return image_format(response.content)


def test_every_v1_v2_spec_has_a_payload() -> None:
    served = {i for i in available_specs() if load_spec(i).protocol != "workflow"}
    assert served == set(PAYLOADS)


@pytest.mark.parametrize("spec_id", sorted(PAYLOADS))
def test_run_sync(spec_id: str, make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app()
    payload, content_type = PAYLOADS[spec_id]
    response = sdk(serve(app)).run_sync(slug_of(spec_id), **payload)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    spec = load_spec(spec_id)
    price = spec.price_usd or 0.0
    assert float(response.headers["x-remaining-credits"]) == pytest.approx(100 - price, abs=1e-4)
    if content_type == "application/json":
        (encoded,) = response.json()["images"]
        assert image_format(base64.b64decode(encoded)) == "PNG"
    else:
        assert image_format(response.content) == content_type.split("/")[1].upper()
    assert [c.spec_id for c in simulator_of(app).state.charges] == [spec_id]


@pytest.mark.parametrize("spec_id", sorted(PAYLOADS))
def test_submit_async_wait(spec_id: str, make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app(latency_s=0.1)
    base = serve(app)
    payload, content_type = PAYLOADS[spec_id]
    job = sdk(base).submit_async(slug_of(spec_id), **payload)
    assert job.status_url.startswith(base + "/v2/")
    assert job.response_url.startswith(base + "/v2/")
    result = job.wait(interval=0.05)
    assert result["status"] == "COMPLETED"
    assert result["request_id"] == job.request_id
    assert result["metrics"] == {"inference_time": 0.1}
    if content_type == "application/json":
        (encoded,) = result["output"]["images"]
        assert image_format(base64.b64decode(encoded)) == "PNG"
    else:
        assert fetch_image(result["output"], base) == content_type.split("/")[1].upper()
    charged = [(c.request_id, c.spec_id) for c in simulator_of(app).state.charges]
    assert charged == [(job.request_id, spec_id)]


def test_run(make_app: Any, serve: Serve, sdk: Connect) -> None:
    base = serve(make_app(latency_s=0))
    payload, _ = PAYLOADS["ai-product-photography"]
    result = sdk(base).run("ai-product-photography", **payload)
    assert result["status"] == "COMPLETED"
    assert fetch_image(result["output"], base) == "PNG"


def test_pixelflows_run(make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app(latency_s=0.1)
    base = serve(app)
    data = {
        "Character": png_b64("navy"),
        "Scene": png_b64("green", background="green"),
        "Prompt": "on the bench",
    }
    result = sdk(base).pixelflows.run(
        workflow_url=f"{base}/workflows/{WORKFLOW_ID}", data=data, poll_interval=0.05
    )
    assert result["status"] == "COMPLETED"
    output = result["output"]
    assert isinstance(output, dict), "the SDK parses the JSON-string output into a dict"
    urls = [v for v in output.values() if isinstance(v, str)] + [
        u for v in output.values() if isinstance(v, list) for u in v
    ]
    assert urls
    for url in urls:
        fetch_image(url, base)
    assert [c.spec_id for c in simulator_of(app).state.charges] == ["consistent-character"]


def test_bad_payload_is_400_naming_the_parameter(make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app(latency_s=0)
    base = serve(app)
    client = sdk(base)
    payload, _ = PAYLOADS["scenecraft"]
    with pytest.raises(SegmindError) as sync:
        client.run_sync("segmind-scenecraft-v01", **{**payload, "steps": 500})
    with pytest.raises(SegmindError) as queued:
        client.submit_async("segmind-scenecraft-v01", **{**payload, "steps": 500})
    staging, _ = PAYLOADS["furniture-staging"]
    with pytest.raises(SegmindError) as missing:
        client.run_sync(
            "furniture-staging", **{k: v for k, v in staging.items() if k != "guidance"}
        )
    with pytest.raises(SegmindError) as flow:
        client.pixelflows.run(workflow_url=f"{base}/workflows/{WORKFLOW_ID}", data={"Prompt": 1})
    for error, name in (
        (sync, "steps"),
        (queued, "steps"),
        (missing, "guidance"),
        (flow, "Prompt"),
    ):
        assert error.value.status == 400
        assert error.value.detail is not None
        assert name in error.value.detail
    assert simulator_of(app).state.charges == []


def test_bad_key_is_401(make_app: Any, serve: Serve, sdk: Connect) -> None:
    base = serve(make_app(key="secret", latency_s=0))
    payload, _ = PAYLOADS["scenecraft"]
    wrong = sdk(base, api_key="sk-test")
    with pytest.raises(SegmindError) as sync:
        wrong.run_sync("segmind-scenecraft-v01", **payload)
    with pytest.raises(SegmindError) as queued:
        wrong.submit_async("segmind-scenecraft-v01", **payload)
    assert sync.value.status == 401
    assert queued.value.status == 401
    assert (
        sdk(base, api_key="secret").run_sync("segmind-scenecraft-v01", **payload).status_code == 200
    )


def test_out_of_credits_is_406(make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app(balance_usd=0.3, latency_s=0)
    client = sdk(serve(app))
    payload, _ = PAYLOADS["scenecraft"]
    with pytest.raises(SegmindError) as sync:
        client.run_sync("segmind-scenecraft-v01", **payload)
    with pytest.raises(SegmindError) as queued:
        client.submit_async("segmind-scenecraft-v01", **payload)
    assert sync.value.status == 406
    assert queued.value.status == 406
    assert simulator_of(app).state.charges == []


def test_rate_limit_reaches_the_sdk_unretried(make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app(faults=parse_faults("429=1"), latency_s=0)
    payload, _ = PAYLOADS["scenecraft"]
    with pytest.raises(SegmindError) as limited:
        sdk(serve(app)).run_sync("segmind-scenecraft-v01", **payload)
    assert limited.value.status == 429
    assert list(simulator_of(app).state.attempts.values()) == [1]


def test_failed_job_raises_inference_failed(make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app(faults=parse_faults("failed=1"), latency_s=0.05)
    payload, _ = PAYLOADS["scenecraft"]
    job = sdk(serve(app)).submit_async("segmind-scenecraft-v01", **payload)
    with pytest.raises(InferenceFailed) as failed:
        job.wait(interval=0.05)
    assert failed.value.detail
    assert failed.value.status_body["status"] == "FAILED"
    assert failed.value.status_body["request_id"] == job.request_id
    assert job.result()["status"] == "FAILED"
    assert simulator_of(app).state.charges == []
