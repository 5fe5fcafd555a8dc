"""Issue 10, "found by an adversarial review": each defect reproduced, then refused or bounded.

Money that a recipe could lower, a cap that an overcharge could pass, paths and names that lead out
of their folders or that file systems refuse, files that are not images, keys that cannot be sent
or that an answer could lure to another host, links in the output folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.backends import segmind_backend
from engine.cli import cli
from engine.executor import execute
from engine.plan import build_plan
from engine.recipe import load_recipe
from engine.results import RunOptions
from engine.simulator import SimulatorConfig, all_specs, create_app, serving
from tests.helpers import ROOT, write_tree

KEY = "sk-test-key"
SOFA = (ROOT / "recipes" / "images" / "sofa.png").read_bytes()

SCIFI = """\
    name: city
    model: sd1.5-scifi
    price_usd: 0.01
    budget_usd: 1
    matrix:
      n: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    params:
      prompt: "a sci-fi city numbered {{ n }}"
    """
SHOT = """\
    name: shot
    model: scenecraft
    budget_usd: 1
    matrix:
      n: [1]
    params:
      image: "{image}"
      prompt: "a sofa"
    """


def render(*args: str, cwd: Path | None = None, **env: str) -> tuple[int, str, str]:
    here = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, list(args), env=env or None, prog_name="render")
    finally:
        os.chdir(here)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def simulator(**config: Any) -> Starlette:
    options: dict[str, Any] = {
        "specs": all_specs(),
        "latency_s": 0.02,
        "retry_after_s": 0,
        "unpriced_usd": 0.01,
        "images": "tiny",
        **config,
    }
    return create_app(SimulatorConfig(**options))


# --- money ---------------------------------------------------------------------------------------


def test_a_recipe_cannot_lower_a_priced_models_price(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {"sofa.png": SOFA, "shot.yaml": SHOT.format(image="sofa.png") + "price_usd: 0.01\n"},
    )
    code, _, err = render(str(tmp_path / "shot.yaml"), "--dry-run")
    assert (code, err) == (
        2,
        f"error: {tmp_path / 'shot.yaml'}:9: price_usd: scenecraft has its price in its spec "
        "($0.339 a call); `price_usd` is only for a model whose spec has no price: remove it\n",
    )


def test_a_charge_above_the_estimate_raises_every_later_reservation(tmp_path: Path) -> None:
    """A server charging 1.5 times the estimate must not carry spent + unknown past the cap."""
    write_tree(tmp_path, {"city.yaml": SCIFI})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"), budget_usd=0.1)
    app = simulator(charge_factor=1.5, report_cost=True)
    with serving(app) as base:
        summary = execute(
            plan,
            backend=segmind_backend(KEY, base_url=base),
            out_dir=tmp_path / "out",
            options=RunOptions(concurrency=1),
        )
        state = app.state.simulator.state
        state.settle()
        billed = sum(charge.amount_usd for charge in state.charges)
    assert summary.budget_reached
    assert summary.count("succeeded") == 6
    assert summary.spent_usd == pytest.approx(billed) == pytest.approx(0.09)
    assert summary.spent_usd + summary.unknown_usd <= 0.1 + 1e-9


@pytest.mark.parametrize("amount", ["nan", "inf", "-1"])
def test_a_budget_must_be_a_finite_amount(tmp_path: Path, amount: str) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI})
    code, _, err = render(str(tmp_path / "city.yaml"), "--dry-run", "--budget", amount)
    assert code == 2
    assert (
        f"Invalid value for '--budget': '{amount}' is not allowed: give a finite amount, 0 or more"
        in err
    )
    write_tree(tmp_path, {"r.yaml": SCIFI.replace("budget_usd: 1", f"budget_usd: .{amount}")})
    if amount != "-1":
        code, _, err = render(str(tmp_path / "r.yaml"), "--dry-run")
        assert (code, err) == (
            2,
            f"error: {tmp_path / 'r.yaml'}:4: budget_usd: expected a finite number, got {float(amount)}\n",
        )


# --- names and paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("/elsewhere/x", "holds /, which separates folders"),
        ("../../..", "holds /, which separates folders"),
        ("..", "would leave the folder"),
        ("CON", "is named CON, which Windows reserves for a device"),
        (
            "spring\u202egpj",
            "holds a right-to-left or other direction mark, which makes a name read as another",
        ),
    ],
)
def test_a_recipe_name_cannot_leave_the_output_folder(
    tmp_path: Path, name: str, problem: str
) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI.replace("name: city", f"name: {json.dumps(name)}")})
    code, _, err = render(str(tmp_path / "city.yaml"), "--dry-run")
    shown = name.replace("\u202e", "\\u202e")
    assert (code, err) == (
        2,
        f"error: {tmp_path / 'city.yaml'}:1: name: '{shown}' {problem}; the name becomes the output "
        "folder renders/<name>/, so it must be one plain folder name (letters, digits, '-', '_')\n",
    )


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        (
            "{{ 'x' * 300 }}",
            f"the part '{'x' * 300}.png' is 304 bytes long; file systems allow 255",
        ),
        (
            "a\x00b",
            "the part 'a\\u0000b.png' holds a control character (such as NUL or a line break)",
        ),
        (
            "manifest.jsonl/{{ n }}",
            "'manifest.jsonl' is where render keeps its own records in the output folder",
        ),
        ("runs/{{ n }}", "'runs' is where render keeps its own records in the output folder"),
        ("CON/{{ n }}", "the part 'CON' is named CON, which Windows reserves for a device"),
        ("nul.{{ n }}", "the part 'nul.0.png' is named nul, which Windows reserves for a device"),
        (
            "{{ n }}\u202egpj",
            "the part '0\\u202egpj.png' holds a right-to-left or other direction mark, which makes a name read as another",
        ),
    ],
)
def test_output_names_the_file_system_refuses_are_refused_at_plan_time(
    tmp_path: Path, output: str, problem: str
) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI + f"output: {json.dumps(output)}\n"})
    code, out, _ = render(str(tmp_path / "city.yaml"), "--dry-run", "--limit", "1")
    assert code == 2
    assert f"cannot be written: {problem}" in out


def test_an_output_under_another_outputs_file_is_refused(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {"city.yaml": SCIFI + "output: \"{{ 'a' if n == 0 else 'a.png/' ~ n }}\"\n"},
    )
    code, out, _ = render(str(tmp_path / "city.yaml"), "--dry-run", "--limit", "2")
    assert code == 2
    assert (
        "output: 'a.png/1.png' needs a folder 'a.png', which is the output of job 0; a path "
        "cannot be both a file and a folder [1 job: 1]"
    ) in out


def test_links_in_the_output_folder_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI, "elsewhere/.keep": ""})
    out = tmp_path / "renders" / "city"
    out.mkdir(parents=True)
    (out / "0.png").symlink_to(tmp_path / "elsewhere" / "0.png")
    code, _, err = render("city.yaml", cwd=tmp_path, SEGMIND_API_KEY="")
    assert (code, err.splitlines()[-1]) == (
        2,
        f"error: {out}: the output folder holds symbolic links (0.png); render writes only inside "
        "its output folder: remove them, or choose another --out",
    )
    assert not (tmp_path / "elsewhere" / "0.png").exists()


# --- local files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["/etc/passwd", "../secret.png", "~/.bashrc"])
def test_a_recipe_sends_no_file_from_outside_its_folder(tmp_path: Path, image: str) -> None:
    write_tree(tmp_path, {"r/shot.yaml": SHOT.format(image=image), "secret.png": SOFA})
    code, out, _ = render(str(tmp_path / "r" / "shot.yaml"), "--dry-run")
    assert code == 2
    assert (
        f"params.image: '{image}' is outside the recipe's folder ({tmp_path / 'r'}): a recipe sends "
        "images only from its own folder tree; move the image there, or name its folder in "
        "`image_root`"
    ) in out


def test_image_root_grants_a_wider_folder(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "r/shot.yaml": SHOT.format(image="../shared/sofa.png") + "image_root: ../shared\n",
            "shared/sofa.png": SOFA,
        },
    )
    code, out, _ = render(str(tmp_path / "r" / "shot.yaml"), "--dry-run")
    assert code == 0, out


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"root:x:0:0:root:/root:/bin/bash\n", "is not an image (PNG, JPEG, WebP or GIF)"),
        (b"\x89PNG\r\n\x1a\nnot really", "starts like a PNG image but its header cannot be read"),
    ],
)
def test_only_real_images_are_sent(tmp_path: Path, content: bytes, problem: str) -> None:
    write_tree(tmp_path, {"shot.yaml": SHOT.format(image="key.png"), "key.png": content})
    code, out, _ = render(str(tmp_path / "shot.yaml"), "--dry-run")
    assert code == 2
    assert f"params.image: 'key.png' {problem}; only image files are sent" in out


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("sk-abc\r\nx-evil: 1", "a line break (character 7 of 17"),
        ("sk-ключ", "a character that is not ASCII (character 4 of 7"),
        ("sk abc", "a space or a control character (character 3 of 6"),
    ],
)
def test_a_key_that_cannot_be_sent_is_refused_and_never_shown(
    tmp_path: Path, key: str, problem: str
) -> None:
    write_tree(tmp_path, {"city.yaml": SCIFI})
    code, out, err = render(
        "city.yaml", cwd=tmp_path, SEGMIND_API_KEY=key, SEGMIND_BASE_URL="http://127.0.0.1:9"
    )
    assert code == 2
    assert err == (
        f"error: SEGMIND_API_KEY cannot be sent: it holds {problem}; the key is not shown). Set it "
        "to the key alone, as Segmind's console shows it\n"
    )
    assert key.strip() not in out + err
    assert not (tmp_path / "renders").exists()


def _lure(simulator_app: Starlette, foreign: str) -> Any:
    """The simulator, with its queued answers pointing polls at another host."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def rewrite(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and b"status_url" in message.get(
                "body", b""
            ):
                data = json.loads(message["body"])
                data["status_url"] = f"{foreign}/v2/requests/{data['request_id']}/status"
                data["response_url"] = f"{foreign}/v2/requests/{data['request_id']}"
                message = {**message, "body": json.dumps(data).encode()}
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [(k, v) for k, v in message["headers"] if k != b"content-length"],
                }
            await send(message)

        await simulator_app(scope, receive, rewrite)

    return app


