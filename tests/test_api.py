"""The public API of `engine`: every name in __all__ resolves, lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import engine
from tests.helpers import ROOT


@pytest.mark.parametrize("name", engine.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(engine, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = engine.nope  # type: ignore[attr-defined]


def test_dir_lists_the_public_api() -> None:
    assert dir(engine) == sorted(engine.__all__)


def test_importing_engine_does_not_import_pydantic() -> None:
    code = "import sys, engine, engine.cli; print('pydantic' in sys.modules, 'rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_validate_a_payload_through_the_public_api() -> None:
    spec = engine.load_spec("sd1.5-scifi")
    assert engine.payload_violations(spec, {"prompt": "a city"}) == ()
    with pytest.raises(engine.PayloadError) as caught:
        engine.check_payload(spec, {"prompt": "a city", "samples": 5})
    assert [v.param for v in caught.value.violations] == ["samples"]


def test_plan_and_render_a_recipe_through_the_public_api(tmp_path: Path) -> None:
    out = tmp_path
    plan = engine.build_plan(engine.load_recipe(ROOT / "recipes" / "characters.yaml"), limit=1)
    summary = engine.execute(
        plan,
        backend=engine.preview_backend(),
        out_dir=out / "renders",
        options=engine.RunOptions(home=out / "home"),
    )
    assert summary.count("succeeded") == 1
    assert (out / "renders" / summary.results[0].outputs[0]).exists()


def test_record_then_replay_a_cassette_through_the_public_api(tmp_path: Path) -> None:
    """The backend says what a run is: the preview records, a replay charges nothing and says so."""
    plan = engine.build_plan(engine.load_recipe(ROOT / "recipes" / "characters.yaml"), limit=1)
    heard: list[str] = []
    recorded = engine.execute(
        plan,
        backend=engine.preview_backend(),
        out_dir=tmp_path / "recorded",
        options=engine.RunOptions(
            home=tmp_path / "home",
            cassette=engine.CassetteUse(tmp_path / "c.yaml", "all"),
            on_result=lambda result: heard.append(result.status),
        ),
    )
    assert recorded.cassette is not None
    assert recorded.cassette.startswith("wrote ")
    assert heard == ["succeeded"]
    replayed = engine.execute(
        plan,
        backend=engine.replay_backend(),
        out_dir=tmp_path / "replayed",
        options=engine.RunOptions(
            home=tmp_path / "home", cassette=engine.CassetteUse(tmp_path / "c.yaml", "none")
        ),
    )
    assert replayed.count("succeeded") == 1
    assert replayed.spent_usd == 0.0
    assert not engine.replay_backend().charges
    assert engine.replay_backend().label == "replay"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (engine.RenderError, 1),
        (engine.InputError, 2),
        (engine.RecipeError, 2),
        (engine.TemplateFailure, 2),
        (engine.CredentialError, 2),
        (engine.BudgetError, 3),
        (engine.ApiProblem, 1),
        (engine.JobFailed, 1),
        (engine.Abort, 4),
    ],
)
def test_each_error_carries_the_exit_code_the_cli_documents(error: type, code: int) -> None:
    from engine.cli import EXIT  # noqa: PLC0415 - the CLI's own table

    assert error.exit_code == code
    assert code in EXIT.values()


def test_a_validation_error_becomes_located_problems(tmp_path: Path) -> None:
    from engine.errors import Problem  # noqa: PLC0415
    from engine.specs import load_spec_file  # noqa: PLC0415

    spec = tmp_path / "bad.yaml"
    spec.write_text("id: bad\ntitle: t\nendpoint: /v1/x\nprotocol: teleport\nauth: x-api-key\n")
    with pytest.raises(engine.SpecError) as caught:
        load_spec_file(spec)
    (first, *_) = caught.value.problems
    assert isinstance(first, Problem)
    assert (str(first.location), first.field) == (f"{spec}:4", "protocol")
