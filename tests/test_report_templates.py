"""The report's templates (engine/templates/): every value escaped the one way, a missing name an
error rather than a blank, the style inlined, and the templates found inside the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import pytest
from click.testing import CliRunner

from engine import pages
from engine.cli import cli
from engine.report import write_report
from tests.helpers import ROOT, write_tree

HOSTILE = """\
    model: scenecraft
    matrix:
      product:
        - {id: "<b>\\"x\\"</b>", noun: "<script>alert(1)</script> \\"quoted\\" 'single' & co"}
      style: ["loft \\"2\\""]
    params:
      image: sofa.png
      prompt: "A {{ product.noun }} in a {{ style }} room"
      aspect_ratio: "1:1 (Perfect Square)"
      megapixel: "0.1"
      seed: 7
    output: "{{ product.id | slug }}/{{ style | slug }}"
    """

RUN_ID = "20260101-000001-000-a"


def handmade(folder: Path, run: dict[str, Any], entries: list[dict[str, Any]]) -> Path:
    """A run's folder as a run leaves it (its record and manifest), written by hand."""
    record = {
        "id": RUN_ID,
        "recipe": "spring",
        "model": "scenecraft",
        "backend": "preview",
        "axes": ["product"],
        "values": {"product": ["sofa", "lamp", "vase"]},
        "started": "2026-01-01T00:00:00+00:00",
        "seconds": 1.0,
        **run,
    }
    return write_tree(
        folder,
        {
            f"runs/{RUN_ID}.json": json.dumps(record),
            "manifest.jsonl": "".join(json.dumps(entry) + "\n" for entry in entries),
        },
    )


