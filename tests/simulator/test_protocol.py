"""The simulator speaks Segmind's protocol: paths, auth, status codes, JSON shapes, billing and faults.

Every test talks HTTP: over a real loopback socket, and for the transport-parametrised ones also in
process through httpx's ASGI transport. Queued requests move on an injected clock, never by waiting.
Only fake keys are used; nothing reaches the real API.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

import engine.simulator.app
from engine.simulator import parse_faults
from tests.simulator.conftest import (
    KEY,
    QUIET,
    Connect,
    FakeClock,
    assert_error,
    base_of,
    charges,
    in_process,
    png_b64,
    simulator_of,
)

pytestmark = pytest.mark.anyio

SCENECRAFT_V1 = "/v1/segmind-scenecraft-v01"
SCENECRAFT_V2 = "/v2/segmind-scenecraft-v01"
SCIFI_V1 = "/v1/sd1.5-scifi"
SCIFI_V2 = "/v2/sd1.5-scifi"
WORKFLOW = "/workflows/6865fd064727e611dfa21d4f-v5"
SCENECRAFT_PRICE = 0.339
PRODUCT = png_b64()


def scenecraft(prompt: str = "a sofa in a sunlit loft") -> dict[str, Any]:
    return {"image": PRODUCT, "prompt": prompt}


class Decoded:
    """What Pillow makes of some bytes: the format it recognised and the size."""

    def __init__(self, data: bytes) -> None:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            self.format = image.format
            self.size = image.size


def decode_image(data: bytes) -> Decoded:
    return Decoded(data)


# --- v1 sync ---------------------------------------------------------------------------------------


async def test_v1_image_model_returns_jpeg_and_counts_down_credits(
    connect: Connect, make_app: Any
) -> None:
    app = make_app()
    async with connect(app) as client:
        remaining = []
        for prompt in ("first sofa", "second sofa"):
            response = await client.post(SCENECRAFT_V1, json=scenecraft(prompt), headers=KEY)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "image/jpeg"
            image = decode_image(response.content)
            assert image.format == "JPEG"
            # 1.5 MP at 16:9, the spec's defaults.
            assert image.size == (1664, 896)
            remaining.append(float(response.headers["x-remaining-credits"]))
        assert remaining[0] == pytest.approx(100 - SCENECRAFT_PRICE, abs=1e-4)
        assert remaining[0] - remaining[1] == pytest.approx(SCENECRAFT_PRICE, abs=1e-4)
        log = await charges(client)
    assert [(c["spec"], c["amount_usd"]) for c in log["charges"]] == [
        ("scenecraft", SCENECRAFT_PRICE)
    ] * 2
    assert log["balance_usd"] == pytest.approx(100 - 2 * SCENECRAFT_PRICE)
    assert len(simulator_of(app).state.charges) == 2


async def test_v1_is_also_served_on_the_v2_slug_path(connect: Connect, make_app: Any) -> None:
    async with connect(make_app()) as client:
        response = await client.post("/v1/ai-product-photography", json=scenecraft(), headers=KEY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert decode_image(response.content).format == "PNG"


async def test_v1_base64_answers_one_image_as_a_string(connect: Connect, make_app: Any) -> None:
    async with connect(make_app()) as client:
        payload = {"prompt": "a starship over a red planet", "base64": True}
        response = await client.post(SCIFI_V1, json=payload, headers=KEY)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert "x-remaining-credits" in response.headers
    body = response.json()
    assert list(body) == ["image", "status"]
    assert body["status"] == "Success"
    assert isinstance(body["image"], str)
    image = decode_image(base64.b64decode(body["image"], validate=True))
    assert (image.format, image.size) == ("PNG", (512, 512))


async def test_v1_base64_answers_several_images_as_a_list(connect: Connect, make_app: Any) -> None:
    async with connect(make_app()) as client:
        payload = {"prompt": "a starship over a red planet", "base64": True, "samples": 3}
        response = await client.post(SCIFI_V1, json=payload, headers=KEY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["image", "status"]
    assert body["status"] == "Success"
    assert len(body["image"]) == 3
    for encoded in body["image"]:
        image = decode_image(base64.b64decode(encoded, validate=True))
        assert (image.format, image.size) == ("PNG", (512, 512))


async def test_v1_without_base64_answers_image_bytes(connect: Connect, make_app: Any) -> None:
    """Segmind's v1 answers the image itself unless base64 is asked, a JSON model's too."""
    async with connect(make_app()) as client:
        response = await client.post(SCIFI_V1, json={"prompt": "a moon base"}, headers=KEY)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert "x-remaining-credits" in response.headers
    assert decode_image(response.content).format == "PNG"


async def test_result_urls_are_unique(make_app: Any, clock: FakeClock) -> None:
    """A result URL names one result: a later request must not reuse it (and so overwrite its image)."""
    async with in_process(make_app(images="tiny", latency_s=0, clock=clock)) as client:
        urls: list[str] = []
        for index in range(150):
            submitted = await client.post(
                SCIFI_V2, json={"prompt": f"station {index}", "samples": 2}, headers=KEY
            )
            result = (await client.get(submitted.json()["response_url"], headers=KEY)).json()
            urls.extend(result["images"])
    reused = sorted({url for url in urls if urls.count(url) > 1})
    assert len(urls) == 300
    assert reused == [], (
        f"{len(urls) - len(set(urls))} of {len(urls)} URLs reused, e.g. {reused[:2]}"
    )


# --- auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"x-api-key": ""}, id="empty-key"),
        pytest.param({"authorization": "Bearer"}, id="empty-bearer"),
    ],
)
async def test_missing_key_is_401(connect: Connect, make_app: Any, headers: dict[str, str]) -> None:
    app = make_app()
    async with connect(app) as client:
        answers = [
            await client.post(SCENECRAFT_V1, json=scenecraft(), headers=headers),
            await client.post(SCENECRAFT_V2, json=scenecraft(), headers=headers),
            await client.post(WORKFLOW, json={"Prompt": "x"}, headers=headers),
            await client.get("/v1/get-user-credits", headers=headers),
            await client.post(
                "/upload-asset", json={"data_urls": [f"data:image/png;base64,{PRODUCT}"]}
            ),
            await client.get("/inference-request/request-history", headers=headers),
            await client.get("/inference-request/request-history/some-id", headers=headers),
        ]
    for response in answers:
        assert_error(response, 401)
    assert simulator_of(app).state.charges == []
    assert simulator_of(app).state.requests == {}
    assert simulator_of(app).state.jobs == {}


async def test_wrong_key_is_401_and_both_headers_are_accepted(
    connect: Connect, make_app: Any
) -> None:
    """x-api-key everywhere (the SDK sends only it from 1.2, workflows included); Bearer too, as
    the workflow page's sample sends it."""
    app = make_app(key="secret")
    async with connect(app) as client:
        wrong = await client.post(
            SCENECRAFT_V1, json=scenecraft(), headers={"x-api-key": "sk-test"}
        )
        wrong_bearer = await client.post(
            SCENECRAFT_V1, json=scenecraft(), headers={"authorization": "Bearer nope"}
        )
        right = await client.post(SCENECRAFT_V1, json=scenecraft(), headers={"x-api-key": "secret"})
        bearer = await client.post(
            SCENECRAFT_V1, json=scenecraft(), headers={"Authorization": "Bearer secret"}
        )
        flow_bearer = await client.post(
            WORKFLOW, json={"Prompt": "x"}, headers={"Authorization": "Bearer secret"}
        )
        flow_key = await client.post(
            WORKFLOW, json={"Prompt": "y"}, headers={"x-api-key": "secret"}
        )
        flow_wrong = await client.post(
            WORKFLOW, json={"Prompt": "z"}, headers={"x-api-key": "sk-test"}
        )
        poll = await client.get(flow_key.json()["poll_url"], headers={"x-api-key": "secret"})
    assert_error(wrong, 401)
    assert_error(wrong_bearer, 401)
    assert_error(flow_wrong, 401)
    assert right.status_code == 200
    assert bearer.status_code == 200
    assert flow_bearer.status_code == 200
    assert flow_key.status_code == 200
    assert poll.status_code == 200
    assert [c.spec_id for c in simulator_of(app).state.charges].count("scenecraft") == 2


