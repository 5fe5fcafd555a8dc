"""What time does to a request: a queued one is answered for an hour from its SUBMISSION (scaled with
``latency_scale``, or ``retention_s``), then 404, while its files stay a week's worth and its history
and bill for ever; and a ``lost`` request's files are missing (404 or 403) for ``lost_for_s`` after
it completes.

Every test moves an injected clock; none waits.
"""

from __future__ import annotations

import json
from hashlib import sha256
from typing import Any

import pytest

from engine.simulator import SimulatorConfig, all_specs, parse_faults
from engine.simulator.config import FAULT_KINDS
from tests.simulator.conftest import (
    KEY,
    Connect,
    FakeClock,
    assert_error,
    charges,
    png_b64,
    simulator_of,
)

pytestmark = pytest.mark.anyio

SCENECRAFT_V1 = "/v1/segmind-scenecraft-v01"
SCENECRAFT_V2 = "/v2/segmind-scenecraft-v01"
SCIFI_V1 = "/v1/sd1.5-scifi"
SCIFI_V2 = "/v2/sd1.5-scifi"
WORKFLOW = "/workflows/6865fd064727e611dfa21d4f-v5"
HOUR = 3600.0


def scene(prompt: str = "a sofa") -> dict[str, Any]:
    return {"image": png_b64(), "prompt": prompt}


# --- retention -------------------------------------------------------------------------------------


async def test_a_request_is_kept_one_hour_from_its_submission(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    # Completed 50 minutes in: kept 10 minutes more, not an hour from completion.
    app = make_app(latency_s=3000, clock=clock)
    async with connect(app) as client:
        submitted = (await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)).json()
        flow = (await client.post(WORKFLOW, json={"Prompt": "p"}, headers=KEY)).json()
        clock.advance(3000)
        output = (await client.get(submitted["response_url"], headers=KEY)).json()["output"]
        clock.advance(HOUR - 3000 - 0.001)
        kept = [
            await client.get(url, headers=KEY)
            for url in (
                submitted["status_url"],
                submitted["response_url"],
                submitted["poll_url"],
                flow["poll_url"],
            )
        ]
        clock.advance(0.001)
        gone = [
            await client.get(url, headers=KEY)
            for url in (
                submitted["status_url"],
                submitted["response_url"],
                submitted["poll_url"],
                flow["poll_url"],
            )
        ]
        file = await client.get(output)
        log = await charges(client)
        row = await client.get(
            f"/inference-request/request-history/{submitted['request_id']}", headers=KEY
        )
    assert [r.status_code for r in kept] == [200] * 4
    assert [r.json()["status"] for r in kept] == ["COMPLETED"] * 4
    for response in gone:
        assert "expired" in assert_error(response, 404)
    # Expiry forgets the request, not its files (kept about a week), its bill or its history.
    assert file.status_code == 200
    assert len(log["charges"]) == 2
    assert row.json()["model_status"] == "COMPLETED"


async def test_a_request_that_outlives_its_retention_is_still_billed(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_s=2 * HOUR, clock=clock)
    async with connect(app) as client:
        submitted = (await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)).json()
        clock.advance(HOUR)
        assert_error(await client.get(submitted["status_url"], headers=KEY), 404)
        assert (await charges(client))["charges"] == []
        clock.advance(HOUR)
        log = await charges(client)
    assert [c["request_id"] for c in log["charges"]] == [submitted["request_id"]]


@pytest.mark.parametrize(
    ("options", "retention"),
    [
        ({}, HOUR),
        ({"latency_scale": 0.01}, 36.0),
        ({"latency_scale": 0.01, "retention_s": 5.0}, 5.0),
        ({"retention_s": 120.0}, 120.0),
        # A scale of 0 would forget every request as it is submitted.
        ({"latency_scale": 0.0}, HOUR),
    ],
)
def test_retention_scales_with_latency_and_can_be_set(
    options: dict[str, float], retention: float
) -> None:
    config = SimulatorConfig(specs=all_specs(), **options)  # type: ignore[arg-type]
    assert config.retention() == pytest.approx(retention)
    assert config.file_retention() == pytest.approx(retention * 168)


