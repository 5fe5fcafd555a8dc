"""The HTML report: written after a run, rewritten on demand, grouped by axes, escaping every string."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from engine.errors import InputError
from engine.report import find_run_dir, write_report
from engine.simulator import parse_faults
from tests.helpers import ROOT, Render, write_tree

RECIPE = """\
    model: scenecraft
    matrix:
      product:
        - {id: "<script>alert(1)</script>", image: images/sofa.png, noun: "sofa & <b>chair</b>"}
        - {id: lamp, image: images/sofa.png, noun: lamp}
      style: [cozy, "loft \\"2\\""]
      aspect_ratio: ["1:1 (Perfect Square)", "16:9 (Panorama)"]
    exclude: [{product: lamp, style: cozy}]
    params:
      image: "{{ product.image }}"
      prompt: "A {{ product.noun }} in a {{ style }} room"
      aspect_ratio: "{{ aspect_ratio }}"
      megapixel: "0.1"
      seed: auto
    output: "{{ product.id | slug }}/{{ style | slug }}-{{ aspect_ratio | slug }}"
    """


@pytest.fixture
def rendered(tmp_path: Path, render: Render) -> Path:
    write_tree(
        tmp_path,
        {
            "r.yaml": RECIPE,
            "images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
        },
    )
    code, out, err = render("r.yaml", RENDER_HOME=str(tmp_path / "home"))
    assert code == 0, err
    assert out.endswith("  report   renders/r/index.html\n")
    return tmp_path / "renders" / "r"


def test_every_run_ends_with_a_report_of_every_job(rendered: Path) -> None:
    page = (rendered / "index.html").read_text()
    assert page.count('<div class="cell succeeded">') == 6
    # lamp/cozy, which the exclude removed, in both sections
    assert page.count('<div class="cell empty excluded">excluded</div>') == 2
    assert 'class="cell empty"' not in page
    assert "not rendered yet" not in page
    assert page.count("<section>") == 2  # a section per aspect ratio
    assert "<h2>aspect_ratio 1x1</h2>" in page
    assert "rows: product · columns: style · sections: aspect_ratio" in page
    assert "PREVIEW: local renders, not Segmind's" in page
    thumbs = list((rendered / ".thumbs").rglob("*.jpg"))
    assert len(thumbs) == 6
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (rendered / src).exists()
    for href in re.findall(r'<a href="([^"]+)"><img', page):
        assert (rendered / href).exists()


def test_every_user_string_stays_text(rendered: Path) -> None:
    page = (rendered / "index.html").read_text()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "sofa &amp; &lt;b&gt;chair&lt;/b&gt;" in page
    assert "loft &quot;2&quot;" in page


def test_the_page_needs_no_network(rendered: Path) -> None:
    page = (rendered / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page


def test_render_report_rewrites_it_from_the_folder_or_the_run_id(
    rendered: Path, render: Render
) -> None:
    (rendered / "index.html").unlink()
    code, out, _ = render("report", str(rendered), RENDER_HOME=str(rendered.parents[1] / "home"))
    assert (code, out) == (0, f"{rendered / 'index.html'}\n")
    run_id = json.loads(next((rendered / "runs").glob("*.json")).read_text())["id"]
    (rendered / "index.html").unlink()
    code, out, _ = render("report", run_id, RENDER_HOME=str(rendered.parents[1] / "home"))
    assert code == 0
    assert (rendered / "index.html").exists()
    code, _, err = render("report", "nope", RENDER_HOME=str(rendered.parents[1] / "home"))
    assert (code, err) == (
        2,
        "error: nope: no such run folder or run id (a run's folder is renders/<recipe>/)\n",
    )


def test_no_report_skips_it(tmp_path: Path, render: Render) -> None:
    write_tree(
        tmp_path,
        {
            "r.yaml": RECIPE,
            "images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
        },
    )
    code, out, _ = render(
        "r.yaml", "--no-report", "--limit", "1", RENDER_HOME=str(tmp_path / "home")
    )
    assert code == 0
    assert "\n  report " not in out
    assert not (tmp_path / "renders" / "r" / "index.html").exists()


def test_failed_and_skipped_jobs_show_as_such(tmp_path: Path, render: Render) -> None:
    write_tree(
        tmp_path,
        {
            "r.yaml": "model: sd1.5-scifi\nprice_usd: 0.01\nbudget_usd: 1\nmatrix:\n  n: [0, 1, 2, 3, 4, 5]\nparams:\n  prompt: city {{ n }}\n  base64: true\n"
        },
    )
    with render.simulator(
        unpriced_usd=0.01, images="tiny", faults=parse_faults("failed=0.5"), seed=4
    ) as segmind:
        host = segmind.base.removeprefix("http://")
        env = {**segmind.env("sk-test"), "RENDER_HOME": str(tmp_path / "home")}
        render("r.yaml", **env)
        _code, _, _ = render("r.yaml", **env)  # the successes are skipped, the failures tried again
    page = (tmp_path / "renders" / "r" / "index.html").read_text()
    # Seed 4's schedule: the first run fails 5 of 6; the second skips the one done, and of the 5
    # sent again 4 succeed and 1 fails.
    assert page.count('<div class="cell skipped">') == 1
    assert page.count('<div class="cell succeeded">') == 4
    assert page.count('<div class="cell failed">') == 1
    assert "Generation failed (simulated): the content was blocked" in page
    # Money sent to a stand-in for Segmind is labelled with its host, never as Segmind's.
    assert f"STAND-IN: rendered by {host}, not Segmind" in page
    assert f"on {host} · this run $0.04 spent of a $1.00 budget" in page
    assert (
        "6 jobs: 1 failed · 1 skipped · 4 succeeded · every run into this folder spent $0.05"
        in page
    )


def test_after_a_limited_run_the_sheet_shows_every_current_output(
    rendered: Path, render: Render
) -> None:
    """Issue 10: the sheet after --limit showed only that run's jobs; the header totals the batch."""
    code, _, err = render(
        "r.yaml", "--limit", "1", "--force", RENDER_HOME=str(rendered.parents[1] / "home")
    )
    assert code == 0, err
    page = (rendered / "index.html").read_text()
    assert page.count('<div class="cell succeeded">') == 6
    assert page.count("from run ") == 5  # the five jobs the second run did not render
    assert "6 jobs: 6 succeeded · every run into this folder spent $0.00" in page


