"""Benchmark: requests a second the simulator sustains on loopback at concurrency 64, v1 and v2.

The simulator runs as `render simulate --images tiny` in its own process. Its capacity is measured
with wrk (Debian's `wrk`, a C load generator: a Python client would measure itself, see
encode/httpx#3215), over 64 connections: v1 calls, v2 submissions and v2 status polls. For
comparison, an httpx AsyncClient then drives whole v2 jobs (submit, status, result). The figure that
matters is against the executor benchmark's need: 2,000 jobs at 100 ms and concurrency 64 ask for
640 jobs a second at most. Printed, not asserted.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.helpers import simulator_process

CONCURRENCY = 64
V1_REQUESTS = 3000
V2_JOBS = 1000


async def _drive(base: str, count: int, job: str) -> float:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=base, headers={"x-api-key": "k"}, limits=limits, timeout=30
    ) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(count):
            queue.put_nowait(index)

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                body = {"prompt": f"city {index}"}
                if job == "v1":
                    response = await client.post("/v1/sd1.5-scifi", json=body)
                    response.raise_for_status()
                else:
                    submitted = (await client.post("/v2/sd1.5-scifi", json=body)).json()
                    status = (await client.get(submitted["status_url"])).json()
                    assert status["status"] == "COMPLETED"
                    (await client.get(submitted["response_url"])).raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start


_WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "k"
"""


def _wrk(url: str, *, method: str, body: str, tmp_path: Path) -> float:
    script = tmp_path / f"{method}.lua"
    script.write_text(_WRK_SCRIPT.format(method=method, body=body))
    done = subprocess.run(
        ["wrk", "-t1", f"-c{CONCURRENCY}", "-d4s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Non-2xx" not in done.stdout, done.stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert found, done.stdout
    return float(found.group(1))


def test_simulator_requests_per_second(tmp_path: Path) -> None:
    with simulator_process("--images", "tiny", "--balance", "1000000") as base:
        lines = [f"\nsimulator on loopback, {CONCURRENCY} connections:"]
        if shutil.which("wrk"):
            body = '{"prompt": "a city"}'
            v1 = _wrk(base + "/v1/sd1.5-scifi", method="POST", body=body, tmp_path=tmp_path)
            submit = _wrk(base + "/v2/sd1.5-scifi", method="POST", body=body, tmp_path=tmp_path)
            job = httpx.post(
                base + "/v2/sd1.5-scifi", json={"prompt": "x"}, headers={"x-api-key": "k"}
            ).json()
            status = _wrk(job["status_url"], method="GET", body="", tmp_path=tmp_path)
            lines.append(
                f"  wrk: v1 {v1:,.0f} requests/s; v2 submit {submit:,.0f}/s; v2 status {status:,.0f}/s"
            )
        else:
            lines.append("  wrk: not installed (apt-get install wrk), capacity not measured")
        asyncio.run(_drive(base, 200, "v1"))  # warm up
        v1_httpx = asyncio.run(_drive(base, V1_REQUESTS, "v1"))
        v2_httpx = asyncio.run(_drive(base, V2_JOBS, "v2"))
        lines.append(
            f"  httpx AsyncClient: v1 {V1_REQUESTS / v1_httpx:,.0f} requests/s; "
            f"v2 {V2_JOBS / v2_httpx:,.0f} jobs/s (3 requests each)"
        )
        lines.append(f"  the executor benchmark needs at most {CONCURRENCY / 0.1:,.0f} jobs/s")
    print("\n".join(lines))
