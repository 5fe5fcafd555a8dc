"""The review app (`render review RUN`): the page lists every shot, escaping what it shows; verdicts
land in the ledger on the exact picture; it answers only its own loopback origin; `render review`
serves until Ctrl-C. Then the page in Debian's headless Chromium (Playwright): the keys, the
filters, bulk approval, a phone's width, no console error, and the README's screenshot."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from click.testing import CliRunner
from starlette.applications import Starlette

import engine.reviewapp
from engine.cli import cli
from engine.errors import InputError
from engine.ledger import Ledger
from engine.reviewapp import create_review_app, serve_review
from engine.shots import run_shots
from engine.verdicts import Judgement, Verdicts
from tests.browser import Tab, aside
from tests.helpers import ROOT, Render, interruptible, write_tree

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"

RECIPE = """\
    model: scenecraft
    matrix:
      product:
        - {id: "<script>alert(1)</script>", image: images/sofa.png, noun: "sofa & <b>chair</b>"}
        - {id: lamp, image: images/lamp.png, noun: brass lamp}
      style: [cozy, loft]
    params:
      image: "{{ product.image }}"
      prompt: "Product photo in a {{ style }} room with a {{ product.noun }}"
      aspect_ratio: "1:1 (Perfect Square)"
      megapixel: "0.1"
      seed: auto
    output: "{{ product.id | slug }}/{{ style }}"
    """
SCRIPT = "<script>alert(1)</script>"
JOBS = [f"{SCRIPT}/cozy", f"{SCRIPT}/loft", "lamp/cozy", "lamp/loft"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Rendered:
    """A recipe rendered by `render` (the preview backend) into its folder, and its ledger."""

    def __init__(self, root: Path, render: Render) -> None:
        self.root = root
        self.render = render
        self.home = root / "home"
        self.ledger = self.home / "ledger.sqlite"
        self.out = root / "renders" / "r"

    def run(self, recipe: str = RECIPE, *options: str) -> str:
        """Render ``recipe`` (with ``options``); the id of the run it made."""
        write_tree(self.root, {"r.yaml": recipe})
        code, _, err = aside(
            self.render,
            "r.yaml",
            "--out",
            str(self.root / "renders"),
            *options,
            RENDER_HOME=str(self.home),
        )
        assert code == 0, err
        return run_shots(self.out).run_id

    def verdicts(self) -> dict[tuple[str, str], Judgement]:
        ledger = Ledger(self.ledger)
        try:
            return Verdicts(ledger).of("r")
        finally:
            ledger.close()

    def app(self, run_id: str | None = None, port: int = PORT) -> Starlette:
        return create_review_app(self.out, run_id, ledger=self.ledger, port=port)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe rendered once for the module (the preview backend, its own RENDER_HOME); each
    test gets a copy."""
    root = tmp_path_factory.mktemp("first-run")
    images = ROOT / "recipes" / "images"
    write_tree(
        root,
        {
            "r.yaml": RECIPE,
            "images/sofa.png": (images / "sofa.png").read_bytes(),
            "images/lamp.png": (images / "lamp.png").read_bytes(),
        },
    )
    arguments = [str(root / "r.yaml"), "--backend", "preview", "--out", str(root / "renders")]
    result = aside(CliRunner().invoke, cli, arguments, env={"RENDER_HOME": str(root / "home")})
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def rendered(first_run: Path, tmp_path: Path, render: Render) -> Rendered:
    shutil.copytree(first_run, tmp_path, dirs_exist_ok=True)
    return Rendered(tmp_path, render)


@contextlib.asynccontextmanager
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


def judge(verdict: str, *jobs: str, **fields: Any) -> dict[str, Any]:
    """The keyword arguments of a POST /api/verdicts."""
    return {"json": {"jobs": list(jobs), "verdict": verdict, **fields}}