def test_an_image_too_large_to_decode_gets_no_thumbnail(rendered: Path) -> None:
    """Issue 10: a 20000×20000 PNG (a few KB) crashed the report with DecompressionBombError."""
    (output,) = list((rendered / "lamp").glob("loft-2-1x1.*"))
    Image.new("1", (20000, 20000)).save(output.with_suffix(".png"), optimize=True)
    assert output.with_suffix(".png").stat().st_size < 100_000
    output.unlink()
    manifest = (
        (rendered / "manifest.jsonl")
        .read_text()
        .replace(output.name, output.with_suffix(".png").name)
    )
    (rendered / "manifest.jsonl").write_text(manifest)
    page = write_report(rendered).read_text()
    assert "no thumbnail: the image is too large to decode here" in page
    Image.new("1", (8000, 6000)).save(output.with_suffix(".png"))
    page = write_report(rendered).read_text()
    assert "no thumbnail: 8000×6000 pixels is too large to decode here" in page


def test_a_report_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no run recorded here yet"):
        write_report(tmp_path)
    with pytest.raises(InputError, match="no such run folder or run id"):
        find_run_dir(tmp_path / "missing", home=tmp_path)


LIGHTING = """\
    model: ai-product-photography
    matrix:
      product:
        - {id: vase, image: images/sofa.png, noun: "vase & <b>tulips</b>"}
      lighting:
        - {id: neon, prompt: "magenta \\"neon\\" <rim> light"}
    params:
      image: "{{ product.image }}"
      prompt: "A {{ product.noun }}"
      lighting_prompt: "{{ lighting.prompt }}"
      aspect_ratio: "4:5 (Artistic Frame)"
      megapixel: 0.1
      seed: 7
    output: "{{ product.id }}/{{ lighting.id }}"
    """