async def test_polling_needs_the_key_too(connect: Connect, make_app: Any) -> None:
    async with connect(make_app(key="secret", latency_s=0)) as client:
        submitted = (
            await client.post(SCENECRAFT_V2, json=scenecraft(), headers={"x-api-key": "secret"})
        ).json()
        flow = (
            await client.post(WORKFLOW, json={"Prompt": "x"}, headers={"x-api-key": "secret"})
        ).json()
        assert_error(await client.get(submitted["status_url"]), 401)
        assert_error(
            await client.get(submitted["response_url"], headers={"x-api-key": "wrong"}), 401
        )
        assert_error(await client.get(submitted["poll_url"]), 401)
        assert_error(await client.get(flow["poll_url"]), 401)
        ok = await client.get(submitted["status_url"], headers={"authorization": "Bearer secret"})
    assert ok.status_code == 200


# --- 404 -------------------------------------------------------------------------------------------


async def test_unknown_model_and_unknown_paths_are_404(connect: Connect, make_app: Any) -> None:
    app = make_app()
    async with connect(app) as client:
        answers = [
            await client.post("/v1/no-such-model", json={"prompt": "x"}, headers=KEY),
            await client.post("/v2/no-such-model", json={"prompt": "x"}, headers=KEY),
            await client.post("/workflows/no-such-workflow", json={}, headers=KEY),
            await client.get("/no/such/path", headers=KEY),
            await client.post("/v3/segmind-scenecraft-v01", json=scenecraft(), headers=KEY),
            await client.get("/files/nothing-here.png"),
        ]
    for response in answers:
        assert_error(response, 404)
    assert simulator_of(app).state.charges == []