# --- the page and its data ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_page_lists_every_shot_and_every_string_stays_text(rendered: Rendered) -> None:
    async with client(rendered.app()) as http:
        answer = await http.get("/")
    assert answer.status_code == 200
    page = answer.text
    assert page.count('<article class="cell pending"') == 4
    for job in JOBS:
        escaped = job.replace("<", "&lt;").replace(">", "&gt;")
        assert f'data-job="{escaped}"' in page
    # The only script is the page's own, and it runs only with this response's nonce.
    assert page.count("<script") == 1
    nonce = re.search(r'<script nonce="([^"]+)">', page)
    assert nonce is not None
    assert f"script-src 'nonce-{nonce.group(1)}'" in answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;/cozy" in page
    assert "Product photo in a cozy room with a sofa &amp; &lt;b&gt;chair&lt;/b&gt;" in page
    assert "product <b>&lt;script&gt;alert(1)&lt;/script&gt;</b>" in page  # the axis values
    assert "style <b>loft</b>" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from the network
    assert "<link" not in page
    assert (
        'filter" data-filter="pending" aria-pressed="false">pending <span class="count" data-count="pending">4</span>'
        in page
    )


@pytest.mark.anyio
async def test_each_picture_is_served_from_the_run_never_from_a_path_asked_for(
    rendered: Rendered,
) -> None:
    run = run_shots(rendered.out)
    shot = run.shots["lamp/cozy"]
    path = run.file(shot)
    assert path is not None
    async with client(rendered.app()) as http:
        image = await http.get("/image", params={"job": "lamp/cozy", "v": shot.digest})
        thumb = await http.get("/thumb", params={"job": f"{SCRIPT}/loft"})
        other = await http.get("/image", params={"job": "manifest.jsonl"})
        climbing = await http.get("/image", params={"job": "../../home/ledger.sqlite"})
    assert image.status_code == 200
    assert image.content == path.read_bytes()
    assert image.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content.startswith(b"\xff\xd8")
    assert thumb.headers["cache-control"] == "no-cache"  # no sha256 in its URL
    assert other.status_code == climbing.status_code == 404
    assert other.json() == {"error": f'run {run.run_id} has no picture for job "manifest.jsonl"'}


@pytest.mark.anyio
async def test_a_picture_too_large_to_thumbnail_is_sent_whole(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.reviewapp, "_MAX_PIXELS", 100)
    digest = run_shots(rendered.out).shots["lamp/loft"].digest
    async with client(rendered.app()) as http:
        thumb = await http.get("/thumb", params={"job": "lamp/loft"})
        icon = await http.get("/favicon.ico")
    assert thumb.status_code == 307
    assert thumb.headers["location"] == f"/image?job=lamp%2Floft&v={digest}"
    assert icon.status_code == 204  # asked by every browser: answered, not a console error


@pytest.mark.anyio
async def test_verdicts_land_in_the_ledger_on_the_exact_picture(rendered: Rendered) -> None:
    run = run_shots(rendered.out)
    async with client(rendered.app()) as http:
        approved = await http.post("/api/verdicts", **judge("approved", "lamp/cozy", "lamp/loft"))
        rejected = await http.post(
            "/api/verdicts", **judge("rejected", f"{SCRIPT}/cozy", note="too dark")
        )
        states = (await http.get("/api/shots")).json()
        page = (await http.get("/")).text
    assert approved.status_code == rejected.status_code == 200
    assert approved.json()["given"] == 2
    found = rendered.verdicts()
    assert {(job, verdict.verdict, verdict.note) for (job, _), verdict in found.items()} == {
        ("lamp/cozy", "approved", None),
        ("lamp/loft", "approved", None),
        (f"{SCRIPT}/cozy", "rejected", "too dark"),
    }
    for (job, sha256), _ in found.items():
        assert sha256 == run.shots[job].digest
    assert states["run"] == run.run_id
    assert states["counts"] == {"all": 4, "pending": 1, "approved": 2, "rejected": 1}
    assert states["shots"][f"{SCRIPT}/cozy"]["state"] == "rejected"
    assert states["shots"][f"{SCRIPT}/cozy"]["note"] == "too dark"
    assert states["shots"][f"{SCRIPT}/loft"] == {
        "sha256": run.shots[f"{SCRIPT}/loft"].digest,
        "state": "pending",
        "note": None,
        "given_at": None,
    }
    assert page.count('<article class="cell approved"') == 2
    assert '<p class="note">too dark</p>' in page

    # Pending again: the verdict and its note go; a note alone is kept when none is sent.
    async with client(rendered.app()) as http:
        await http.post("/api/verdicts", **judge("pending", "lamp/cozy"))
        await http.post("/api/verdicts", **judge("approved", f"{SCRIPT}/cozy"))
    found = rendered.verdicts()
    assert {job for job, _ in found} == {"lamp/loft", f"{SCRIPT}/cozy"}
    assert found[(f"{SCRIPT}/cozy", run.shots[f"{SCRIPT}/cozy"].digest)].verdict == "approved"
    assert found[(f"{SCRIPT}/cozy", run.shots[f"{SCRIPT}/cozy"].digest)].note == "too dark"


