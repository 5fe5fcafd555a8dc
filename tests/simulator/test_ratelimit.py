"""The per-key rate limit (``rpm`` submissions in any ``rate_window_s``) and Segmind's 429: no
``Retry-After``, the moment a slot frees in ``x-rate-limit-reset-at-utc``, written in each of the
formats the engine must read.

Time is an injected clock pinned to 2026-11-30 18:30:00 UTC; windows pass by advancing it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from engine.simulator import parse_faults
from tests.simulator.conftest import (
    KEY,
    START,
    Connect,
    FakeClock,
    assert_error,
    charges,
    png_b64,
    simulator_of,
)

pytestmark = pytest.mark.anyio

RESET = "x-rate-limit-reset-at-utc"
SCIFI_V1 = "/v1/sd1.5-scifi"
SCIFI_V2 = "/v2/sd1.5-scifi"
WORKFLOW = "/workflows/6865fd064727e611dfa21d4f-v5"


def assert_limited(response: httpx.Response, reset: str) -> None:
    assert_error(response, 429)
    assert response.headers[RESET] == reset
    assert "retry-after" not in response.headers


async def submit(
    client: httpx.AsyncClient, path: str, n: int, key: str = "sk-test"
) -> httpx.Response:
    payload = {"Prompt": f"job {n}"} if path == WORKFLOW else {"prompt": f"job {n}"}
    return await client.post(path, json=payload, headers={"x-api-key": key})


async def test_rpm_lets_n_through_then_429_until_the_window_frees_a_slot(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(rpm=3, rate_window_s=10, latency_s=0, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        # Three submissions, one a second, on all three protocols.
        answers = []
        for n, path in enumerate((SCIFI_V1, SCIFI_V2, WORKFLOW)):
            answers.append(await submit(client, path, n))
            assert answers[-1].status_code == 200, answers[-1].text
            clock.advance(1)
        # Polls, credits, history and uploads are not submissions: they never count.
        upload = {"data_urls": [f"data:image/png;base64,{png_b64()}"]}
        for _ in range(5):
            for url in (answers[1].json()["status_url"], answers[2].json()["poll_url"]):
                assert (await client.get(url, headers=KEY)).status_code == 200
            assert (await client.get("/v1/get-user-credits", headers=KEY)).status_code == 200
            history = await client.get("/inference-request/request-history", headers=KEY)
            assert history.status_code == 200
            assert (await client.post("/upload-asset", json=upload, headers=KEY)).status_code == 200
        # The fourth, at t=3, and every later one in the window: 429, the reset when the first
        # submission's slot frees (t=10), whatever the protocol.
        for path in (SCIFI_V1, SCIFI_V2, WORKFLOW):
            assert_limited(await submit(client, path, 4), "2026-11-30T18:30:10Z")
        clock.advance(6.9)  # t=9.9
        assert_limited(await submit(client, SCIFI_V1, 5), "2026-11-30T18:30:10Z")
        clock.advance(0.1)  # t=10: the first slot is free, and the refused ones took none
        assert (await submit(client, SCIFI_V1, 6)).status_code == 200
        assert_limited(await submit(client, SCIFI_V1, 7), "2026-11-30T18:30:11Z")
        log = await charges(client)
    # Three refused at t=3, one at t=9.9, one after t=10; only the accepted ones are in the
    # history and the charge log.
    assert log["rate_limited"] == 5
    assert len(log["charges"]) == 4
    assert len(simulator_of(app).state.jobs) == 4


async def test_n_pass_the_next_is_429_and_a_later_window_passes_again(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    """N pass, the N+1st is 429 with the header, and a later window passes N again."""
    app = make_app(rpm=2, rate_window_s=60, latency_s=0, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        codes = [(await submit(client, SCIFI_V1, n)).status_code for n in range(2)]
        limited = await submit(client, SCIFI_V1, 2)
        clock.advance(60)
        later = [(await submit(client, SCIFI_V1, n)).status_code for n in range(3, 6)]
    assert codes == [200, 200]
    assert_limited(limited, "2026-11-30T18:31:00Z")
    assert later == [200, 200, 429]


async def test_the_limit_is_per_key(connect: Connect, make_app: Any, clock: FakeClock) -> None:
    app = make_app(rpm=1, latency_s=0, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        first = await submit(client, SCIFI_V1, 0, key="alice")
        second = await submit(client, SCIFI_V1, 1, key="alice")
        other = await submit(client, SCIFI_V1, 2, key="bob")
    assert first.status_code == 200
    assert_limited(second, "2026-11-30T18:31:00Z")
    assert other.status_code == 200


async def test_over_the_limit_comes_before_validation_and_credits(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(rpm=1, latency_s=0, images="tiny", balance_usd=0, clock=clock, now=START)
    async with connect(app) as client:
        scene = {"image": png_b64(), "prompt": "a sofa"}
        # The first takes the slot though it is refused for want of credits (406).
        assert_error(await client.post("/v1/segmind-scenecraft-v01", json=scene, headers=KEY), 406)
        bad = await client.post(SCIFI_V1, json={"prompt": 42}, headers=KEY)
        unknown = await client.post("/v1/no-such-model", json={}, headers=KEY)
        unauthorised = await client.post(SCIFI_V1, json={"prompt": "x"})
    assert_limited(bad, "2026-11-30T18:31:00Z")
    assert_limited(unknown, "2026-11-30T18:31:00Z")
    assert_error(unauthorised, 401)
    # Only the first reached the fault draw: the refused ones never touched the fault schedule.
    assert list(simulator_of(app).state.attempts.values()) == [1]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("iso", "2026-11-30T18:30:10Z"),
        ("epoch", "1796063410"),
        ("http-date", "Mon, 30 Nov 2026 18:30:10 GMT"),
    ],
)
async def test_the_reset_header_in_each_format(
    connect: Connect, make_app: Any, clock: FakeClock, fmt: str, expected: str
) -> None:
    app = make_app(rpm=1, rate_window_s=10, reset_format=fmt, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        assert (await submit(client, SCIFI_V1, 0)).status_code == 200
        clock.advance(4)
        assert_limited(await submit(client, SCIFI_V1, 1), expected)


async def test_a_reset_between_seconds_is_rounded_up(
    connect: Connect, make_app: Any, clock: FakeClock
) -> None:
    app = make_app(rpm=1, rate_window_s=0.5, images="tiny", clock=clock, now=START)
    async with connect(app) as client:
        assert (await submit(client, SCIFI_V1, 0)).status_code == 200
        assert_limited(await submit(client, SCIFI_V1, 1), "2026-11-30T18:30:01Z")
        clock.advance(0.5)
        assert (await submit(client, SCIFI_V1, 2)).status_code == 200


@pytest.mark.parametrize("fmt", ["iso", "epoch", "http-date"])
async def test_an_injected_429_says_now_plus_retry_after(
    connect: Connect, make_app: Any, clock: FakeClock, fmt: str
) -> None:
    app = make_app(
        faults=parse_faults("429=1"),
        retry_after_s=7,
        reset_format=fmt,
        latency_s=0,
        clock=clock,
        now=START,
    )
    expected = {
        "iso": "2026-11-30T18:30:07Z",
        "epoch": "1796063407",
        "http-date": "Mon, 30 Nov 2026 18:30:07 GMT",
    }[fmt]
    async with connect(app) as client:
        for path in (SCIFI_V1, SCIFI_V2, WORKFLOW):
            response = await submit(client, path, 0)
            assert_limited(response, expected)
            assert float(response.headers["x-remaining-credits"]) == pytest.approx(100.0)
        log = await charges(client)
    assert log["rate_limited"] == 3
    assert log["charges"] == []
    assert simulator_of(app).state.jobs == {}


def test_without_rpm_nothing_is_limited(make_app: Any) -> None:
    config = simulator_of(make_app()).config
    assert (config.rpm, config.rate_window_s, config.reset_format) == (None, 60.0, "iso")