async def test_unknown_request_id_is_404(connect: Connect, make_app: Any) -> None:
    async with connect(make_app()) as client:
        for path in (
            "/v2/requests/nope/status",
            "/v2/requests/nope",
            "/v1/requests/nope",
            "/workflows/request/nope",
        ):
            assert_error(await client.get(path, headers=KEY), 404)


async def test_the_old_plural_workflow_poll_path_is_gone(connect: Connect, make_app: Any) -> None:
    async with connect(make_app(latency_s=0)) as client:
        submitted = (await client.post(WORKFLOW, json={"Prompt": "x"}, headers=KEY)).json()
        request_id = submitted["request_id"]
        assert_error(await client.get(f"/workflows/requests/{request_id}", headers=KEY), 404)
        assert (
            await client.get(f"/workflows/request/{request_id}", headers=KEY)
        ).status_code == 200


# --- 400 -------------------------------------------------------------------------------------------


async def test_bad_bodies_are_400(connect: Connect, make_app: Any) -> None:
    app = make_app(latency_s=0)
    headers = {**KEY, "content-type": "application/json"}
    async with connect(app) as client:
        for path in (SCENECRAFT_V1, SCENECRAFT_V2):
            not_json = await client.post(path, content=b'{"prompt": "unterminated', headers=headers)
            not_object = await client.post(path, content=b'["a", "list"]', headers=headers)
            off_spec = await client.post(path, json={**scenecraft(), "steps": 500}, headers=KEY)
            missing = await client.post(path, json={"prompt": "no image"}, headers=KEY)
            unknown = await client.post(path, json={**scenecraft(), "stepz": 10}, headers=KEY)
            assert_error(not_json, 400)
            assert_error(not_object, 400)
            assert "steps" in assert_error(off_spec, 400)
            assert "500" in off_spec.json()["error"]
            assert "image" in assert_error(missing, 400)
            assert "stepz" in assert_error(unknown, 400)
    assert simulator_of(app).state.charges == []
    assert simulator_of(app).state.requests == {}
    assert simulator_of(app).state.jobs == {}