@pytest.mark.anyio
async def test_a_new_picture_is_pending_again_and_a_new_run_shows_on_reload(
    rendered: Rendered,
) -> None:
    first = run_shots(rendered.out)
    app = rendered.app()  # the folder's latest run, whichever that is at each request
    async with client(app) as http:
        await http.post("/api/verdicts", **judge("approved", *JOBS))
    # The lamps change, and only they are rendered.
    second_id = rendered.run(RECIPE.replace("brass lamp", "copper lamp"), "--only", "product=lamp")
    second = run_shots(rendered.out)
    assert second.run_id == second_id != first.run_id
    async with client(app) as http:
        states = (await http.get("/api/shots")).json()
        page = (await http.get("/")).text
        # A verdict given on the picture the page showed, now replaced: refused, not misplaced.
        stale = await http.post(
            "/api/verdicts",
            **judge("rejected", "lamp/cozy", seen={"lamp/cozy": first.shots["lamp/cozy"].digest}),
        )
    assert states["run"] == second_id
    assert {job: shot["state"] for job, shot in states["shots"].items()} == {
        f"{SCRIPT}/cozy": "approved",
        f"{SCRIPT}/loft": "approved",
        "lamp/cozy": "pending",
        "lamp/loft": "pending",
    }
    assert second.shots["lamp/cozy"].digest != first.shots["lamp/cozy"].digest
    assert f"run <b>{second_id}</b>" in page
    assert page.count(f"from run {first.run_id}") == 2  # the sofas: the first run's pictures
    assert stale.status_code == 409
    assert stale.json() == {
        "error": f"lamp/cozy has a new picture since the page was loaded (run {second_id}); "
        "reload to see it"
    }
    # The old picture keeps its verdict: the ledger remembers what was approved.
    assert len(rendered.verdicts()) == 4
    # A review pinned to the first run still shows it, as that run left it.
    async with client(rendered.app(first.run_id)) as http:
        pinned = (await http.get("/api/shots")).json()
    assert pinned["run"] == first.run_id
    assert pinned["counts"]["approved"] == 4


# --- who may ask ----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"Host": f"evil.example:{PORT}"},  # a name rebound to 127.0.0.1 (DNS rebinding)
        {"Host": "127.0.0.1:9"},
        {"Host": "127.0.0.1"},
    ],
)
async def test_a_foreign_host_is_refused(rendered: Rendered, headers: dict[str, str]) -> None:
    async with client(rendered.app()) as http:
        page = await http.get("/", headers=headers)
        image = await http.get("/image", params={"job": "lamp/cozy"}, headers=headers)
        post = await http.post("/api/verdicts", **judge("approved", "lamp/cozy"), headers=headers)
    assert page.status_code == image.status_code == post.status_code == 403
    assert post.json() == {
        "error": f"refused: this review app answers only at {BASE} and http://localhost:{PORT} "
        f"(Host: '{headers['Host']}')"
    }
    assert rendered.verdicts() == {}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", f"https://127.0.0.1:{PORT}", f"http://localhost:{PORT}"],
)
async def test_a_foreign_origin_is_refused(rendered: Rendered, origin: str) -> None:
    async with client(rendered.app()) as http:
        post = await http.post(
            "/api/verdicts", **judge("approved", "lamp/cozy"), headers={"Origin": origin}
        )
        read = await http.get("/api/shots", headers={"Origin": origin})
    assert post.status_code == read.status_code == 403
    assert post.json() == {
        "error": f"refused: a request from {origin} cannot use this review app (only its own "
        f"page, {BASE}, can)"
    }
    assert rendered.verdicts() == {}


@pytest.mark.anyio
async def test_its_own_origin_by_either_name_is_answered(rendered: Rendered) -> None:
    async with client(rendered.app()) as http:
        by_number = await http.post(
            "/api/verdicts", **judge("approved", "lamp/cozy"), headers={"Origin": BASE}
        )
        by_name = await http.post(
            "/api/verdicts",
            **judge("rejected", "lamp/loft"),
            headers={"Host": f"localhost:{PORT}", "Origin": f"http://localhost:{PORT}"},
        )
    assert by_number.status_code == by_name.status_code == 200
    assert len(rendered.verdicts()) == 2