def test_every_text_parameter_is_shown_labelled_and_escaped(tmp_path: Path, render: Render) -> None:
    """Only the prompt was shown: lighting_prompt, which drives recipes/lighting.yaml, was not."""
    write_tree(
        tmp_path,
        {
            "l.yaml": LIGHTING,
            "images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
        },
    )
    code, _, err = render("l.yaml", RENDER_HOME=str(tmp_path / "home"))
    assert code == 0, err
    page = (tmp_path / "renders" / "l" / "index.html").read_text()
    assert (
        "<details><summary>prompt · lighting_prompt</summary><dl>"
        "<dt>prompt</dt><dd>A vase &amp; &lt;b&gt;tulips&lt;/b&gt;</dd>"
        "<dt>lighting_prompt</dt><dd>magenta &quot;neon&quot; &lt;rim&gt; light</dd>"
        "</dl></details>"
    ) in page


def test_the_jobs_not_rendered_yet_and_the_excluded_ones_say_which(
    tmp_path: Path, render: Render
) -> None:
    write_tree(
        tmp_path,
        {
            "r.yaml": RECIPE,
            "images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
        },
    )
    code, _, err = render("r.yaml", "--limit", "2", RENDER_HOME=str(tmp_path / "home"))
    assert code == 0, err
    page = (tmp_path / "renders" / "r" / "index.html").read_text()
    assert page.count('<div class="cell succeeded">') == 2
    assert page.count('<div class="cell empty not-rendered-yet">not rendered yet</div>') == 4
    assert page.count('<div class="cell empty excluded">excluded</div>') == 2
    assert "6 jobs: 2 succeeded · 4 not rendered yet · every run" in page


INCLUDED = """\
    model: scenecraft
    matrix:
      product:
        - {id: sofa, image: images/sofa.png}
        - {id: lamp, image: images/sofa.png}
      style: [cozy, loft]
      aspect_ratio: ["1:1 (Perfect Square)"]
    include:
      - {product: sofa, style: cozy, aspect_ratio: "9:16 (Slim Vertical)"}
    params:
      image: "{{ product.image }}"
      prompt: "A {{ product.id }} in a {{ style }} room"
      aspect_ratio: "{{ aspect_ratio }}"
      megapixel: "0.1"
      seed: 1
    output: "{{ product.id }}/{{ style }}-{{ aspect_ratio | slug }}"
    """


def test_a_lone_include_gets_its_cell_not_a_grid_of_empty_ones(
    tmp_path: Path, render: Render
) -> None:
    """An include's extra format made a section of empty cells around its one job; a section
    where fewer than half the cells are jobs shows only those, each captioned."""
    write_tree(
        tmp_path,
        {
            "r.yaml": INCLUDED,
            "images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
        },
    )
    code, _, err = render("r.yaml", RENDER_HOME=str(tmp_path / "home"))
    assert code == 0, err
    page = (tmp_path / "renders" / "r" / "index.html").read_text()
    assert page.count('<div class="cell succeeded">') == 5
    assert 'class="cell empty' not in page
    assert page.count('<div class="grid" style="--columns: 2">') == 1  # the 1:1 grid, 2 × 2
    assert (
        "<h2>aspect_ratio 9x16</h2>\n"
        '<p class="section-note">only 1 job shown: the other 3 product × style combinations'
        " are not in the recipe</p>\n"
        '<div class="grid compact" style="--columns: 2">\n'
        '<div class="label row"></div>\n'
        '<div class="cell succeeded">\n'
        '<div class="where">sofa · cozy</div>\n'
        '<a href="sofa/cozy-9x16.jpg">'
    ) in page
