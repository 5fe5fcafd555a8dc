"""The client reads every shape the real API is known to answer (SEGMIND.md, "beyond the pages"),
including those our simulator does not produce, served here by small apps in process.

Outputs as a string or a list, `images: [...]`, a workflow's keyname list, v1's `{"image": ...}`,
image bytes under a generic content type; 406s about credits or about a parameter; 405 and 410;
uploads answered `file_urls` or `urls`; rate-limit reset times in three formats; and the key sent
to Segmind's three hosts only.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.client import (
    MAX_RATE_WAIT_S,
    SegmindClient,
    Submitted,
    reset_wait,
)
from engine.errors import Abort, Ambiguous, JobFailed, Retryable
from engine.specs import load_spec
from tests.helpers import ROOT

T = TypeVar("T")
PNG = (ROOT / "recipes" / "images" / "sofa.png").read_bytes()
B64 = base64.b64encode(PNG).decode()
NOW = dt.datetime(2026, 11, 30, 18, 0, 0, tzinfo=dt.UTC)


def serve(routes: dict[str, Callable[[Request], Awaitable[Response]]]) -> Starlette:
    return Starlette(
        routes=[Route(path, handler, methods=["GET", "POST"]) for path, handler in routes.items()]
    )


def call(app: Starlette, go: Callable[[SegmindClient], Awaitable[T]], **client: Any) -> T:
    async def run() -> T:
        segmind = SegmindClient(
            "http://api.test", "sk-shapes", transport=httpx.ASGITransport(app=app), **client
        )
        try:
            return await go(segmind)
        finally:
            await segmind.aclose()

    return asyncio.run(run())


def answer(
    body: Any, status: int = 200, **headers: str
) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        del request
        if isinstance(body, bytes):
            return Response(body, status, headers=headers)
        return JSONResponse(body, status, headers=headers)

    return handler


# --- rate limits: reset times in every format, capped ----------------------------------------


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"x-rate-limit-reset-at-utc": "2026-11-30T18:00:30Z"}, 30.0),
        ({"x-rate-limit-reset-at-utc": "2026-11-30T18:00:30"}, 30.0),  # no zone: UTC, as named
        ({"x-rate-limit-reset-at-utc": str(NOW.timestamp() + 12)}, 12.0),  # epoch seconds
        ({"x-rate-limit-reset-at-utc": str(int((NOW.timestamp() + 7) * 1000))}, 7.0),  # ms
        ({"x-rate-limit-reset-at-utc": "Mon, 30 Nov 2026 18:00:45 GMT"}, 45.0),  # HTTP-date
        ({"retry-after": "3"}, 3.0),
        (
            {
                "retry-after": email.utils.format_datetime(
                    NOW + dt.timedelta(seconds=9), usegmt=True
                )
            },
            9.0,
        ),
        ({"x-rate-limit-reset-at-utc": "2026-11-30T17:59:00Z"}, 0.0),  # already past
        ({"x-rate-limit-reset-at-utc": "2026-12-30T18:00:00Z"}, MAX_RATE_WAIT_S),  # capped
        ({"x-rate-limit-reset-at-utc": "soon"}, None),
        ({}, None),
    ],
)
def test_reset_times_are_read_in_every_format_and_capped(
    headers: dict[str, str], wait: float | None
) -> None:
    assert reset_wait(headers, NOW) == (pytest.approx(wait) if wait is not None else None)


def test_a_429_is_retryable_and_says_it_was_the_rate() -> None:
    reset = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)).isoformat()
    app = serve(
        {
            "/v2/sd1.5-scifi": answer(
                {"error": "Too many requests"}, 429, **{"x-rate-limit-reset-at-utc": reset}
            )
        }
    )
    with pytest.raises(Retryable) as caught:
        call(app, lambda c: c.send(load_spec("sd1.5-scifi"), b"{}"))
    assert caught.value.rate_limited
    assert 15 < (caught.value.retry_after or 0) <= 20


# --- every output a result carries ------------------------------------------------------------


def _result(body: dict[str, Any], spec_id: str = "scenecraft") -> Any:
    app = serve({"/v2/requests/r1": answer(body)})
    submitted = Submitted(
        "r1", "http://api.test/v2/requests/r1/status", "http://api.test/v2/requests/r1"
    )
    return call(app, lambda c: c.result(load_spec(spec_id), submitted))


def test_a_v2_result_keeps_every_image_once() -> None:
    finished = _result(
        {
            "status": "COMPLETED",
            "output": "https://files.test/a.png",
            "images": ["https://files.test/a.png", "https://files.test/b.png"],
            "metrics": {"inference_time": 3.5, "cost": 0.34},
        }
    )
    assert finished.urls == ("https://files.test/a.png", "https://files.test/b.png")
    assert (finished.charged_usd, finished.charge_source, finished.inference_s) == (
        0.34,
        "metrics.cost",
        3.5,
    )


def test_an_output_list_and_inline_base64_are_kept() -> None:
    finished = _result({"status": "COMPLETED", "output": ["https://files.test/a.png", B64]})
    assert finished.urls == ("https://files.test/a.png",)
    assert [o.extension for o in finished.outputs] == [".png"]


def test_a_workflows_keyname_list_names_its_images() -> None:
    output = json.dumps(
        [
            {
                "keyname": "Final",
                "value": {"data": "https://files.test/final.png", "type": "image"},
            },
            {"keyname": "Mask", "value": {"data": "https://files.test/mask.png", "type": "image"}},
        ]
    )
    app = serve({"/workflows/request/w1": answer({"status": "COMPLETED", "output": output})})
    submitted = Submitted(
        "w1", "http://api.test/workflows/request/w1", "http://api.test/workflows/request/w1"
    )
    spec = load_spec("consistent-character")

    async def go(client: SegmindClient) -> Any:
        polled = await client.status(spec, submitted)
        return await client.result(spec, submitted, polled)

    finished = call(app, go)
    assert finished.urls == ("https://files.test/final.png", "https://files.test/mask.png")


def test_a_failed_workflow_says_its_error_message() -> None:
    app = serve(
        {"/workflows/request/w1": answer({"status": "FAILED", "error_message": "face not found"})}
    )
    submitted = Submitted(
        "w1", "http://api.test/workflows/request/w1", "http://api.test/workflows/request/w1"
    )
    with pytest.raises(JobFailed, match=r"^face not found$"):
        call(app, lambda c: c.status(load_spec("consistent-character"), submitted))


def _sync(body: bytes | dict[str, Any], **headers: str) -> Any:
    spec = load_spec("sd1.5-scifi").model_copy(
        update={"protocol": "sync", "endpoint": "/v1/sd1.5-scifi"}
    )
    app = serve({"/v1/sd1.5-scifi": answer(body, **headers)})
    return call(app, lambda c: c.send(spec, b"{}"))


def test_v1_base64_answers_one_or_several_images() -> None:
    assert len(_sync({"image": B64, "status": "Success"}).outputs) == 1
    assert len(_sync({"image": [B64, B64], "status": "Success"}).outputs) == 2


def test_image_bytes_under_a_generic_content_type_are_an_image() -> None:
    finished = _sync(PNG, **{"content-type": "binary/octet-stream", "x-cost": "0.012"})
    assert [o.extension for o in finished.outputs] == [".png"]
    assert (finished.charged_usd, finished.charge_source) == (0.012, "x-cost")


# --- errors mean what they say ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "problem", "message"),
    [
        (406, {"error": "Insufficient credits"}, Abort, "406: Insufficient credits"),
        (406, {"error": "Monthly spend cap reached"}, Abort, "406: Monthly spend cap reached"),
        (
            406,
            {"error": "Unsupported value for scheduler"},
            JobFailed,
            "406: Unsupported value for scheduler (Segmind refused this request; not billed)",
        ),
        (
            405,
            b"<html><body>Method Not Allowed</body></html>",
            JobFailed,
            "405: Method Not Allowed (the endpoint does not take this request; not billed)",
        ),
        (
            410,
            {"error": "This model has been deprecated"},
            JobFailed,
            "410: This model has been deprecated (Segmind has retired this model; not billed)",
        ),
        (401, {"error": "Invalid API key"}, Abort, "401: Invalid API key"),
    ],
)
def test_errors_mean_what_they_say(
    status: int, body: Any, problem: type[Exception], message: str
) -> None:
    app = serve({"/v2/sd1.5-scifi": answer(body, status)})
    with pytest.raises(problem) as caught:
        call(app, lambda c: c.send(load_spec("sd1.5-scifi"), b"{}"))
    assert str(caught.value) == message


@pytest.mark.parametrize("status", [403, 404, 500, 503])
def test_a_file_host_failure_is_worth_another_try(status: int) -> None:
    app = serve({"/files/a.png": answer({"error": "nope"}, status)})
    with pytest.raises(Retryable):
        call(app, lambda c: c.download("http://api.test/files/a.png"))


# --- uploads --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["file_urls", "urls"])
def test_an_upload_answers_its_url_in_either_spelling(key: str) -> None:
    seen: list[dict[str, Any]] = []

    async def upload(request: Request) -> Response:
        seen.append({"key": request.headers.get("x-api-key"), "body": await request.json()})
        return JSONResponse({key: ["https://images.test/assets/a.png"], "message": "ok"})

    app = serve({"/upload-asset": upload})
    url = call(app, lambda c: c.upload(PNG))
    assert url == "https://images.test/assets/a.png"
    assert seen[0]["key"] == "sk-shapes"
    assert seen[0]["body"] == {"data_urls": [f"data:image/png;base64,{B64}"]}


def test_an_upload_answer_without_a_url_is_ambiguous() -> None:
    app = serve({"/upload-asset": answer({"message": "ok"})})
    with pytest.raises(Ambiguous, match="names no URL"):
        call(app, lambda c: c.upload(PNG))


# --- the key goes to Segmind's three hosts only --------------------------------------------------


def test_the_key_goes_to_the_three_segmind_hosts_and_no_other() -> None:
    keys: dict[str, str | None] = {}

    async def record(request: Request) -> Response:
        keys[request.url.netloc] = request.headers.get("x-api-key")
        if request.url.path.startswith("/inference-request"):
            return JSONResponse({"data": []})
        return JSONResponse({"status": "QUEUED", "request_id": "r"})

    app = Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST"])])
    spec = load_spec("sd1.5-scifi")

    async def go(client: SegmindClient) -> None:
        for host in ("api.test", "storage.test", "other.test"):
            url = f"http://{host}/v2/requests/r/status"
            await client.status(spec, Submitted("r", url, url))
        await client.history_rows(model="m", since=NOW.date(), until=NOW.date())

    call(app, go, storage_url="http://storage.test", history_url="http://history.test")
    assert keys == {
        "api.test": "sk-shapes",
        "storage.test": "sk-shapes",
        "other.test": None,
        "history.test": "sk-shapes",
    }


def test_history_rows_are_read_from_a_page_or_a_list() -> None:
    rows = [{"request_id": "r1"}]
    for body in ({"data": rows, "page": 1}, rows, {"items": rows}):
        app = serve({"/inference-request/request-history": answer(body)})
        found = call(app, lambda c: c.history_rows(model="m", since=NOW.date(), until=NOW.date()))
        assert found == rows
