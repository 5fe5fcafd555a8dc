"""Local images go to Segmind Storage once and are sent as URLs; `render settle` asks request history.

Against the simulator on loopback, through the CLI as a user runs it: the upload count per image,
across jobs, runs and recipes; what the dry run says it will upload; a 401 on upload stops the run
before any paid request; a failing upload is retried; and `render settle` settles what was unknown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from engine.cli import cli
from engine.simulator import SimulatorConfig, all_specs, create_app, parse_faults, serving
from engine.simulator.config import FaultRates
from tests.helpers import ROOT, write_tree

KEY = "sk-uploads"
IMAGES = ROOT / "recipes" / "images"
SHOTS = """\
    name: {name}
    model: scenecraft
    budget_usd: 20
    matrix:
      product:
        - {{id: sofa, image: images/sofa.png}}
        - {{id: lamp, image: images/lamp.png}}
        - {{id: vase, image: images/vase.png}}
        - {{id: armchair, image: images/armchair.png}}
      n: {numbers}
    params:
      image: "{{{{ product.image }}}}"
      prompt: "a product photo of a {{{{ product.id }}}}, take {{{{ n }}}}"
      megapixel: "0.1"
    """


class _Flaky:
    """Answers the first ``failures`` uploads 503, then lets the simulator answer."""

    def __init__(self, app: Starlette, failures: int) -> None:
        self.app = app
        self.failures = failures
        self.uploads = 0
        self.submissions = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/upload-asset":
            self.uploads += 1
            if self.uploads <= self.failures:
                await JSONResponse({"error": "Service temporarily unavailable"}, 503)(
                    scope, receive, send
                )
                return
        elif scope["type"] == "http" and scope["method"] == "POST":
            self.submissions += 1
        await self.app(scope, receive, send)


def _simulator(**config: Any) -> Starlette:
    return create_app(
        SimulatorConfig(
            specs=all_specs(),
            latency_s=0.02,
            images="tiny",
            strict_urls=True,
            retry_after_s=0,
            **config,
        )
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    files: dict[str, str | bytes] = {
        f"images/{name}.png": (IMAGES / f"{name}.png").read_bytes()
        for name in ("sofa", "lamp", "vase", "armchair")
    }
    files["shots.yaml"] = SHOTS.format(name="shots", numbers="[1, 2, 3, 4, 5, 6, 7]")
    files["more.yaml"] = SHOTS.format(name="more", numbers="[8, 9]")
    return write_tree(tmp_path, files)


def render(project: Path, base: str, *args: str, key: str = KEY) -> tuple[int, str, str]:
    here = Path.cwd()
    os.chdir(project)
    try:
        result = CliRunner().invoke(
            cli,
            list(args),
            env={"SEGMIND_API_KEY": key, "SEGMIND_BASE_URL": base},
            prog_name="render",
        )
    finally:
        os.chdir(here)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def flaky() -> Iterator[tuple[_Flaky, str]]:
    wrapped = _Flaky(_simulator(), failures=2)
    with serving(wrapped) as base:  # type: ignore[arg-type]
        yield wrapped, base


def test_twenty_eight_jobs_on_four_images_make_four_uploads_and_another_recipe_none(
    project: Path, flaky: tuple[_Flaky, str]
) -> None:
    server, base = flaky
    code, out, _ = render(project, base, "shots.yaml", "--dry-run")
    assert code == 0
    assert "uploads 4 local images to Segmind Storage (once; sent as URLs)\n" in out
    code, out, err = render(project, base, "shots.yaml", "--yes")
    assert code == 0, err
    assert "  uploads  4 local images to Segmind Storage\n" in out
    # Two uploads were answered 503 and asked again: four images, six upload requests.
    assert (server.uploads, server.submissions) == (6, 28)
    # Another recipe on the same images uploads nothing: the ledger remembers their URLs.
    code, out, _ = render(project, base, "more.yaml", "--dry-run")
    assert "uploads" not in out
    code, out, _ = render(project, base, "more.yaml")
    assert code == 0
    assert server.uploads == 6


def test_a_401_on_upload_stops_the_run_before_any_paid_request(project: Path) -> None:
    server = _Flaky(_simulator(key="the-right-key"), failures=0)
    with serving(server) as base:  # type: ignore[arg-type]
        code, out, _ = render(project, base, "shots.yaml", "--yes", key="a-wrong-key")
    assert code == 4
    assert server.submissions == 0
    assert "stopped  Segmind refused the account (401: " in out


def test_render_settle_asks_request_history_what_became_of_unknown_requests(
    project: Path,
) -> None:
    app = _simulator(faults=parse_faults("drop=1.0"))
    with serving(app) as base:
        code, out, _ = render(project, base, "more.yaml")
        assert code == 1
        assert "0 succeeded, 8 unknown" in out
        code, out, _ = render(project, base, "ledger", "--json")
        (before,) = json.loads(out)["spend"]
        assert before["unknown_usd"] == pytest.approx(8 * 0.339)
        sim = app.state.simulator
        sim.config = sim.config.model_copy(update={"faults": FaultRates()})
        code, out, _ = render(project, base, "settle")
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == 8
        assert all(
            " succeeded, $0.339 charged; the next run of its recipe downloads its outputs (" in line
            for line in lines
        ), lines
        code, out, _ = render(project, base, "ledger", "--json")
        (after,) = json.loads(out)["spend"]
        assert (after["spent_usd"], after["unknown_usd"]) == (pytest.approx(8 * 0.339), 0)
        # The next run fetches the outputs, and pays nothing.
        code, out, _ = render(project, base, "more.yaml")
        assert code == 0
        assert out.startswith("more: 8 succeeded; $0.00 spent on ")
    assert len(sim.state.charges) == 8
