"""Request history (``/inference-request/request-history``): every accepted submission, at any age,
with its charge, its inputs and its outcome, including one whose answer never arrived; a list in a
date window, filtered and paged, a row per output.

Time is an injected clock pinned to 2026-11-30 18:30:00 UTC.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from engine.simulator import parse_faults
from tests.simulator.conftest import (
    KEY,
    START,
    Connect,
    FakeClock,
    assert_error,
    base_of,
    in_process,
    png_b64,
    simulator_of,
)

pytestmark = pytest.mark.anyio

HISTORY = "/inference-request/request-history"
SCENECRAFT_V1 = "/v1/segmind-scenecraft-v01"
SCENECRAFT_V2 = "/v2/segmind-scenecraft-v01"
SCIFI_V1 = "/v1/sd1.5-scifi"
SCIFI_V2 = "/v2/sd1.5-scifi"
WORKFLOW_ID = "6865fd064727e611dfa21d4f-v5"
WORKFLOW = f"/workflows/{WORKFLOW_ID}"
SCENECRAFT_PRICE = 0.339
DAY = 86400.0
ROW_KEYS = {
    "request_id",
    "model_name",
    "model_status",
    "status",
    "credits_deduction",
    "request_body",
    "generation_url",
    "latency_ms",
    "created_at",
    "updated_at",
}


def scene(prompt: str = "a sofa") -> dict[str, Any]:
    return {"image": png_b64(), "prompt": prompt}


async def listed(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(HISTORY, params=params, headers=KEY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["data", "page", "per_page", "total"]
    assert isinstance(body, dict)
    return body


async def one(client: httpx.AsyncClient, request_id: str, key: str = "sk-test") -> httpx.Response:
    return await client.get(f"{HISTORY}/{request_id}", headers={"x-api-key": key})


# --- by id -----------------------------------------------------------------------------------------


async def test_a_completed_request_by_id(connect: Connect, make_app: Any, clock: FakeClock) -> None:
    app = make_app(latency_s=12.5, clock=clock, now=START)
    async with connect(app) as client:
        base = base_of(client)
        request_id = (await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)).json()[
            "request_id"
        ]
        clock.advance(12.5)
        response = await one(client, request_id)
        assert response.status_code == 200
        row = response.json()
        image = await client.get(row["generation_url"])
    assert row == {
        "request_id": request_id,
        "model_name": "segmind-scenecraft-v01",
        "model_status": "COMPLETED",
        "status": "COMPLETED",
        "credits_deduction": SCENECRAFT_PRICE,
        "request_body": scene(),
        "generation_url": row["generation_url"],
        "latency_ms": 12500,
        "created_at": "2026-11-30T18:30:00.000Z",
        "updated_at": "2026-11-30T18:30:12.500Z",
    }
    assert row["generation_url"].startswith(f"{base}/files/")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"


async def test_a_running_request_is_pending(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=60, clock=clock, now=START)
    async with connect(app) as client:
        request_id = (await client.post(WORKFLOW, json={"Prompt": "x"}, headers=KEY)).json()[
            "request_id"
        ]
        clock.advance(30)
        row = (await one(client, request_id)).json()
    assert set(row) == ROW_KEYS
    assert (row["model_name"], row["model_status"], row["status"]) == (
        WORKFLOW_ID,
        "PENDING",
        "PENDING",
    )
    assert (row["credits_deduction"], row["generation_url"], row["latency_ms"]) == (0.0, None, None)
    assert row["created_at"] == row["updated_at"] == "2026-11-30T18:30:00.000Z"


async def test_a_failed_request_is_failed_with_its_error_and_no_charge(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(faults=parse_faults("failed=1"), latency_s=2, clock=clock, now=START)
    async with connect(app) as client:
        request_id = (await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)).json()[
            "request_id"
        ]
        clock.advance(2)
        row = (await one(client, request_id)).json()
        failed = await listed(client, status="FAILED")
    assert set(row) == {*ROW_KEYS, "error"}
    assert (row["model_status"], row["status"], row["credits_deduction"]) == (
        "FAILED",
        "FAILED",
        0.0,
    )
    assert row["generation_url"] is None
    assert row["latency_ms"] == 2000
    assert isinstance(row["error"], str)
    assert row["error"]
    assert failed["data"] == [row]


async def test_by_id_only_the_calling_keys_request(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=0, clock=clock, now=START)
    async with connect(app) as client:
        request_id = (
            await client.post(SCENECRAFT_V2, json=scene(), headers={"x-api-key": "alice"})
        ).json()["request_id"]
        mine = await one(client, request_id, key="alice")
        theirs = await one(client, request_id, key="bob")
        unknown = await one(client, "no-such-request", key="alice")
        bob = (await client.get(HISTORY, headers={"x-api-key": "bob"})).json()
    assert mine.status_code == 200
    assert_error(theirs, 404)
    assert_error(unknown, 404)
    assert bob["data"] == []
    assert bob["total"] == 0


async def test_any_age_by_id_though_the_poll_urls_expired(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=1, clock=clock, now=START)
    async with connect(app) as client:
        submitted = (await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)).json()
        clock.advance(40 * DAY)
        status = await client.get(submitted["status_url"], headers=KEY)
        row = await one(client, submitted["request_id"])
        recent = await listed(client)
        then = await listed(client, from_date="2026-11-25", to_date="2026-12-01")
    assert_error(status, 404)
    assert row.status_code == 200
    assert row.json()["model_status"] == "COMPLETED"
    assert row.json()["credits_deduction"] == SCENECRAFT_PRICE
    assert recent["data"] == []
    assert [r["request_id"] for r in then["data"]] == [submitted["request_id"]]


# --- what is recorded ------------------------------------------------------------------------------


async def test_a_sync_request_gets_an_id_in_history(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    """A v1 answer carries no request id; the history has one, with the charge and the image."""
    app = make_app(clock=clock, now=START)
    async with connect(app) as client:
        answer = await client.post(SCENECRAFT_V1, json=scene("a sync sofa"), headers=KEY)
        (row,) = (await listed(client))["data"]
        by_id = (await one(client, row["request_id"])).json()
        image = await client.get(row["generation_url"])
    assert answer.status_code == 200
    assert row == by_id
    assert row["request_id"] == _charge_ids(app)[0]
    assert (row["model_name"], row["model_status"]) == ("segmind-scenecraft-v01", "COMPLETED")
    assert row["credits_deduction"] == SCENECRAFT_PRICE
    assert row["request_body"] == scene("a sync sofa")
    assert row["latency_ms"] == 0
    assert image.content == answer.content


async def test_a_sync_call_is_pending_while_it_runs_and_failed_if_cancelled(
    make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=30, clock=clock, now=START)

    async def call(client: httpx.AsyncClient) -> None:
        await client.post(SCENECRAFT_V1, json=scene(), headers=KEY)

    async with in_process(app) as client, anyio.create_task_group() as group:
        group.start_soon(call, client)
        # The call is inside its 30 s of latency: nothing else can move until it is cancelled.
        await anyio.wait_all_tasks_blocked()
        running = (await listed(client))["data"]
        group.cancel_scope.cancel()
    async with in_process(app) as client:
        cancelled = (await listed(client))["data"]
    assert [(r["model_status"], r["credits_deduction"]) for r in running] == [("PENDING", 0.0)]
    assert [(r["model_status"], r["credits_deduction"]) for r in cancelled] == [("FAILED", 0.0)]
    assert cancelled[0]["request_id"] == running[0]["request_id"]
    assert "cancelled" in cancelled[0]["error"]
    assert simulator_of(app).state.charges == []
    assert simulator_of(app).state.reserved_usd() == 0


async def test_a_clock_swapped_in_reads_as_the_time_now(make_app: Any) -> None:
    """Tests that set ``state.clock`` after the app is built (as the engine's do) keep real dates."""
    app = make_app(latency_s=0, images="tiny")
    simulator_of(app).state.clock = FakeClock(0.0)
    async with in_process(app) as client:
        await client.post(SCIFI_V1, json={"prompt": "now"}, headers=KEY)
        rows = (await listed(client))["data"]
    assert len(rows) == 1


def _charge_ids(app: Starlette) -> list[str]:
    return [charge.request_id for charge in app.state.simulator.state.charges]


def test_dropped_answers_are_in_history_with_their_charge(
    make_app: Any, serve: Callable[[Starlette], str], clock: FakeClock
) -> None:
    """The submit whose answer never arrived: its request_body is there to be found, and the
    charge it was billed."""
    app = make_app(faults=parse_faults("drop=1"), latency_s=0, clock=clock, now=START)
    base = serve(app)
    with httpx.Client(base_url=base, headers=KEY) as client:
        for path, prompt in ((SCENECRAFT_V1, "dropped sync"), (SCENECRAFT_V2, "dropped queued")):
            with pytest.raises(httpx.TransportError):
                client.post(path, json=scene(prompt))
        done = client.get(HISTORY).json()
    assert [
        (r["request_body"], r["model_status"], r["credits_deduction"]) for r in done["data"]
    ] == [
        (scene("dropped queued"), "COMPLETED", SCENECRAFT_PRICE),
        (scene("dropped sync"), "COMPLETED", SCENECRAFT_PRICE),
    ]
    assert sorted(r["request_id"] for r in done["data"]) == sorted(_charge_ids(app))


async def test_refused_submissions_are_not_in_history(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(faults=parse_faults("500=1"), clock=clock, now=START)
    async with connect(app) as client:
        assert_error(await client.post(SCENECRAFT_V1, json={"prompt": "x"}, headers=KEY), 400)
        assert_error(await client.post(SCENECRAFT_V1, json=scene(), headers=KEY), 500)
        body = await listed(client)
    assert body == {"data": [], "page": 1, "per_page": 20, "total": 0}


# --- the list --------------------------------------------------------------------------------------


async def test_several_outputs_are_a_row_each_in_the_list_and_one_by_id(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=0, unpriced_usd=0.01, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        request_id = (
            await client.post(SCIFI_V2, json={"prompt": "a fleet", "samples": 3}, headers=KEY)
        ).json()["request_id"]
        rows = (await listed(client))["data"]
        by_id = (await one(client, request_id)).json()
        result = (await client.get(f"/v2/requests/{request_id}", headers=KEY)).json()
    assert [r["request_id"] for r in rows] == [request_id] * 3
    assert [r["credits_deduction"] for r in rows] == [pytest.approx(0.03)] * 3
    assert [r["generation_url"] for r in rows] == result["images"]
    assert by_id == rows[0]


async def test_newest_first_paged(connect: Connect, make_app: Any, clock: FakeClock) -> None:
    app = make_app(latency_s=0, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        ids = []
        for n in range(5):
            ids.append(
                (await client.post(SCIFI_V2, json={"prompt": f"job {n}"}, headers=KEY)).json()[
                    "request_id"
                ]
            )
            clock.advance(60)
        pages = [await listed(client, page=page, per_page=2) for page in (1, 2, 3, 4)]
        everything = await listed(client, per_page=100)
    assert [[r["request_id"] for r in p["data"]] for p in pages] == [
        ids[4:2:-1],
        ids[2:0:-1],
        ids[:1],
        [],
    ]
    assert [(p["page"], p["per_page"], p["total"]) for p in pages] == [
        (1, 2, 5),
        (2, 2, 5),
        (3, 2, 5),
        (4, 2, 5),
    ]
    assert [r["request_id"] for r in everything["data"]] == ids[::-1]
    assert [r["created_at"] for r in everything["data"]] == [
        f"2026-11-30T18:3{n}:00.000Z" for n in range(4, -1, -1)
    ]


async def test_filters_model_name_and_status(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=10, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        await client.post(SCIFI_V2, json={"prompt": "done"}, headers=KEY)
        await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)
        clock.advance(10)
        await client.post(SCIFI_V2, json={"prompt": "still running"}, headers=KEY)
        await client.post(WORKFLOW, json={"Prompt": "also running"}, headers=KEY)

        async def names(**params: Any) -> list[tuple[str, str]]:
            return [
                (r["model_name"], r["status"]) for r in (await listed(client, **params))["data"]
            ]

        scifi = await names(model_name="scifi")
        upper = await names(model_name="SCIFI")
        scene_only = await names(model_name="scenecraft-v01")
        completed = await names(status="COMPLETED")
        pending = await names(status="PENDING")
        both = await names(model_name="sd1.5", status="PENDING")
    assert scifi == [("sd1.5-scifi", "PENDING"), ("sd1.5-scifi", "COMPLETED")]
    assert upper == scifi
    assert scene_only == [("segmind-scenecraft-v01", "COMPLETED")]
    assert completed == [("segmind-scenecraft-v01", "COMPLETED"), ("sd1.5-scifi", "COMPLETED")]
    assert pending == [(WORKFLOW_ID, "PENDING"), ("sd1.5-scifi", "PENDING")]
    assert both == [("sd1.5-scifi", "PENDING")]


async def test_the_date_window(connect: Connect, make_app: Any, clock: FakeClock) -> None:
    """The last 7 days by default; dates inclusive, in UTC."""
    app = make_app(latency_s=0, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        old = await client.post(SCIFI_V1, json={"prompt": "eight days ago"}, headers=KEY)
        clock.advance(DAY)
        await client.post(SCIFI_V1, json={"prompt": "seven days ago"}, headers=KEY)
        clock.advance(7 * DAY)  # now 2026-12-08 18:30
        await client.post(SCIFI_V1, json={"prompt": "today"}, headers=KEY)

        async def prompts(**params: Any) -> list[str]:
            return [r["request_body"]["prompt"] for r in (await listed(client, **params))["data"]]

        default = await prompts()
        first_day = await prompts(from_date="2026-11-30", to_date="2026-11-30")
        to_only = await prompts(to_date="2026-12-07")
        all_of_them = await prompts(from_date="2026-11-20", to_date="2026-12-08")
    assert old.status_code == 200
    assert default == ["today", "seven days ago"]
    assert first_day == ["eight days ago"]
    assert to_only == ["seven days ago", "eight days ago"]
    assert all_of_them == ["today", "seven days ago", "eight days ago"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from_date": "2026-10-01", "to_date": "2026-11-30"}, "31"),
        ({"from_date": "2026-10-29"}, "31"),
        ({"from_date": "2026-12-01", "to_date": "2026-11-30"}, "after"),
        ({"from_date": "30/11/2026"}, "from_date"),
        ({"to_date": "20261130"}, "to_date"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "101"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"page": "one"}, "page"),
        ({"status": "RUNNING"}, "status"),
    ],
)
async def test_bad_queries_are_400(
    connect: Connect, make_app: Any, clock: FakeClock, params: dict[str, str], named: str
) -> None:
    async with connect(make_app(clock=clock, now=START)) as client:
        response = await client.get(HISTORY, params=params, headers=KEY)
    assert named in assert_error(response, 400)


async def test_a_window_of_31_days_is_allowed(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    async with connect(make_app(clock=clock, now=START)) as client:
        body = await listed(client, from_date="2026-10-30", to_date="2026-11-30", per_page=100)
    assert (body["page"], body["per_page"], body["total"]) == (1, 100, 0)


async def test_a_workflow_row_points_at_its_image(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=0, clock=clock, now=START)
    async with connect(app) as client:
        submitted = (await client.post(WORKFLOW, json={"Prompt": "p"}, headers=KEY)).json()
        poll = (await client.get(submitted["poll_url"], headers=KEY)).json()
        row = (await one(client, submitted["request_id"])).json()
    assert row["generation_url"] == json.loads(poll["output"])[0]["value"]["data"]
    assert row["request_body"] == {"Prompt": "p"}
    assert row["credits_deduction"] == 0.1224
