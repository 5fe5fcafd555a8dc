"""`render compare A B`'s page in Debian's headless Chromium (Playwright): the slider wipes from one
picture to the other, the most changed pair comes first, the console stays quiet, and the page fits
a phone. Skipped, saying why, without Chromium or Playwright."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Tab, aside
from tests.helpers import ROOT, Outcome, Render, write_tree

RECIPE = """\
    model: scenecraft
    matrix:
      product:
        - {id: sofa, image: images/sofa.png, noun: orange sofa}
        - {id: lamp, image: images/lamp.png, noun: brass lamp}
        - {id: vase, image: images/vase.png, noun: blue vase}
      style: [cozy, loft]
    params:
      image: "{{ product.image }}"
      prompt: "Product photo in a {{ style }} room with a {{ product.noun }}"
      aspect_ratio: "1:1 (Perfect Square)"
      megapixel: "0.1"
      seed: auto
    output: "{{ product.id }}/{{ style }}"
    """


@pytest.fixture
def page_file(tmp_path: Path, render: Render) -> Path:
    """Two runs of a recipe, the sofa's and the vase's prompts edited in between; their page."""
    images = ROOT / "recipes" / "images"
    write_tree(
        tmp_path,
        {f"images/{name}.png": (images / f"{name}.png").read_bytes() for name in ("sofa", "lamp", "vase")},
    )  # fmt: skip
    home = str(tmp_path / "home")

    def run(recipe: str) -> None:
        write_tree(tmp_path, {"r.yaml": recipe})
        code, _, err = aside(render, "r.yaml", RENDER_HOME=home)
        assert code == 0, err

    run(RECIPE)
    run(RECIPE.replace("orange sofa", "green velvet sofa").replace("blue vase", "blue vases"))
    a, b = sorted(path.stem for path in (tmp_path / "renders" / "r" / "runs").glob("*.json"))
    done: Outcome = aside(render, "compare", a, b, "-o", "page.html", RENDER_HOME=home)
    assert done.code == 0, done.err
    assert re.match(r"\d of 6 pairs changed\n", done.out), done.out
    return tmp_path / "page.html"


@contextlib.contextmanager
def opened(browser: Any, page_file: Path, *, width: int, height: int) -> Iterator[Tab]:
    """``page_file`` open at ``width`` × ``height``, every picture loaded but the lazy ones (which
    load as they are scrolled to)."""
    tab = Tab(browser, width=width, height=height)
    try:
        tab.page.goto(page_file.as_uri())
        tab.page.wait_for_function(
            """[...document.images].filter((i) => i.loading !== "lazy")
                .every((i) => i.complete && i.naturalWidth > 0)"""
        )
        yield tab
    finally:
        tab.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect  # noqa: PLC0415 - skipped without it

    return playwright_expect(locator)


# Which of the pair is drawn at the middle of the wipe, and how B is clipped.
PROBE = """(flip) => {
    const box = flip.querySelector("img.a").getBoundingClientRect();
    const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    const slider = flip.querySelector(".slider").getBoundingClientRect();
    return {
        top: top.className,
        clip: getComputedStyle(flip.querySelector("img.b")).clipPath,
        slider: document.elementFromPoint(slider.left + slider.width / 2,
            slider.top + slider.height / 2).className,
    };
}"""


def test_the_slider_wipes_from_a_to_b(browser: Any, page_file: Path) -> None:
    with opened(browser, page_file, width=1280, height=900) as tab:
        flip = tab.page.locator(".flip").first
        slider = flip.locator(".slider")
        expect(slider).to_have_value("50")
        halfway = flip.evaluate(PROBE)
        slider.fill("0")
        all_b = flip.evaluate(PROBE)
        slider.fill("100")
        all_a = flip.evaluate(PROBE)
    assert halfway["clip"] == "inset(0px 0px 0px 50%)"
    assert halfway["slider"] == "slider"  # the pictures do not cover it
    # At 0 the cut is at the left edge: all of B, drawn over A; at 100, B is cut away: all of A.
    assert all_b == {"top": "b", "clip": "inset(0px 0px 0px 0%)", "slider": "slider"}
    assert all_a == {"top": "a", "clip": "inset(0px 0px 0px 100%)", "slider": "slider"}
    assert tab.errors == []


def test_pairs_come_most_changed_first(browser: Any, page_file: Path) -> None:
    with opened(browser, page_file, width=1280, height=900) as tab:
        pairs = tab.page.locator("article.pair")
        expect(pairs).to_have_count(6)
        found = [
            (pair.get_attribute("data-job"), float(pair.get_attribute("data-distance") or "nan"))
            for pair in pairs.all()
        ]
        shown = [
            float(text) for text in tab.page.locator("article.pair h2 .distance").all_inner_texts()
        ]
    distances = [distance for _, distance in found]
    assert distances == sorted(distances, reverse=True)
    assert shown == distances
    # The edited prompts changed their pictures; the lamps', untouched, are the same bytes.
    assert {job for job, distance in found if distance > 0} == {
        "sofa/cozy",
        "sofa/loft",
        "vase/cozy",
        "vase/loft",
    }
    assert [job for job, _ in found[-2:]] == ["lamp/cozy", "lamp/loft"]
    assert distances[-1] == 0
    assert len(set(distances)) > 2  # an order to check, not a tie
    assert tab.errors == []


def test_it_fits_a_phone(browser: Any, page_file: Path) -> None:
    with opened(browser, page_file, width=390, height=844) as tab:
        layout = tab.page.evaluate(
            """() => ({
                scroll: document.documentElement.scrollWidth,
                viewport: window.innerWidth,
                right: Math.max(...[...document.querySelectorAll("article.pair")]
                    .map((e) => e.getBoundingClientRect().right)),
            })"""
        )
        slider = tab.page.locator(".flip .slider").first
        slider.fill("20")
        clip = tab.page.locator(".flip img.b").first.evaluate("(i) => getComputedStyle(i).clipPath")
    assert layout["viewport"] == 390
    assert layout["scroll"] <= 390
    assert layout["right"] <= 390
    assert clip == "inset(0px 0px 0px 20%)"
    assert tab.errors == []