# --- what a POST must be --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "the body is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        (b"", "the body is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        (b'["lamp/cozy"]', 'the body must be a JSON object, such as {"jobs": ["JOB"], "verdict": "approved"}'),
        (b'{"jobs": ["lamp/cozy"], "verdict": "approved", "why": 1}', 'unknown field "why" (fields: jobs, verdict, note, seen)'),
        (b'{"verdict": "approved"}', '"jobs" must be a non-empty list of job ids'),
        (b'{"jobs": [], "verdict": "approved"}', '"jobs" must be a non-empty list of job ids'),
        (b'{"jobs": "lamp/cozy", "verdict": "approved"}', '"jobs" must be a non-empty list of job ids'),
        (b'{"jobs": [1], "verdict": "approved"}', '"jobs" must be a non-empty list of job ids'),
        (b'{"jobs": ["lamp/cozy"]}', '"verdict" is missing: "approved", "rejected" or "pending"'),
        (b'{"jobs": ["lamp/cozy"], "verdict": "maybe"}', '"verdict" must be "approved", "rejected" or "pending", not "maybe"'),
        (b'{"jobs": ["lamp/cozy"], "verdict": null}', '"verdict" must be "approved", "rejected" or "pending", not null'),
        (b'{"jobs": ["lamp/cozy"], "verdict": "approved", "note": 3}', '"note" must be a string, or null to keep the note there is'),
        (b'{"jobs": ["lamp/cozy"], "verdict": "pending", "note": "why"}', 'a pending shot keeps no note: send the note with "approved" or "rejected"'),
        (b'{"jobs": ["lamp/cozy"], "verdict": "approved", "seen": ["x"]}', '"seen" must map job ids to the sha256 of the picture shown'),
        (b'{"jobs": ["lamp/cozy", "lamp/nope", "<b>"], "verdict": "approved"}', 'run RUN has no picture for jobs "lamp/nope", "<b>"'),
        (b'{"jobs": ["lamp/nope"], "verdict": "approved"}', 'run RUN has no picture for job "lamp/nope"'),
    ],
)  # fmt: skip
async def test_a_bad_request_says_what_is_wrong(
    rendered: Rendered, body: bytes, message: str
) -> None:
    async with client(rendered.app()) as http:
        answer = await http.post(
            "/api/verdicts", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 400
    assert answer.json() == {"error": message.replace("RUN", run_shots(rendered.out).run_id)}
    assert rendered.verdicts() == {}  # nothing written, not even for the jobs that exist


@pytest.mark.anyio
async def test_a_change_must_be_a_json_post(rendered: Rendered) -> None:
    body = json.dumps({"jobs": ["lamp/cozy"], "verdict": "approved"})
    async with client(rendered.app()) as http:
        # What a cross-site form can send without the browser asking first.
        form = await http.post(
            "/api/verdicts", content=body, headers={"Content-Type": "text/plain"}
        )
        bare = await http.post("/api/verdicts", content=body)
        read = await http.get("/api/verdicts")
        long = await http.post("/api/verdicts", **judge("approved", "lamp/cozy", note="x" * 2001))
    assert form.status_code == bare.status_code == 415
    assert form.json() == {
        "error": "send the verdict as JSON (Content-Type: application/json), not text/plain"
    }
    assert read.status_code == 405
    assert long.status_code == 400
    assert long.json() == {"error": '"note" is too long: 2001 characters (at most 2000)'}
    assert rendered.verdicts() == {}


# --- `render review` ------------------------------------------------------------------------------


def test_render_review_serves_until_ctrl_c(rendered: Rendered) -> None:
    render = Path(sys.executable).with_name("render")
    command = [str(render), "review", str(rendered.out), "--port", "0"]
    process = subprocess.Popen(
        interruptible(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={**os.environ, "RENDER_HOME": str(rendered.home)},
    )
    first: list[str] = []
    said = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        first.append(process.stdout.readline())  # written once it listens ("" if it exits)
        said.set()

    reader = threading.Thread(target=read, name="render-review-stdout", daemon=True)
    reader.start()
    try:
        said.wait(timeout=60)  # a guard against a server that neither starts nor exits
        found = re.fullmatch(
            r"reviewing (.+) at (http://127\.0\.0\.1:\d+) \(Ctrl-C stops\)\n", "".join(first)
        )
        assert found, first
        assert found.group(1) == str(rendered.out)
        with httpx.Client(base_url=found.group(2)) as http:
            states = http.get("/api/shots")
            given = http.post("/api/verdicts", json={"jobs": ["lamp/cozy"], "verdict": "approved"})
        assert states.status_code == given.status_code == 200
        assert states.json()["counts"]["all"] == 4
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
        reader.join(timeout=10)
    assert process.returncode == 130, err
    assert err == "interrupted\n"
    assert len(rendered.verdicts()) == 1


def test_render_review_of_a_folder_with_no_run_is_an_input_error(
    render: Render, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = render("review", "empty", RENDER_HOME=str(tmp_path / "home"))
    assert code == 2
    assert out == ""
    assert "empty: no run recorded here yet (render a recipe first)" in err


def test_a_port_in_use_is_an_input_error(rendered: Rendered) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        def never(url: str) -> None:
            raise AssertionError(f"it should not listen, yet said {url}")

        with pytest.raises(InputError, match=rf"^127\.0\.0\.1:{port}: cannot listen there \("):
            serve_review(rendered.out, None, ledger=rendered.ledger, port=port, on_ready=never)


# --- in a real browser ----------------------------------------------------------------------------


@contextlib.contextmanager
def listening(app_for: Any) -> Iterator[str]:
    """The review app on a free loopback port, uvicorn in a thread, until the block ends; yields
    its URL once uvicorn says it listens. ``app_for(port)`` makes the app."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    up = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            up.set()

    config = uvicorn.Config(app_for(port), lifespan="off", log_level="warning")
    server = Server(config)

    def run() -> None:
        try:
            server.run(sockets=[listener])
        finally:
            up.set()  # it stopped before it started: the test fails below, not after a timeout

    thread = threading.Thread(target=run, name="review-app", daemon=True)
    thread.start()
    try:
        up.wait(timeout=60)  # a guard against a server that neither starts nor fails
        assert server.started, "the review app did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    opened = Tab(browser, width=1280, height=900)
    yield opened
    opened.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect  # noqa: PLC0415 - skipped without it

    return playwright_expect(locator)


SELECTED = re.compile(r"\bselected\b")


def cell(tab: Tab, job: str) -> Any:
    return tab.page.locator(f'.cell[data-job="{job}"]')


def test_the_keys_give_verdicts_that_reach_the_ledger_and_survive_a_reload(
    rendered: Rendered, tab: Tab
) -> None:
    page = tab.page
    with listening(lambda port: rendered.app(port=port)) as url:
        page.goto(url)
        cells = page.locator(".cell")
        expect(cells).to_have_count(4)
        expect(cells.nth(0)).to_have_class(SELECTED)  # the first shot, ready for keys
        page.keyboard.press("a")
        expect(cells.nth(0)).to_have_attribute("data-state", "approved")
        page.keyboard.press("j")
        expect(cells.nth(1)).to_have_class(SELECTED)
        page.keyboard.press("r")
        expect(cells.nth(1)).to_have_attribute("data-state", "rejected")
        page.keyboard.press("ArrowRight")
        expect(cells.nth(2)).to_have_class(SELECTED)
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("k")
        expect(cells.nth(0)).to_have_class(SELECTED)
        expect(cells.nth(1)).not_to_have_class(SELECTED)
        page.keyboard.press("j")
        # A note on the rejected shot: n, the text, Enter.
        page.keyboard.press("n")
        box = page.locator(".cell.selected .note-box")
        expect(box).to_be_focused()
        page.keyboard.type("too dark; the lamp hides the sofa")
        page.keyboard.press("Enter")
        expect(cells.nth(1).locator(".note")).to_have_text("too dark; the lamp hides the sofa")
        expect(box).to_have_count(0)
        # Esc keeps nothing; a note on a pending shot rejects it, as its placeholder says.
        page.keyboard.press("j")
        page.keyboard.press("n")
        page.keyboard.type("never mind")
        page.keyboard.press("Escape")
        expect(page.locator(".note-box")).to_have_count(0)
        expect(cells.nth(2)).to_have_attribute("data-state", "pending")
        page.keyboard.press("j")
        page.keyboard.press("n")
        expect(page.locator(".note-box")).to_have_attribute(
            "placeholder", "note: Enter rejects with it, Esc cancels"
        )
        page.keyboard.type("wrong angle")
        page.keyboard.press("Enter")
        expect(cells.nth(3)).to_have_attribute("data-state", "rejected")
        expect(cells.nth(3).locator(".note")).to_have_text("wrong angle")

        found = {job: (v.verdict, v.note) for (job, _), v in rendered.verdicts().items()}
        assert found == {
            JOBS[0]: ("approved", None),
            JOBS[1]: ("rejected", "too dark; the lamp hides the sofa"),
            JOBS[3]: ("rejected", "wrong angle"),
        }

        page.reload()
        expect(cells.nth(0)).to_have_attribute("data-state", "approved")
        expect(cells.nth(1)).to_have_attribute("data-state", "rejected")
        expect(cells.nth(1).locator(".note")).to_have_text("too dark; the lamp hides the sofa")
        expect(cells.nth(2)).to_have_attribute("data-state", "pending")
        expect(cells.nth(3).locator(".note")).to_have_text("wrong angle")
        # `u` makes a shot pending again, and its note goes with its verdict.
        page.keyboard.press("j")
        page.keyboard.press("u")
        expect(cells.nth(1)).to_have_attribute("data-state", "pending")
        expect(cells.nth(1).locator(".note")).to_be_hidden()
        # Keys faster than the server: the verdicts are saved in the order given.
        page.keyboard.press("j")
        page.keyboard.press("a")
        page.keyboard.press("r")
        expect(page.locator("#status")).to_have_text(f"{JOBS[2]}: rejected, saved")
        expect(cells.nth(2)).to_have_attribute("data-state", "rejected")
    verdicts = {job: v.verdict for (job, _), v in rendered.verdicts().items()}
    assert verdicts == {JOBS[0]: "approved", JOBS[2]: "rejected", JOBS[3]: "rejected"}
    assert tab.errors == []


def test_filters_count_and_approve_all_shown(rendered: Rendered, tab: Tab) -> None:
    page = tab.page
    with listening(lambda port: rendered.app(port=port)) as url:
        page.goto(url)
        cells = page.locator(".cell")
        page.keyboard.press("r")  # the first shot rejected
        expect(cells.nth(0)).to_have_attribute("data-state", "rejected")
        count = {name: page.locator(f'[data-count="{name}"]') for name in ("all", "pending", "approved", "rejected")}  # fmt: skip
        expect(count["all"]).to_have_text("4")
        expect(count["pending"]).to_have_text("3")
        expect(count["rejected"]).to_have_text("1")
        expect(count["approved"]).to_have_text("0")

        # All shown includes the rejected shot: that is asked, and here refused.
        asked: list[str] = []

        def refuse(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.dismiss()

        page.once("dialog", refuse)
        page.locator("#approve-shown").click()
        expect(page.locator("#status")).to_have_text("nothing approved")
        assert asked == ["1 of the 4 shots shown were rejected. Approve them all?"]
        expect(count["approved"]).to_have_text("0")

        page.get_by_role("button", name=re.compile(r"^pending")).click()
        expect(page.locator(".cell:visible")).to_have_count(3)
        assert page.evaluate("location.hash") == "#pending"
        bulk = page.locator("#approve-shown")
        expect(bulk).to_have_text("approve all shown 3")
        bulk.click()
        expect(count["pending"]).to_have_text("0")
        expect(count["approved"]).to_have_text("3")
        expect(page.locator(".cell:visible")).to_have_count(0)
        expect(page.locator("#empty")).to_be_visible()
        expect(bulk).to_be_disabled()
        found = {job: v.verdict for (job, _), v in rendered.verdicts().items()}
        assert found == {JOBS[0]: "rejected", JOBS[1]: "approved", JOBS[2]: "approved", JOBS[3]: "approved"}  # fmt: skip

        page.get_by_role("button", name=re.compile(r"^rejected")).click()
        expect(page.locator(".cell:visible")).to_have_count(1)
        expect(page.locator(".cell:visible")).to_have_attribute("data-job", JOBS[0])
        # The filter is in the address: a reload keeps it.
        page.reload()
        expect(page.locator(".cell:visible")).to_have_count(1)
        expect(page.locator('[data-filter="rejected"]')).to_have_attribute("aria-pressed", "true")
        page.keyboard.press("a")  # the one shown, selected; approved, it leaves the filter
        expect(page.locator(".cell:visible")).to_have_count(0)
        page.get_by_role("button", name=re.compile(r"^all")).click()
        expect(page.locator(".cell:visible")).to_have_count(4)
        expect(count["approved"]).to_have_text("4")
    assert {v.verdict for v in rendered.verdicts().values()} == {"approved"}
    assert tab.errors == []


def test_it_fits_a_phone_without_sideways_scrolling(rendered: Rendered, browser: Any) -> None:
    phone = Tab(browser, width=390, height=844)
    try:
        page = phone.page
        with listening(lambda port: rendered.app(port=port)) as url:
            page.goto(url)
            expect(page.locator(".cell")).to_have_count(4)
            page.keyboard.press("j")
            page.keyboard.press("n")  # the note box open, too
            expect(page.locator(".note-box")).to_be_focused()
            page.wait_for_function(
                """[...document.images].filter((i) => i.getBoundingClientRect().top < innerHeight)
                    .every((i) => i.complete && i.naturalWidth > 0)"""
            )
            layout = page.evaluate(
                """() => ({
                    scroll: document.documentElement.scrollWidth,
                    viewport: window.innerWidth,
                    right: Math.max(...[...document.querySelectorAll('.cell, .bar')]
                        .map((e) => e.getBoundingClientRect().right)),
                    tops: [...document.querySelectorAll('.cell')].slice(0, 2)
                        .map((e) => Math.round(e.getBoundingClientRect().top)),
                })"""
            )
        assert layout["viewport"] == 390
        assert layout["scroll"] <= 390
        assert layout["right"] <= 390
        assert layout["tops"][0] == layout["tops"][1]  # two shots a row, even on a phone
        assert phone.errors == []
    finally:
        phone.close()


def screenshot_recipe() -> str:
    """The flagship in one format: a screenful of shots, and none missing."""
    recipe = yaml.safe_load((ROOT / "recipes" / "spring.yaml").read_text(encoding="utf-8"))
    recipe["matrix"]["aspect_ratio"] = ["1:1 (Perfect Square)"]
    recipe.pop("include", None)
    return yaml.safe_dump(recipe, sort_keys=False)


def test_a_screenshot_of_the_app_for_the_readme(
    tmp_path: Path, render: Render, browser: Any
) -> None:
    shutil.copytree(ROOT / "recipes" / "images", tmp_path / "images")
    (tmp_path / "spring.yaml").write_text(screenshot_recipe(), encoding="utf-8")
    code, _, err = aside(render, "spring.yaml", RENDER_HOME=str(tmp_path / "home"))
    assert code == 0, err
    out = tmp_path / "renders" / "spring"
    ledger = tmp_path / "home" / "ledger.sqlite"
    desk = Tab(browser, width=1280, height=900)
    try:
        page = desk.page
        with listening(lambda port: create_review_app(out, None, ledger=ledger, port=port)) as url:
            page.goto(url)
            page.keyboard.press("a")
            page.keyboard.press("j")
            page.keyboard.press("a")
            page.keyboard.press("j")
            page.keyboard.press("r")
            page.keyboard.press("n")
            page.keyboard.type("the curtains swallow the sofa: try the terrace light")
            page.keyboard.press("Enter")
            expect(page.locator(".cell").nth(2).locator(".note")).to_be_visible()
            page.keyboard.press("j")
            expect(page.locator(".cell").nth(3)).to_have_class(SELECTED)
            page.wait_for_function(
                """[...document.images].filter((i) => i.getBoundingClientRect().top < innerHeight)
                    .every((i) => i.complete && i.naturalWidth > 0)"""
            )
            # The README's picture is written only when asked: a test run leaves the tree as it was.
            docs = os.environ.get("RENDER_UPDATE_SCREENSHOTS") == "1"
            shot = ROOT / "docs" / "review.png" if docs else tmp_path / "review.png"
            page.screenshot(path=str(shot))
        assert desk.errors == []
    finally:
        desk.close()
    from PIL import Image, ImageStat  # noqa: PLC0415

    with Image.open(shot) as image:
        assert image.size == (1280, 900)
        assert ImageStat.Stat(image.convert("L")).stddev[0] > 20  # pictures, not a blank page