async def test_bad_workflow_payload_is_400(connect: Connect, make_app: Any) -> None:
    async with connect(make_app()) as client:
        response = await client.post(WORKFLOW, json={"Prompt": 42}, headers=KEY)
    assert "Prompt" in assert_error(response, 400)


# --- 406 -------------------------------------------------------------------------------------------


async def test_v1_is_406_once_the_balance_cannot_pay(connect: Connect, make_app: Any) -> None:
    app = make_app(balance_usd=0.5)
    async with connect(app) as client:
        first = await client.post(SCENECRAFT_V1, json=scenecraft("one"), headers=KEY)
        second = await client.post(SCENECRAFT_V1, json=scenecraft("two"), headers=KEY)
        log = await charges(client)
    assert first.status_code == 200
    assert float(first.headers["x-remaining-credits"]) == pytest.approx(
        0.5 - SCENECRAFT_PRICE, abs=1e-4
    )
    assert_error(second, 406)
    assert float(second.headers["x-remaining-credits"]) == pytest.approx(
        0.5 - SCENECRAFT_PRICE, abs=1e-4
    )
    assert len(log["charges"]) == 1


async def test_v2_submit_is_406_when_queued_jobs_reserve_the_balance(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    # The clock stands still: the queued jobs stay unfinished (reserved, unbilled) however long
    # the test takes.
    app = make_app(balance_usd=0.5, latency_s=30, clock=clock)
    async with connect(app) as client:
        first = await client.post(SCENECRAFT_V2, json=scenecraft("one"), headers=KEY)
        second = await client.post(SCENECRAFT_V2, json=scenecraft("two"), headers=KEY)
        sync = await client.post(SCENECRAFT_V1, json=scenecraft("three"), headers=KEY)
        # What is left after the reservation still pays for a cheaper model.
        cheap = await client.post(
            "/v2/ai-product-photography", json=scenecraft("four"), headers=KEY
        )
        log = await charges(client)
    assert first.status_code == 200
    assert_error(second, 406)
    assert_error(sync, 406)
    assert cheap.status_code == 200
    assert log == {"balance_usd": 0.5, "charges": [], **QUIET}
    assert len(simulator_of(app).state.requests) == 2


async def test_concurrent_v1_calls_cannot_overdraw_the_balance(
    connect: Connect, make_app: Any
) -> None:
    """A sync call in flight holds its price as a queued v2 job does: 0.5 pays for one scenecraft call,
    so of three sent at once one is served and two are refused with 406, and the balance never goes
    below zero.
    """
    app = make_app(balance_usd=0.5, latency_s=0.2)
    async with connect(app) as client:

        async def call(index: int, into: list[httpx.Response]) -> None:
            into.append(
                await client.post(SCENECRAFT_V1, json=scenecraft(f"sofa {index}"), headers=KEY)
            )

        responses: list[httpx.Response] = []
        async with anyio.create_task_group() as group:
            for index in range(3):
                group.start_soon(call, index, responses)
        log = await charges(client)
    assert sorted(r.status_code for r in responses) == [200, 406, 406]
    assert len(log["charges"]) == 1
    assert log["balance_usd"] >= 0


# --- injected faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502", "504", "406"])
async def test_injected_error_is_served_and_not_charged(
    connect: Connect, make_app: Any, kind: str
) -> None:
    app = make_app(faults=parse_faults(f"{kind}=1"), retry_after_s=7, latency_s=0)
    async with connect(app) as client:
        for path in (SCENECRAFT_V1, SCENECRAFT_V2, WORKFLOW):
            payload = {"Prompt": "on a bench"} if path == WORKFLOW else scenecraft()
            response = await client.post(path, json=payload, headers=KEY)
            assert_error(response, int(kind))
            assert "retry-after" not in response.headers
            assert "x-rate-limit-reset-at-utc" not in response.headers
            assert float(response.headers["x-remaining-credits"]) == pytest.approx(100.0)
        log = await charges(client)
    assert log == {"balance_usd": 100.0, "charges": [], **QUIET}
    assert simulator_of(app).state.charges == []
    assert simulator_of(app).state.requests == {}
    assert simulator_of(app).state.jobs == {}


async def test_faults_come_after_auth_and_validation(connect: Connect, make_app: Any) -> None:
    async with connect(make_app(faults=parse_faults("500=1"))) as client:
        assert_error(await client.post(SCENECRAFT_V1, json=scenecraft()), 401)
        assert_error(await client.post(SCENECRAFT_V1, json={"prompt": "x"}, headers=KEY), 400)
        assert_error(await client.post(SCENECRAFT_V1, json=scenecraft(), headers=KEY), 500)


def test_dropped_sync_connection_is_still_charged(
    make_app: Any, serve: Callable[[Starlette], str]
) -> None:
    """The ambiguous outcome: the client sees a broken connection, the server finished and billed."""
    app = make_app(faults=parse_faults("drop=1"))
    base = serve(app)
    body = json.dumps(scenecraft("a dropped sofa")).encode()
    with httpx.Client(base_url=base, headers={**KEY, "content-type": "application/json"}) as client:
        with pytest.raises(httpx.TransportError):
            client.post(SCENECRAFT_V1, content=body)
        log = client.get("/_simulator/charges").json()
    assert len(log["charges"]) == 1
    assert log["charges"][0]["spec"] == "scenecraft"
    assert log["charges"][0]["amount_usd"] == SCENECRAFT_PRICE
    assert log["balance_usd"] == pytest.approx(100 - SCENECRAFT_PRICE)
    assert simulator_of(app).state.charges[0].payload_sha256 == hashlib.sha256(body).hexdigest()


def test_dropped_v2_submit_still_runs_and_bills(
    make_app: Any, serve: Callable[[Starlette], str], clock: FakeClock
) -> None:
    app = make_app(faults=parse_faults("drop=1"), latency_s=0.1, clock=clock)
    base = serve(app)
    with httpx.Client(base_url=base, headers=KEY) as client:
        with pytest.raises(httpx.TransportError):
            client.post(SCENECRAFT_V2, json=scenecraft())
        assert client.get("/_simulator/charges").json()["charges"] == []
        clock.advance(0.1)
        log = client.get("/_simulator/charges").json()
    assert [c["spec"] for c in log["charges"]] == ["scenecraft"]


class _RecordedSleeps:
    """asyncio as the simulator's handlers see it, but their sleeps are recorded, not waited out."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


async def test_slow_fault_adds_its_delay(
    connect: Connect, make_app: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sync call takes its latency in real time (the handler sleeps: that is what a client waits
    # on), not on the injected clock: the sleep it asks for is recorded instead of waited for.
    sleeps = _RecordedSleeps()
    monkeypatch.setattr(engine.simulator.app, "asyncio", sleeps)
    app = make_app(faults=parse_faults("slow=1"), slow_extra_s=0.25, latency_s=0.05, clock=clock)
    async with connect(app) as client:
        sync = await client.post(SCENECRAFT_V1, json=scenecraft(), headers=KEY)
        submitted = (await client.post(SCENECRAFT_V2, json=scenecraft(), headers=KEY)).json()
        clock.advance(0.299)
        running = await client.get(submitted["status_url"], headers=KEY)
        clock.advance(0.001)
        result = await client.get(submitted["response_url"], headers=KEY)
    assert sync.status_code == 200
    assert sleeps.slept == [pytest.approx(0.3)]
    assert running.json()["status"] == "PROCESSING"
    assert result.json()["metrics"] == {"inference_time": 0.27, "queue_time": 0.03}


# --- v2 async --------------------------------------------------------------------------------------


async def test_v2_lifecycle(connect: Connect, make_app: Any, clock: FakeClock) -> None:
    app = make_app(latency_s=10, clock=clock)
    async with connect(app) as client:
        base = base_of(client)
        submit = await client.post(SCENECRAFT_V2, json=scenecraft(), headers=KEY)
        assert submit.status_code == 200
        assert "x-remaining-credits" in submit.headers
        body = submit.json()
        request_id = body["request_id"]
        assert isinstance(request_id, str)
        assert request_id
        assert body == {
            "request_id": request_id,
            "status": "QUEUED",
            "poll_url": f"{base}/v1/requests/{request_id}",
            "status_url": f"{base}/v2/requests/{request_id}/status",
            "response_url": f"{base}/v2/requests/{request_id}",
        }

        # QUEUED for the first tenth of the latency, then PROCESSING, then COMPLETED.
        clock.advance(0.5)
        queued = await client.get(body["status_url"], headers=KEY)
        assert queued.json() == {
            "status": "QUEUED",
            "request_id": request_id,
            "metrics": {"queue_time": 0.5},
        }
        early = await client.get(body["response_url"], headers=KEY)
        assert early.status_code == 200
        assert early.json() == queued.json()
        clock.advance(4.5)
        processing = await client.get(body["status_url"], headers=KEY)
        assert processing.json() == {
            "status": "PROCESSING",
            "request_id": request_id,
            "metrics": {"queue_time": 1.0},
        }
        clock.advance(5)
        done = await client.get(body["status_url"], headers=KEY)
        assert done.status_code == 200
        assert done.json() == {
            "status": "COMPLETED",
            "request_id": request_id,
            "metrics": {"inference_time": 9.0, "queue_time": 1.0},
        }

        result = await client.get(body["response_url"], headers=KEY)
        assert result.status_code == 200
        data = result.json()
        assert data == {
            "status": "COMPLETED",
            "request_id": request_id,
            "output": data["output"],
            "metrics": {"inference_time": 9.0, "queue_time": 1.0},
        }
        assert data["output"].startswith(base + "/files/")
        image = await client.get(data["output"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg"
        assert decode_image(image.content).format == "JPEG"
        # The poll URL answers as the result URL; fetching again bills nothing more.
        assert (await client.get(body["poll_url"], headers=KEY)).json() == data
        assert (await client.get(body["response_url"], headers=KEY)).json() == data
        log = await charges(client)
    assert [(c["request_id"], c["amount_usd"]) for c in log["charges"]] == [
        (request_id, SCENECRAFT_PRICE)
    ]


async def test_v2_charge_appears_when_the_job_completes_even_unpolled(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=0.3, clock=clock)
    async with connect(app) as client:
        request_id = (await client.post(SCENECRAFT_V2, json=scenecraft(), headers=KEY)).json()[
            "request_id"
        ]
        assert await charges(client) == {"balance_usd": 100.0, "charges": [], **QUIET}
        clock.advance(0.3)
        log = await charges(client)
        credits = (await client.get("/v1/get-user-credits", headers=KEY)).json()
    assert [(c["request_id"], c["spec"], c["amount_usd"]) for c in log["charges"]] == [
        (request_id, "scenecraft", SCENECRAFT_PRICE)
    ]
    assert log["balance_usd"] == pytest.approx(100 - SCENECRAFT_PRICE)
    assert credits["credits"] == pytest.approx(100 - SCENECRAFT_PRICE)


async def test_v2_several_samples_answer_every_url(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    """``output`` is the first image's URL; ``images`` lists them all (base64 or not: v2 answers
    URLs)."""
    async with connect(make_app(latency_s=0, clock=clock)) as client:
        base = base_of(client)
        several = await client.post(
            SCIFI_V2, json={"prompt": "a ring world", "base64": True, "samples": 2}, headers=KEY
        )
        one = await client.post(SCIFI_V2, json={"prompt": "a ring world"}, headers=KEY)
        results = [
            (await client.get(r.json()["response_url"], headers=KEY)).json() for r in (several, one)
        ]
        fetched = [
            decode_image((await client.get(url)).content).format for url in results[0]["images"]
        ]
    assert set(results[0]) == {"status", "request_id", "output", "images", "metrics"}
    assert len(results[0]["images"]) == 2
    assert results[0]["output"] == results[0]["images"][0]
    assert all(url.startswith(base + "/files/") for url in results[0]["images"])
    assert fetched == ["PNG", "PNG"]
    assert set(results[1]) == {"status", "request_id", "output", "metrics"}


async def test_v2_failed_job_is_422_and_not_charged(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(faults=parse_faults("failed=1"), latency_s=2, clock=clock)
    async with connect(app) as client:
        submit = await client.post(SCENECRAFT_V2, json=scenecraft(), headers=KEY)
        assert submit.status_code == 200
        submitted = submit.json()
        running = await client.get(submitted["status_url"], headers=KEY)
        clock.advance(2)
        answers = [
            await client.get(submitted[name], headers=KEY)
            for name in ("status_url", "response_url", "poll_url")
        ]
        log = await charges(client)
    assert running.status_code == 200
    for response in answers:
        assert response.status_code == 422
        body = response.json()
        assert body == {
            "status": "FAILED",
            "error": body["error"],
            "metrics": {"inference_time": 1.8, "queue_time": 0.2},
        }
        assert isinstance(body["error"], str)
        assert body["error"]
    assert log == {"balance_usd": 100.0, "charges": [], **QUIET}
    assert simulator_of(app).state.charges == []


# --- workflow --------------------------------------------------------------------------------------


async def test_workflow_lifecycle(connect: Connect, make_app: Any, clock: FakeClock) -> None:
    app = make_app(latency_s=10, clock=clock)
    async with connect(app) as client:
        base = base_of(client)
        payload = {
            "Character": png_b64("navy"),
            "Scene": png_b64("green", background="green"),
            "Prompt": "sitting on the bench",
        }
        submit = await client.post(WORKFLOW, json=payload, headers=KEY)
        assert submit.status_code == 200, submit.text
        body = submit.json()
        request_id = body["request_id"]
        assert body == {
            "message": body["message"],
            "poll_url": f"{base}/workflows/request/{request_id}",
            "request_id": request_id,
            "status": "QUEUED",
        }
        assert isinstance(body["message"], str)

        queued = await client.get(body["poll_url"], headers=KEY)
        assert queued.json() == {"output": "", "status": "QUEUED"}
        clock.advance(1)
        processing = await client.get(body["poll_url"], headers=KEY)
        assert processing.json() == {"output": "", "status": "PROCESSING"}
        clock.advance(9)
        last = await client.get(body["poll_url"], headers=KEY)
        assert last.status_code == 200
        data = last.json()
        assert list(data) == ["output", "status"]
        assert data["status"] == "COMPLETED"
        assert isinstance(data["output"], str)
        output = json.loads(data["output"])
        assert output == [
            {"keyname": "image", "value": {"data": output[0]["value"]["data"], "type": "image"}}
        ]
        url = output[0]["value"]["data"]
        assert url.startswith(base + "/files/")
        image = await client.get(url)
        assert image.status_code == 200
        assert image.headers["content-type"].startswith("image/")
        decode_image(image.content)
        log = await charges(client)
    assert [(c["request_id"], c["spec"], c["amount_usd"]) for c in log["charges"]] == [
        (request_id, "consistent-character", 0.1224)
    ]


async def test_failed_workflow_reports_failed_and_is_not_charged(
    connect: Connect, make_app: Any
) -> None:
    app = make_app(faults=parse_faults("failed=1"), latency_s=0)
    async with connect(app) as client:
        submitted = (await client.post(WORKFLOW, json={"Prompt": "x"}, headers=KEY)).json()
        last = await client.get(submitted["poll_url"], headers=KEY)
        log = await charges(client)
    assert last.status_code == 200
    body = last.json()
    assert body == {"error_message": body["error_message"], "status": "FAILED"}
    assert isinstance(body["error_message"], str)
    assert body["error_message"]
    assert log["charges"] == []


# --- credits ---------------------------------------------------------------------------------------


async def test_user_credits(connect: Connect, make_app: Any) -> None:
    async with connect(make_app(balance_usd=12.5)) as client:
        before = await client.get("/v1/get-user-credits", headers=KEY)
        await client.post(SCENECRAFT_V1, json=scenecraft(), headers=KEY)
        after = await client.get(
            "/v1/get-user-credits", headers={"authorization": "Bearer sk-test"}
        )
        assert_error(await client.get("/v1/get-user-credits"), 401)
    assert before.status_code == 200
    assert before.json() == {"credits": 12.5, "free-credits": 0.0}
    assert isinstance(before.json()["credits"], float)
    assert after.json()["credits"] == pytest.approx(12.5 - SCENECRAFT_PRICE)
    assert isinstance(after.json()["free-credits"], float)


# --- determinism and rates -------------------------------------------------------------------------


async def fault_sequence(app: Starlette, count: int) -> list[int]:
    async with in_process(app) as client:
        return [
            (
                await client.post(SCIFI_V1, json={"prompt": f"payload {index}"}, headers=KEY)
            ).status_code
            for index in range(count)
        ]


async def test_faults_are_deterministic_under_a_seed(make_app: Any) -> None:
    faults = parse_faults("429=0.3,500=0.2")
    options = {"faults": faults, "latency_s": 0, "images": "tiny"}
    first = await fault_sequence(make_app(seed=11, **options), 60)
    again = await fault_sequence(make_app(seed=11, **options), 60)
    other = await fault_sequence(make_app(seed=12, **options), 60)
    assert first == again
    assert set(first) == {200, 429, 500}
    assert other != first


async def test_fault_rates_match_the_asked_rates(make_app: Any) -> None:
    asked = {429: 0.2, 500: 0.1, 502: 0.05, 504: 0.05, 406: 0.1}
    faults = parse_faults(",".join(f"{code}={rate}" for code, rate in asked.items()))
    app = make_app(faults=faults, latency_s=0, images="tiny", seed=3)
    total = 2000
    codes = await fault_sequence(app, total)
    for code, rate in asked.items():
        assert codes.count(code) / total == pytest.approx(rate, abs=0.03), code
    assert codes.count(200) / total == pytest.approx(1 - sum(asked.values()), abs=0.03)
    # Only the successes were billed (sd1.5-scifi is unpriced: each charge is 0).
    assert len(simulator_of(app).state.charges) == codes.count(200)
    assert simulator_of(app).state.rate_limited == codes.count(429)


async def test_failed_rate_over_v2(make_app: Any) -> None:
    app = make_app(faults=parse_faults("failed=0.25"), latency_s=0, images="tiny", seed=5)
    total = 600
    failed = 0
    async with in_process(app) as client:
        for index in range(total):
            submitted = (
                await client.post(SCIFI_V2, json={"prompt": f"job {index}"}, headers=KEY)
            ).json()
            status = await client.get(submitted["status_url"], headers=KEY)
            failed += status.status_code == 422
    assert failed / total == pytest.approx(0.25, abs=0.05)


async def test_a_retry_is_its_own_attempt(connect: Connect, make_app: Any) -> None:
    app = make_app(faults=parse_faults("429=0.5"), latency_s=0, images="tiny", seed=7)
    config = simulator_of(app).config
    # Find a payload whose first attempt is limited and whose second is not.
    for index in range(200):
        body = json.dumps({"prompt": f"retry me {index}"}).encode()
        if config.fault(SCIFI_V1, body, 0) == "429" and config.fault(SCIFI_V1, body, 1) is None:
            break
    else:
        pytest.fail("no payload limited at attempt 0 and free at attempt 1")
    headers = {**KEY, "content-type": "application/json"}
    async with connect(app) as client:
        first = await client.post(SCIFI_V1, content=body, headers=headers)
        second = await client.post(SCIFI_V1, content=body, headers=headers)
    assert_error(first, 429)
    assert second.status_code == 200
    assert list(simulator_of(app).state.attempts.values()) == [2]
    assert len(simulator_of(app).state.charges) == 1