async def test_scaled_retention_over_http(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(latency_scale=0.01, clock=clock)
    async with connect(app) as client:
        submitted = (await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)).json()
        clock.advance(35.9)
        kept = await client.get(submitted["status_url"], headers=KEY)
        clock.advance(0.1)
        gone = await client.get(submitted["status_url"], headers=KEY)
    assert kept.json()["status"] == "COMPLETED"
    assert_error(gone, 404)


async def test_files_go_after_a_weeks_worth_of_retention(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(retention_s=10, latency_s=0, clock=clock)
    async with connect(app) as client:
        submitted = (await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)).json()
        output = (await client.get(submitted["response_url"], headers=KEY)).json()["output"]
        clock.advance(1679.9)
        kept = await client.get(output)
        clock.advance(0.1)
        gone = await client.get(output)
    assert kept.status_code == 200
    assert_error(gone, 404)
    assert simulator_of(app).state.files == {}


# --- lost files ------------------------------------------------------------------------------------


def test_lost_is_a_fault_kind() -> None:
    assert FAULT_KINDS[-1] == "lost"
    assert parse_faults("lost=0.25").lost == 0.25
    assert SimulatorConfig(specs=()).lost_for_s == 30.0


def _statuses(make_app: Any) -> dict[int, str]:
    """A prompt whose lost files answer 404, and one whose answer 403 (the seed decides)."""
    config = simulator_of(make_app()).config
    found: dict[int, str] = {}
    for n in range(100):
        body = json.dumps({"prompt": f"lost {n}"}, separators=(",", ":"))
        found.setdefault(config.lost_status(sha256(body.encode()).hexdigest()), f"lost {n}")
    return found


async def test_a_lost_requests_files_are_missing_for_a_while(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(faults=parse_faults("lost=1"), lost_for_s=30, latency_s=5, clock=clock)
    async with connect(app) as client:
        submitted = (await client.post(SCENECRAFT_V2, json=scene(), headers=KEY)).json()
        clock.advance(5)
        result = await client.get(submitted["response_url"], headers=KEY)
        output = result.json()["output"]
        missing = await client.get(output)
        clock.advance(29.9)
        still = await client.get(output)
        clock.advance(0.1)
        served = await client.get(output)
        log = await charges(client)
    # The request itself succeeded and was billed; only its files lag.
    assert result.status_code == 200
    assert result.json()["status"] == "COMPLETED"
    assert missing.status_code in {403, 404}
    assert_error(missing, missing.status_code)
    assert still.status_code == missing.status_code
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert len(log["charges"]) == 1


async def test_lost_files_answer_404_or_403_by_the_seed(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(faults=parse_faults("lost=1"), latency_s=0, images="tiny", clock=clock)
    prompts = _statuses(make_app)
    assert set(prompts) == {403, 404}
    async with connect(app) as client:
        for status, prompt in sorted(prompts.items()):
            submitted = await client.post(
                SCIFI_V2,
                content=json.dumps({"prompt": prompt}, separators=(",", ":")),
                headers={**KEY, "content-type": "application/json"},
            )
            output = (await client.get(submitted.json()["response_url"], headers=KEY)).json()
            assert_error(await client.get(output["output"]), status)


async def test_a_lost_sync_request_answers_its_image_but_its_history_url_lags(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(faults=parse_faults("lost=1"), lost_for_s=30, clock=clock)
    async with connect(app) as client:
        answer = await client.post(SCENECRAFT_V1, json=scene(), headers=KEY)
        rows = (await client.get("/inference-request/request-history", headers=KEY)).json()["data"]
        missing = await client.get(rows[0]["generation_url"])
        clock.advance(30)
        served = await client.get(rows[0]["generation_url"])
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/jpeg"
    assert missing.status_code in {403, 404}
    assert served.content == answer.content


async def test_a_lost_workflow_output_lags_too(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(faults=parse_faults("lost=1"), lost_for_s=10, latency_s=0, clock=clock)
    async with connect(app) as client:
        submitted = (await client.post(WORKFLOW, json={"Prompt": "p"}, headers=KEY)).json()
        poll = (await client.get(submitted["poll_url"], headers=KEY)).json()
        url = json.loads(poll["output"])[0]["value"]["data"]
        missing = await client.get(url)
        clock.advance(10)
        served = await client.get(url)
    assert poll["status"] == "COMPLETED"
    assert missing.status_code in {403, 404}
    assert served.status_code == 200
