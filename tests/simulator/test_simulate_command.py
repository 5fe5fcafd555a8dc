"""`render simulate`: a real server on loopback that the official SDK's protocol reaches, and its flags."""

from __future__ import annotations

from pathlib import Path

import httpx
from click.testing import CliRunner

from engine.cli import cli
from tests.helpers import simulator_process


def test_render_simulate_serves_on_loopback_until_stopped(tmp_path: Path) -> None:
    log = tmp_path / "simulate.log"
    options = ("--balance", "1", "--key", "secret", "--latency", "0")
    with simulator_process(*options, log=log) as base:
        response = httpx.get(base + "/v1/get-user-credits", headers={"x-api-key": "secret"})
        assert response.json() == {"credits": 1.0, "free-credits": 0.0}
        assert (
            httpx.get(base + "/v1/get-user-credits", headers={"x-api-key": "nope"}).status_code
            == 401
        )
        sent = httpx.post(
            base + "/v1/sd1.5-scifi", json={"prompt": "a city"}, headers={"x-api-key": "secret"}
        )
        assert sent.status_code == 200
        assert sent.headers["x-remaining-credits"] == "1.0000"  # unpriced: the simulator charges $0
    # What it said on stderr.
    assert f"simulating Segmind on {base}" in log.read_text()


def test_bad_fault_specs_are_refused_with_what_is_allowed() -> None:
    result = CliRunner().invoke(
        cli, ["simulate", "--faults", "429=0.5,teapot=0.1"], prog_name="render"
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --faults 429=0.5,teapot=0.1: 'teapot=0.1' is not KIND=RATE; kinds: 429, 500, 502, "
        "504, 406, drop, slow, failed, lost\n"
    )
    result = CliRunner().invoke(
        cli, ["simulate", "--faults", "429=0.7,500=0.6"], prog_name="render"
    )
    assert (
        result.stderr == "error: --faults 429=0.7,500=0.6: the rates add up to 1.3, more than 1\n"
    )
