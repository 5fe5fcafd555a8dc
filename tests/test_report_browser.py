"""The flagship's report in a real browser: Debian's headless Chromium lays out the grid, loads every
thumbnail, logs no console error, and fits a phone's width. Skipped, saying why, without Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageStat

from engine.cli import cli
from tests.helpers import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
)

# Appended to a copy of the page: measures the layout once everything has loaded.
PROBE = """
<script>
window.addEventListener("load", () => {
  const cells = [...document.querySelectorAll(".cell")];
  const filled = cells.filter((c) => !c.classList.contains("empty"));
  const images = [...document.querySelectorAll(".cell img")];
  const grid = document.querySelector("section .grid");
  const first = [...grid.querySelectorAll(".cell")].slice(0, 3)
    .map((c) => c.getBoundingClientRect());
  const spans = [...grid.children].map((c) => c.getBoundingClientRect());
  const metrics = {
    sections: document.querySelectorAll("section").length,
    cells: cells.length,
    filled: filled.length,
    excluded: document.querySelectorAll(".cell.excluded").length,
    emptyUnlabelled: cells.filter((c) => c.classList.contains("empty") && !c.textContent.trim()).length,
    compactSections: document.querySelectorAll(".grid.compact").length,
    compactCells: document.querySelectorAll(".grid.compact .cell").length,
    compactCaptions: [...document.querySelectorAll(".grid.compact .cell .where")].map((w) => w.textContent),
    images: images.length,
    loaded: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    minCellWidth: Math.min(...filled.map((c) => c.getBoundingClientRect().width)),
    minImageHeight: Math.min(...images.map((i) => i.getBoundingClientRect().height)),
    firstRowTops: first.map((r) => Math.round(r.top)),
    firstRowLefts: first.map((r) => Math.round(r.left)),
    gridWidth: Math.max(...spans.map((r) => r.right)) - Math.min(...spans.map((r) => r.left)),
    maxCellWidth: Math.max(...filled.map((c) => c.getBoundingClientRect().width)),
    pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
  };
  const pre = document.createElement("pre");
  pre.id = "metrics";
  pre.textContent = JSON.stringify(metrics);
  document.body.appendChild(pre);
});
</script>
"""
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("flagship")
    shutil.copytree(ROOT / "recipes", workdir / "recipes")
    result = CliRunner().invoke(
        cli,
        ["recipes/spring.yaml", "--backend", "preview", "--out", str(workdir / "renders")],
        env={"RENDER_HOME": str(workdir / "home")},
        prog_name="render",
    )
    assert result.exit_code == 0, result.output
    page = workdir / "renders" / "spring" / "index.html"
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    return probe


def chromium(page: Path, *extra: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def metrics(page: Path, size: str, profile: Path) -> tuple[dict[str, float], str]:
    done = chromium(
        page, f"--window-size={size}", "--virtual-time-budget=15000", "--dump-dom", profile=profile
    )
    found = re.search(r'<pre id="metrics">(.*?)</pre>', done.stdout)
    assert found, done.stderr[-2000:]
    return json.loads(found.group(1)), done.stderr


def test_the_grid_is_laid_out_and_every_thumbnail_loads(report: Path, tmp_path: Path) -> None:
    # A window tall enough that no thumbnail is left waiting for the user to scroll (loading=lazy).
    found, log = metrics(report, "1400,16000", tmp_path / "profile")
    assert found["sections"] == 4  # one per aspect ratio: 1x1, 4x5, 16x9, 9x16
    assert found["filled"] == 34
    # products × styles in the three full sections (lamp/terrace, excluded, says so), and the
    # 9:16 include alone in its section rather than among 11 empty cells
    assert found["cells"] == 3 * 4 * 3 + 1
    assert found["excluded"] == 3
    assert found["emptyUnlabelled"] == 0
    assert (found["compactSections"], found["compactCells"]) == (1, 1)
    assert found["compactCaptions"] == ["sofa · cozy"]
    assert found["images"] == found["loaded"] == 34
    assert found["minCellWidth"] > 120
    assert found["minImageHeight"] > 60
    assert len(set(found["firstRowTops"])) == 1  # three styles side by side on one row
    assert found["firstRowLefts"] == sorted(found["firstRowLefts"])
    assert "Uncaught" not in log
    assert "ERR_FILE_NOT_FOUND" not in log
    assert not re.search(r"CONSOLE\(\d+\)", log)


def on_a_phone(page: Path) -> Path:
    """The page in a 390-pixel-wide frame (headless Chromium's window is at least 500 wide), its
    metrics copied out once the frame has loaded (the frame holds up its parent's load event)."""
    framed = page.with_name("phone.html")
    framed.write_text(
        '<!doctype html><html><body style="margin: 0">'
        '<iframe id="phone" style="width: 390px; height: 844px; border: 0"'
        f' srcdoc="{html.escape(page.read_text(), quote=True)}"></iframe>'
        '<script>window.addEventListener("load", () => {'
        ' const inner = document.getElementById("phone").contentDocument;'
        ' const pre = document.createElement("pre"); pre.id = "metrics";'
        ' pre.textContent = inner.getElementById("metrics").textContent;'
        " document.body.appendChild(pre); });</script></body></html>"
    )
    return framed


def test_it_fits_a_phone_sized_screen(report: Path, tmp_path: Path) -> None:
    found, log = metrics(on_a_phone(report), "500,1000", tmp_path / "profile")
    assert found["viewport"] == 390, log[-2000:]
    assert (
        found["pageWidth"] <= found["viewport"] + 1
    )  # sections scroll sideways, the page does not
    assert found["filled"] == 34
    assert found["minCellWidth"] > 100


def test_the_grid_uses_the_width_of_a_wide_screen(report: Path, tmp_path: Path) -> None:
    """The columns were capped at 15rem: half of a wide screen stayed empty."""
    narrow, _ = metrics(report, "1000,1200", tmp_path / "profile")
    wide, _ = metrics(report, "1600,1200", tmp_path / "profile")
    assert wide["gridWidth"] > narrow["gridWidth"] + 400
    assert wide["gridWidth"] > 0.9 * wide["viewport"]  # three columns across the screen
    assert wide["maxCellWidth"] > 15 * 16  # wider than the old cap
    for found in (narrow, wide):
        assert found["pageWidth"] <= found["viewport"] + 1
        assert len(set(found["firstRowTops"])) == 1


def test_a_screenshot_shows_the_contact_sheet(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = chromium(
        report, "--window-size=1400,1100", f"--screenshot={shot}", profile=tmp_path / "profile"
    )
    assert shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1400, 1100)
        spread = ImageStat.Stat(image.convert("L")).stddev[0]
    assert spread > 20  # pictures, not a blank page
