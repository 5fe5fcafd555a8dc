"""The official `segmind` SDK, pointed at the simulator on a real loopback socket, works against it.

That is how we know the simulator speaks Segmind's protocol (DESIGN.md, Simulator and preview). Only
fake keys are used and the SDK's base URL is always the simulator's.
"""

from __future__ import annotations

import base64
import importlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from segmind import SegmindClient
from segmind.exceptions import SegmindError
from segmind.files import Files
from segmind.v2 import InferenceFailed
from starlette.applications import Starlette

from engine.simulator import parse_faults
from engine.specs import available_specs, load_spec
from tests.simulator.conftest import FakeClock, png_b64, png_bytes, simulator_of

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


class TickingClock(FakeClock):
    """A clock that moves a little each time it is read, so the SDK's own poll loop (which sleeps
    ``interval``, here 0) sees a queued job go through its states without anyone waiting."""

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


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
        body = response.json()
        assert body["status"] == "Success"
        assert image_format(base64.b64decode(body["image"])) == "PNG"
    else:
        assert image_format(response.content) == content_type.split("/")[1].upper()
    assert [c.spec_id for c in simulator_of(app).state.charges] == [spec_id]


@pytest.mark.parametrize("spec_id", sorted(PAYLOADS))
def test_submit_async_wait(spec_id: str, make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app(latency_s=1, clock=TickingClock())
    base = serve(app)
    payload, content_type = PAYLOADS[spec_id]
    job = sdk(base).submit_async(slug_of(spec_id), **payload)
    assert job.status_url.startswith(base + "/v2/")
    assert job.response_url.startswith(base + "/v2/")
    assert job.submit_response["poll_url"] == f"{base}/v1/requests/{job.request_id}"
    result = job.wait(interval=0)
    assert result["status"] == "COMPLETED"
    assert result["request_id"] == job.request_id
    assert result["metrics"] == {"inference_time": 0.9, "queue_time": 0.1}
    # v2 answers a URL, for a JSON model too.
    expected = "PNG" if content_type == "application/json" else content_type.split("/")[1].upper()
    assert fetch_image(result["output"], base) == expected
    charged = [(c.request_id, c.spec_id) for c in simulator_of(app).state.charges]
    assert charged == [(job.request_id, spec_id)]


def test_run(make_app: Any, serve: Serve, sdk: Connect) -> None:
    base = serve(make_app(latency_s=0))
    payload, _ = PAYLOADS["ai-product-photography"]
    result = sdk(base).run("ai-product-photography", **payload)
    assert result["status"] == "COMPLETED"
    assert fetch_image(result["output"], base) == "PNG"


def test_pixelflows_run(make_app: Any, serve: Serve, sdk: Connect) -> None:
    app = make_app(latency_s=1, clock=TickingClock())
    base = serve(app)
    data = {
        "Character": png_b64("navy"),
        "Scene": png_b64("green", background="green"),
        "Prompt": "on the bench",
    }
    result = sdk(base).pixelflows.run(
        workflow_url=f"{base}/workflows/{WORKFLOW_ID}", data=data, poll_interval=0
    )
    assert result["status"] == "COMPLETED"
    output = result["output"]
    assert isinstance(output, list), "the SDK parses the JSON-string output"
    assert [entry["keyname"] for entry in output] == ["image"]
    assert output[0]["value"]["type"] == "image"
    fetch_image(output[0]["value"]["data"], base)
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
    app = make_app(faults=parse_faults("failed=1"), latency_s=1, clock=TickingClock())
    payload, _ = PAYLOADS["scenecraft"]
    job = sdk(serve(app)).submit_async("segmind-scenecraft-v01", **payload)
    with pytest.raises(InferenceFailed) as failed:
        job.wait(interval=0)
    assert failed.value.detail
    assert set(failed.value.status_body) == {"status", "error", "metrics"}
    assert failed.value.status_body["status"] == "FAILED"
    assert job.result()["status"] == "FAILED"
    assert simulator_of(app).state.charges == []


def test_files_upload(
    make_app: Any, serve: Serve, sdk: Connect, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``files.upload`` posts data URLs to its storage host (here the simulator) and reads
    ``file_urls``; the URLs serve the bytes, and a model takes them as its image."""
    app = make_app(latency_s=0, strict_urls=True)
    base = serve(app)
    monkeypatch.setattr(Files, "STORAGE_BASE_URL", base)
    product, room = tmp_path / "product.png", tmp_path / "room.jpg"
    product.write_bytes(png_bytes("teal"))
    room.write_bytes(png_bytes("tan"))
    client = sdk(base)
    uploaded = client.files.upload([product, room])
    assert list(uploaded) == ["file_urls", "message"]
    urls = uploaded["file_urls"]
    assert [url.rsplit(".", 1)[1] for url in urls] == ["png", "jpg"]
    assert httpx.get(urls[0]).content == product.read_bytes()
    assert client.files.upload(product)["file_urls"] == urls[:1]
    result = client.run_sync("segmind-scenecraft-v01", image=urls[0], prompt="a lamp")
    assert image_format(result.content) == "JPEG"
    assert simulator_of(app).state.upload_requests == 2


def test_generations_get_and_history(
    make_app: Any, serve: Serve, sdk: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``generations.get`` and ``generations.history`` work unchanged against the simulator's
    request history."""
    app = make_app(latency_s=0)
    base = serve(app)
    # The package's attribute of that name is a namespace object; the module is in sys.modules.
    generations = importlib.import_module("segmind.generations")
    monkeypatch.setattr(
        generations, "REQUEST_HISTORY_URL", f"{base}/inference-request/request-history"
    )
    client = sdk(base)
    payload, _ = PAYLOADS["scenecraft"]
    job = client.submit_async("segmind-scenecraft-v01", **payload)
    one = client.generations.get(job.request_id)
    assert one["request_id"] == job.request_id
    assert one["model_status"] == "COMPLETED"
    assert one["credits_deduction"] == 0.339
    assert one["request_body"] == payload
    fetch_image(one["generation_url"], base)
    listed = client.generations.history(per_page=10, model_name="scenecraft", status="COMPLETED")
    assert [row["request_id"] for row in listed["data"]] == [job.request_id]
    assert (listed["page"], listed["per_page"], listed["total"]) == (1, 10, 1)
    with pytest.raises(SegmindError) as missing:
        client.generations.get("no-such-request")
    assert missing.value.status == 404