def test_hostile_prompts_and_values_are_escaped_in_text_and_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(
        tmp_path,
        {"q.yaml": HOSTILE, "sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes()},
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    result = CliRunner().invoke(
        cli,
        ["q.yaml", "--backend", "preview"],
        env={"RENDER_HOME": str(tmp_path / "home")},
        prog_name="render",
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "renders" / "q" / "index.html").read_text()
    assert "<script" not in page
    assert "&#34;" not in page  # one escaping throughout: quotes are &quot;, as they always were
    assert (
        "<details><summary>prompt</summary><dl><dt>prompt</dt><dd>A &lt;script&gt;alert(1)"
        "&lt;/script&gt; &quot;quoted&quot; &#x27;single&#x27; &amp; co in a loft &quot;2&quot;"
        " room</dd></dl></details>"
    ) in page
    assert '<div class="label row">&lt;b&gt;&quot;x&quot;&lt;/b&gt;</div>' in page
    assert (
        '<a href="b-x-b/loft-2.jpg"><img src=".thumbs/b-x-b/loft-2.jpg" '
        'alt="&lt;b&gt;&quot;x&quot;&lt;/b&gt;/loft-2" loading="lazy"></a>'
    ) in page
    assert (
        '<div class="facts"><span class="job">&lt;b&gt;&quot;x&quot;&lt;/b&gt;/loft-2</span>'
        " · seed 7 · $0.00</div>"
    ) in page


def test_the_header_and_cells_say_money_and_time_as_the_engine_does(tmp_path: Path) -> None:
    folder = handmade(
        tmp_path / "out",
        {
            "recipe": 'spring "<b>"',
            "backend": "segmind@127.0.0.1:8765",
            "budget_usd": 1.5,
            "spent_usd": 0.1294,
            "unknown_usd": 0.0647,
            "seconds": 125.4,
            "recipe_jobs": ["sofa", "lamp", "vase"],
        },
        [
            {
                "job": "sofa",
                "run": RUN_ID,
                "status": "succeeded",
                "seed": 3,
                "cost_usd": 0.0647,
                "values": {"product": "sofa"},
            },
            {
                "job": "lamp",
                "run": "20250101-000001-000-z",
                "status": "failed",
                "cost_usd": 1234.5,
                "error": "<img src=x onerror=alert(1)>",
                "values": {"product": "lamp"},
            },
        ],
    )
    page = write_report(folder).read_text()
    assert f"<title>spring &quot;&lt;b&gt;&quot; · {RUN_ID}</title>" in page
    assert (
        '<h1>spring &quot;&lt;b&gt;&quot; <span class="preview-badge">'
        "STAND-IN: rendered by 127.0.0.1:8765, not Segmind</span></h1>\n"
        '<p class="meta">3 jobs: 1 failed · 1 succeeded · 1 not rendered yet · every run into this'
        " folder spent $1,234.5647</p>\n"
        '<p class="meta">scenecraft on 127.0.0.1:8765 · this run $0.1294 spent of a $1.50 budget,'
        f" $0.0647 unknown · 2026-01-01 00:00 UTC · 2 min 5 s · run {RUN_ID}</p>\n"
        '<p class="axes">rows: product · columns: -</p>\n'
    ) in page
    assert (
        '<div class="label row">lamp</div>\n'
        '<div class="cell failed">\n'
        '<div class="facts"><span class="job">lamp</span> · from run 20250101-000001-000-z'
        " · $1,234.50</div>\n"
        '<div class="status">failed</div>\n'
        '<p class="error">&lt;img src=x onerror=alert(1)&gt;</p>\n'
        "</div>\n"
    ) in page
    assert (
        '<div class="label row">vase</div>\n'
        '<div class="cell empty not-rendered-yet">not rendered yet</div>\n'
    ) in page


def formats(run: dict[str, Any], jobs: list[str]) -> dict[str, Any]:
    """A handmade run over product × style × format, whose recipe has ``jobs``."""
    return {
        **run,
        "axes": ["product", "style", "format"],
        "values": {"product": ["a", "b"], "style": ["x", "y"], "format": ["sq", "tall", "wide"]},
        "recipe_jobs": jobs,
    }


def entry(job: str, **fields: Any) -> dict[str, Any]:
    """A job's final manifest line, its values read from its id (product/style/format)."""
    values = dict(zip(["product", "style", "format"], job.split("/"), strict=True))
    return {"job": job, "run": RUN_ID, "status": "succeeded", "values": values, **fields}


def test_a_section_with_fewer_jobs_than_half_its_cells_shows_only_those(tmp_path: Path) -> None:
    """The rule: a section is a grid when at least half its cells hold jobs of the recipe (rendered
    or not yet); below that, only its jobs, captioned with their row and column."""
    square = ["a/x/sq", "a/y/sq", "b/x/sq", "b/y/sq"]
    jobs = [*square, "a/x/tall", "b/y/tall", "b/x/wide"]
    rendered = [entry(job) for job in jobs if job != "b/x/wide"]
    page = write_report(handmade(tmp_path / "out", formats({}, jobs), rendered)).read_text()
    assert page.count('<div class="grid" style="--columns: 2">') == 2  # sq: 4 of 4; tall: 2 of 4
    assert page.count('<div class="cell empty excluded">excluded</div>') == 2  # in tall
    assert (
        "<h2>format wide</h2>\n"
        '<p class="section-note">only 1 job shown: the other 3 product × style combinations'
        " are not in the recipe</p>\n"
        '<div class="grid compact" style="--columns: 2">\n'
        '<div class="label row"></div>\n'
        '<div class="cell empty not-rendered-yet"><div class="where">b · x</div>'
        "not rendered yet</div>\n"
        "</div>\n</section>\n"
    ) in page


def test_an_older_record_shows_its_prompt_and_leaves_what_it_cannot_tell_blank(
    tmp_path: Path,
) -> None:
    """Records from before ``texts`` have only the prompt; runs from before ``recipe_jobs`` cannot
    say whether an empty cell is excluded or not rendered yet."""
    old = {"job": "a/x/sq", "run": RUN_ID, "status": "succeeded", "prompt": "<old> prompt"}
    old["values"] = {"product": "a", "style": "x", "format": "sq"}
    newer = entry("a/y/sq", prompt="p", texts={"negative_prompt": "blur", "prompt": "p", "x": ""})
    run = formats({}, [])
    del run["recipe_jobs"]
    page = write_report(
        handmade(tmp_path / "out", run, [old, newer, entry("b/x/wide")])
    ).read_text()
    assert (
        "<details><summary>prompt</summary><dl><dt>prompt</dt><dd>&lt;old&gt; prompt</dd>"
        "</dl></details>"
    ) in page
    assert (
        "<details><summary>prompt · negative_prompt</summary><dl><dt>prompt</dt><dd>p</dd>"
        "<dt>negative_prompt</dt><dd>blur</dd></dl></details>"
    ) in page
    assert page.count('<div class="cell empty"></div>') == 2  # b/x/sq and b/y/sq
    assert 'class="cell empty ' not in page  # neither excluded nor not rendered yet: unknown
    assert "<h2>format tall</h2>" not in page  # nothing recorded there
    assert (
        '<p class="section-note">only 1 job shown: the other 3 product × style combinations'
        " have no record here</p>"
    ) in page


def test_the_style_sheet_is_inlined_so_the_page_stands_alone(tmp_path: Path) -> None:
    folder = handmade(tmp_path / "out", {}, [])
    page = write_report(folder).read_text()
    css = files("engine").joinpath("templates", "report.css").read_text(encoding="utf-8")
    assert f"<style>\n{css}</style></head>" in page
    assert "<link" not in page


def test_a_name_the_context_lacks_is_an_error_not_a_blank() -> None:
    template = pages._templates().get_template("report.html.j2")
    with pytest.raises(jinja2.UndefinedError) as missing:
        template.render(title="t")
    assert str(missing.value) == "'header' is undefined"
    with pytest.raises(jinja2.UndefinedError) as missing_field:
        pages._templates().from_string("[{{ header.recipe }}]").render(header=object())
    assert str(missing_field.value) == "'object object' has no attribute 'recipe'"


def test_the_templates_are_found_inside_the_package() -> None:
    templates = pages._templates()
    assert templates is pages._templates()  # built once
    assert isinstance(templates.loader, jinja2.PackageLoader)
    assert {"base.html.j2", "report.css", "report.html.j2"} <= set(
        templates.loader.list_templates()
    )


def test_an_installed_copy_elsewhere_renders_the_same_page(tmp_path: Path) -> None:
    """The package zipped, far from this source tree: its templates come from inside it."""
    package = Path(pages.__file__).parent
    archive = tmp_path / "engine.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, path.relative_to(package.parent).as_posix())
    folder = handmade(
        tmp_path / "out", {}, [{"job": "sofa", "run": RUN_ID, "status": "failed", "error": "x"}]
    )
    here = write_report(folder).read_text()
    (folder / "index.html").unlink()
    script = (
        "import pathlib, sys, engine.report as r\n"
        "print(r.__file__)\n"
        "r.write_report(pathlib.Path(sys.argv[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(folder)],
        env={**os.environ, "PYTHONPATH": str(archive)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{archive / 'engine' / 'report.py'}\n"
    assert (folder / "index.html").read_text() == here
