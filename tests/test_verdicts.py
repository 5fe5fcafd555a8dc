"""Verdicts: `render approve` and `render reject` on a run's shots, kept in the ledger by recipe, job
and picture, so a re-render makes a job pending again; `--rejected [--reseed]` renders just those."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx

from engine.ledger import Ledger
from engine.reviewapp import create_review_app
from engine.settings import ledger_path
from engine.shots import run_shots
from engine.verdicts import Verdicts, state_of
from tests.helpers import ROOT, Render, write_tree

CITY = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      district: [harbour, tower, market]
      hour: [dawn, noon]
    params:
      prompt: "a sci-fi {{ district }} at {{ hour }}"
      seed: auto
    """


def _states(folder: Path) -> dict[str, str]:
    run = run_shots(folder)
    book = Ledger(ledger_path(None))
    try:
        return state_of(run, Verdicts(book).of(run.recipe))
    finally:
        book.close()


def test_approve_and_reject_by_job_and_by_axis_value(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    assert render("city.yaml").code == 0
    code, out, _ = render("approve", "renders/city", "--only", "hour=dawn")
    assert (code, out) == (
        0,
        "approved: 3 shots of city (run " + run_shots(tmp_path / "renders/city").run_id + ")\n",
    )
    code, out, _ = render("reject", "renders/city", "tower/noon", "--note", "too dark")
    assert code == 0
    assert out.startswith("rejected: 1 shot of city")
    assert _states(tmp_path / "renders/city") == {
        "harbour/dawn": "approved",
        "harbour/noon": "pending",
        "tower/dawn": "approved",
        "tower/noon": "rejected",
        "market/dawn": "approved",
        "market/noon": "pending",
    }


def test_a_verdict_names_what_is_wrong_with_the_shots_it_was_given(
    render: Render, tmp_path: Path
) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    render("city.yaml")
    code, _, err = render("reject", "renders/city", "tower/midnight")
    assert code == 2
    assert err == (
        "error: run " + run_shots(tmp_path / "renders/city").run_id + " has no picture for job "
        "tower/midnight (jobs: harbour/dawn, harbour/noon, tower/dawn, tower/noon, market/dawn, "
        "market/noon)\n"
    )
    code, _, err = render("approve", "renders/city", "--only", "weather=rain")
    assert (code, err) == (
        2,
        "error: --only weather=rain: no axis 'weather' (axes: district, hour)\n",
    )
    code, _, err = render("approve", "renders/city", "--only", "hour=dusk")
    assert (code, err) == (2, "error: --only hour=dusk: no such value (values: dawn, noon)\n")
    code, _, err = render("approve", "renders/city")
    assert code == 2
    assert "name the shots: job ids" in err
    code, _, err = render("approve", "nowhere")
    assert code == 2
    assert err.startswith("error: nowhere: no such run folder or run id")


def test_a_re_render_makes_the_job_pending_again(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    render("city.yaml")
    render("approve", "renders/city", "--only", "district=harbour")
    (tmp_path / "city.yaml").write_text(
        (tmp_path / "city.yaml").read_text().replace("at {{ hour }}", "at {{ hour }}, in rain")
    )
    render("city.yaml", "--only", "hour=noon")
    states = _states(tmp_path / "renders/city")
    # harbour/dawn kept its approved picture (not rendered again); harbour/noon is a new picture.
    assert states["harbour/dawn"] == "approved"
    assert states["harbour/noon"] == "pending"


def test_rejected_renders_just_the_rejected_jobs_and_reseed_makes_them_new(
    render: Render, tmp_path: Path
) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    render("city.yaml")
    render("reject", "renders/city", "tower/noon", "market/dawn")
    code, out, err = render("city.yaml", "--rejected", "--dry-run", "--json")
    assert code == 0
    assert err == (
        "note: --rejected: a job whose payload did not change is the same request, so it reuses "
        "the rejected picture; add --reseed for a new take, or edit the recipe\n"
    )
    plan = json.loads(out)
    jobs = {job["id"]: job for job in plan["jobs"]}
    assert set(jobs) == {"tower/noon", "market/dawn"}
    # The same payload as the rejected picture's: nothing new to render without --reseed.
    assert {job["action"] for job in jobs.values()} == {"reuse"}
    code, out, _ = render("city.yaml", "--rejected", "--reseed", "--dry-run", "--json")
    reseeded = json.loads(out)
    seeds = {job["id"]: job["payload"]["seed"] for job in reseeded["jobs"]}
    assert set(seeds) == {"tower/noon", "market/dawn"}
    assert all(seeds[job] != jobs[job]["payload"]["seed"] for job in seeds)
    code, out, _ = render("city.yaml", "--rejected", "--reseed")
    assert code == 0
    assert out.startswith("city: 2 succeeded")
    # New pictures: pending, and nothing is rejected any more.
    states = _states(tmp_path / "renders/city")
    assert states["tower/noon"] == states["market/dawn"] == "pending"
    code, out, _ = render("city.yaml", "--rejected", "--dry-run", "--json")
    assert (code, json.loads(out)["jobs"]) == (0, [])


def test_reseed_goes_with_rejected(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    code, _, err = render("city.yaml", "--reseed")
    assert code == 2
    assert "--reseed goes with --rejected" in err


def test_the_flagship_rejects_and_exports(render: Render, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    assert render("recipes/spring.yaml").code == 0
    render("approve", "renders/spring", "--only", "product=sofa")
    code, out, _ = render("export", "renders/spring", "--approved", "dam")
    assert code == 0
    assert out == (
        "exported 10 approved pictures of spring to dam (10 copied, 0 unchanged, 0 no longer "
        "approved removed); 24 pending, 0 rejected\n"
    )


def test_the_contact_sheet_shows_each_cells_verdict(render: Render, tmp_path: Path) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    render("city.yaml")
    render("approve", "renders/city", "harbour/dawn")
    render("reject", "renders/city", "tower/noon", "--note", "<b>too</b> dark")
    assert render("report", "renders/city").code == 0
    page = (tmp_path / "renders/city/index.html").read_text()
    assert page.count('<span class="verdict approved">approved</span>') == 1
    assert page.count('<span class="verdict rejected">rejected</span>') == 1
    assert '<p class="verdict-note">&lt;b&gt;too&lt;/b&gt; dark</p>' in page
    # The next run's sheet says it too.
    render("city.yaml")
    page = (tmp_path / "renders/city/index.html").read_text()
    assert page.count('class="verdict ') == 2


def test_verdicts_from_the_review_app_reach_export_and_rejected(
    render: Render, tmp_path: Path
) -> None:
    write_tree(tmp_path, {"city.yaml": CITY})
    render("city.yaml")
    app = create_review_app(tmp_path / "renders/city", None, ledger=ledger_path(None), port=8123)

    async def judge() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8123") as http:
            for jobs, verdict in (
                (["harbour/dawn", "tower/dawn"], "approved"),
                (["market/noon"], "rejected"),
            ):
                answer = await http.post(
                    "/api/verdicts",
                    json={"jobs": jobs, "verdict": verdict},
                    headers={"Origin": "http://127.0.0.1:8123"},
                )
                assert answer.status_code == 200, answer.text

    asyncio.run(judge())
    code, out, _ = render("export", "renders/city", "--approved", "dam")
    assert code == 0
    assert out.startswith("exported 2 approved pictures of city to dam")
    code, out, _ = render("city.yaml", "--rejected", "--reseed", "--dry-run", "--json")
    assert [job["id"] for job in json.loads(out)["jobs"]] == ["market/noon"]