def test_the_key_goes_to_no_host_an_answer_names(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    async def anything(request: Request) -> Response:
        seen.append(dict(request.headers))
        return JSONResponse({"error": "not here"}, 404)

    foreign_app = Starlette(routes=[Route("/{path:path}", anything)])
    write_tree(tmp_path, {"city.yaml": SCIFI})
    plan = build_plan(load_recipe(tmp_path / "city.yaml"), limit=1, budget_usd=1)
    with serving(foreign_app) as foreign, serving(_lure(simulator(), foreign)) as base:
        summary = execute(
            plan,
            backend=segmind_backend(KEY, base_url=base),
            out_dir=tmp_path / "out",
            options=RunOptions(),
        )
    # The foreign host knows nothing of it (404); Segmind's request history, on its own host, does.
    assert summary.count("succeeded") == 1
    assert seen, "the client never polled the host the answer named"
    assert all("x-api-key" not in headers and "authorization" not in headers for headers in seen)


def test_max_jobs_has_a_ceiling(tmp_path: Path) -> None:
    """`max_jobs: 10**9` let a huge matrix expand until memory ran out."""
    write_tree(tmp_path, {"city.yaml": SCIFI + "max_jobs: 1000000000\n"})
    code, _, err = render(str(tmp_path / "city.yaml"), "--dry-run")
    assert (code, err) == (
        2,
        f"error: {tmp_path / 'city.yaml'}:9: max_jobs: expected a number at most 100,000, "
        "got 1000000000\n",
    )
