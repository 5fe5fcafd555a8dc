"""Segmind Storage in the simulator: ``POST /upload-asset`` takes data URLs and answers asset URLs
(content-addressed), ``GET /assets/{name}`` serves them without a key, the preview reads an uploaded
image, and ``strict_urls`` refuses base64 where an endpoint takes a URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest

from engine.simulator.storage import asset_name
from tests.simulator.conftest import (
    KEY,
    Connect,
    assert_error,
    base_of,
    charges,
    in_process,
    png_b64,
    png_bytes,
    simulator_of,
)

pytestmark = pytest.mark.anyio

SCENECRAFT_V1 = "/v1/segmind-scenecraft-v01"
SCENECRAFT_V2 = "/v2/segmind-scenecraft-v01"
WORKFLOW = "/workflows/6865fd064727e611dfa21d4f-v5"


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


async def upload(client: httpx.AsyncClient, *urls: str) -> httpx.Response:
    return await client.post("/upload-asset", json={"data_urls": list(urls)}, headers=KEY)


# --- uploads ---------------------------------------------------------------------------------------


async def test_an_upload_answers_content_addressed_urls(connect: Connect, make_app: Any) -> None:
    app = make_app()
    orange, teal = png_bytes("orange"), png_bytes("teal")
    async with connect(app) as client:
        base = base_of(client)
        first = await upload(client, data_url(orange), data_url(teal, "image/jpeg"))
        again = await upload(client, data_url(orange))
        served = await client.get(first.json()["file_urls"][0])
        log = await charges(client)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "file_urls": [
            f"{base}/assets/{hashlib.sha256(orange).hexdigest()}.png",
            f"{base}/assets/{hashlib.sha256(teal).hexdigest()}.jpg",
        ],
        "message": first.json()["message"],
    }
    assert isinstance(first.json()["message"], str)
    # The same bytes, the same URL.
    assert again.json()["file_urls"] == first.json()["file_urls"][:1]
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == orange
    # Uploads are counted, never billed.
    assert log["uploads"] == {"requests": 2, "assets": 2}
    assert log["charges"] == []
    assert log["balance_usd"] == 100.0


async def test_the_docs_spelling_urls_can_be_asked_for(connect: Connect, make_app: Any) -> None:
    async with connect(make_app(upload_answer_key="urls")) as client:
        response = await upload(client, data_url(png_bytes()))
    assert list(response.json()) == ["urls", "message"]
    assert len(response.json()["urls"]) == 1


async def test_assets_are_public_and_unknown_ones_404(connect: Connect, make_app: Any) -> None:
    async with connect(make_app()) as client:
        url = (await upload(client, data_url(png_bytes()))).json()["file_urls"][0]
        public = await client.get(url)
        missing = await client.get(f"/assets/{'0' * 64}.png")
    assert public.status_code == 200
    assert_error(missing, 404)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'["data:image/png;base64,aGk="]', id="a-bare-list"),
        pytest.param(b'{"data_urls": "data:image/png;base64,aGk="}', id="a-string"),
        pytest.param(b'{"data_urls": []}', id="empty"),
        pytest.param(b'{"urls": ["data:image/png;base64,aGk="]}', id="wrong-key"),
        pytest.param(b'{"data_urls": [42]}', id="not-a-string"),
        pytest.param(b'{"data_urls": ["https://example.com/a.png"]}', id="a-url"),
        pytest.param(b'{"data_urls": ["data:text/plain;base64,aGk="]}', id="not-an-image"),
        pytest.param(b'{"data_urls": ["data:image/png,raw-bytes"]}', id="not-base64-marked"),
        pytest.param(b'{"data_urls": ["data:image/png;base64,!!not base64!!"]}', id="bad-base64"),
        pytest.param(b'{"data_urls": ["data:image/png;base64,"]}', id="no-data"),
        pytest.param(b'{"data_urls": ["aGVsbG8="]}', id="bare-base64"),
    ],
)
async def test_bad_uploads_are_400(connect: Connect, make_app: Any, body: bytes) -> None:
    app = make_app()
    async with connect(app) as client:
        response = await client.post(
            "/upload-asset", content=body, headers={**KEY, "content-type": "application/json"}
        )
        log = await charges(client)
    assert_error(response, 400)
    assert log["uploads"] == {"requests": 0, "assets": 0}


async def test_one_bad_data_url_stores_nothing(connect: Connect, make_app: Any) -> None:
    app = make_app()
    async with connect(app) as client:
        response = await upload(client, data_url(png_bytes()), "data:image/png;base64,@@")
    assert "data_urls[1]" in assert_error(response, 400)
    assert simulator_of(app).state.assets == {}


async def test_an_upload_needs_a_key(connect: Connect, make_app: Any) -> None:
    async with connect(make_app(key="secret")) as client:
        body = {"data_urls": [data_url(png_bytes())]}
        none = await client.post("/upload-asset", json=body)
        wrong = await client.post("/upload-asset", json=body, headers={"x-api-key": "nope"})
        right = await client.post("/upload-asset", json=body, headers={"x-api-key": "secret"})
    assert_error(none, 401)
    assert_error(wrong, 401)
    assert right.status_code == 200


def test_asset_names_carry_the_media_types_extension() -> None:
    data = b"\x89PNG"
    digest = hashlib.sha256(data).hexdigest()
    assert asset_name(data, "image/png") == f"{digest}.png"
    assert asset_name(data, "image/jpeg") == f"{digest}.jpg"
    assert asset_name(data, "image/webp") == f"{digest}.webp"


# --- the preview reads an upload -------------------------------------------------------------------


async def test_the_preview_uses_an_uploaded_image(make_app: Any) -> None:
    """An asset URL, on any host, stands for its bytes: the preview is the one base64 input gives;
    a URL the simulator does not hold stays a placeholder."""
    async with in_process(make_app(latency_s=0)) as client:
        url = (await upload(client, data_url(png_bytes()))).json()["file_urls"][0]
        name = url.rsplit("/", 1)[1]
        answers = {}
        for label, image in (
            ("inline", png_b64()),
            ("uploaded", url),
            ("cdn", f"https://images.segmind.com/assets/{name}"),
            ("unknown", f"https://images.segmind.com/assets/{'0' * 64}.png"),
        ):
            response = await client.post(
                SCENECRAFT_V1, json={"image": image, "prompt": "a lamp"}, headers=KEY
            )
            assert response.status_code == 200, response.text
            answers[label] = response.content
    assert answers["uploaded"] == answers["inline"]
    assert answers["cdn"] == answers["inline"]
    assert answers["unknown"] != answers["inline"]


async def test_a_queued_job_and_a_workflow_read_uploads_too(make_app: Any) -> None:
    async with in_process(make_app(latency_s=0)) as client:
        navy, green = png_bytes("navy"), png_bytes("green")
        urls = (await upload(client, data_url(navy), data_url(green))).json()["file_urls"]
        inline = {"Character": png_b64("navy"), "Scene": png_b64("green"), "Prompt": "p"}
        uploaded = {"Character": urls[0], "Scene": urls[1], "Prompt": "p"}
        images = []
        for payload in (inline, uploaded):
            submitted = (await client.post(WORKFLOW, json=payload, headers=KEY)).json()
            poll = (await client.get(submitted["poll_url"], headers=KEY)).json()
            output = json.loads(poll["output"])
            images.append((await client.get(output[0]["value"]["data"])).content)
        scene = {"image": urls[0], "prompt": "a lamp"}
        submitted = (await client.post(SCENECRAFT_V2, json=scene, headers=KEY)).json()
        result = (await client.get(submitted["response_url"], headers=KEY)).json()
        queued = (await client.get(result["output"])).content
        direct = await client.post(
            SCENECRAFT_V1, json={**scene, "image": png_b64("navy")}, headers=KEY
        )
    assert images[0] == images[1]
    assert queued == direct.content


# --- strict URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "param", "payload"),
    [
        (SCENECRAFT_V1, "image", {"prompt": "a lamp"}),
        (SCENECRAFT_V2, "image", {"prompt": "a lamp"}),
        ("/v1/ai-product-photography", "image", {"prompt": "a lamp"}),
        (WORKFLOW, "Character", {"Prompt": "p"}),
        (WORKFLOW, "Scene", {"Prompt": "p"}),
    ],
)
@pytest.mark.parametrize("form", ["base64", "data-uri"])
async def test_strict_urls_refuse_base64_in_a_url_parameter(
    connect: Connect, make_app: Any, path: str, param: str, payload: dict[str, Any], form: str
) -> None:
    app = make_app(strict_urls=True, latency_s=0)
    inline = png_b64() if form == "base64" else f"data:image/png;base64,{png_b64()}"
    async with connect(app) as client:
        response = await client.post(path, json={**payload, param: inline}, headers=KEY)
    message = assert_error(response, 400)
    assert f"'{param}'" in message
    assert "upload" in message
    assert "URL" in message
    assert simulator_of(app).state.charges == []
    assert simulator_of(app).state.jobs == {}


async def test_strict_urls_take_urls_and_base64_where_base64_is_wanted(
    connect: Connect, make_app: Any
) -> None:
    app = make_app(strict_urls=True, latency_s=0)
    async with connect(app) as client:
        url = (await upload(client, data_url(png_bytes()))).json()["file_urls"][0]
        scene = await client.post(
            SCENECRAFT_V1, json={"image": url, "prompt": "a lamp"}, headers=KEY
        )
        elsewhere = await client.post(
            SCENECRAFT_V1,
            json={"image": "https://example.com/lamp.png", "prompt": "a lamp"},
            headers=KEY,
        )
        flow = await client.post(WORKFLOW, json={"Character": url, "Prompt": "p"}, headers=KEY)
        # furniture-staging's images are encoding: base64 on purpose.
        staging = await client.post(
            "/v1/furniture-staging",
            json={
                "prompt": "a staged room",
                "main_image": png_b64("tan", background="beige"),
                "overlay_image": png_b64("navy"),
                "main_image_mask": f"data:image/png;base64,{png_b64('white')}",
                "steps": 10,
                "seed": 42,
                "guidance": 5,
                "image_format": "jpeg",
                "image_quality": 80,
            },
            headers=KEY,
        )
    for response in (scene, elsewhere, flow, staging):
        assert response.status_code == 200, response.text


async def test_without_strict_urls_base64_is_taken(connect: Connect, make_app: Any) -> None:
    async with connect(make_app(latency_s=0)) as client:
        response = await client.post(
            SCENECRAFT_V1, json={"image": png_b64(), "prompt": "a lamp"}, headers=KEY
        )
    assert response.status_code == 200
