"""The plan: payloads rendered and validated per job, seeds, images, prices, outputs, narrowing, JSON."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from PIL import Image

from engine.errors import RecipeError
from engine.localimage import LocalImage
from engine.plan import Plan, build_plan, parse_only
from engine.recipe import load_recipe
from tests.helpers import write_tree

SOFA = textwrap.dedent(
    """\
    model: scenecraft
    budget_usd: 2
    matrix:
      product:
        - {id: sofa, image: images/sofa.png, noun: orange sofa}
        - {id: lamp, image: https://example.com/lamp.png, noun: brass lamp}
      aspect_ratio: ["1:1 (Perfect Square)", "16:9 (Panorama)"]
    params:
      image: "{{ product.image }}"
      prompt: "A {{ product.noun }}"
      aspect_ratio: "{{ aspect_ratio }}"
      steps: "{{ 10 * 3 }}"
      scale: 0.5
      seed: auto
    """
)


def _png(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "white").save(path)
    return path.read_bytes()


def plan_of(tmp_path: Path, recipe: str, **kwargs: object) -> Plan:
    write_tree(tmp_path, {"r.yaml": recipe})
    if not (tmp_path / "images" / "sofa.png").exists():
        _png(tmp_path / "images" / "sofa.png")
    return build_plan(load_recipe(tmp_path / "r.yaml"), **kwargs)  # type: ignore[arg-type]


def test_jobs_in_matrix_order_with_native_types_and_paths(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, SOFA)
    assert [job.id for job in plan.jobs] == ["sofa/1x1", "sofa/16x9", "lamp/1x1", "lamp/16x9"]
    first = plan.jobs[0].payload
    assert first["steps"] == 30  # a single expression keeps its type
    assert first["prompt"] == "A orange sofa"
    assert first["image"] == LocalImage(tmp_path / "images" / "sofa.png")  # kept as a path
    assert plan.jobs[2].payload["image"] == "https://example.com/lamp.png"  # a URL as is
    assert plan.errors == ()
    assert plan.recipe == "r"
    assert plan.jobs[0].output == "sofa/1x1.jpg"  # the job id, with scenecraft's default jpeg


def test_auto_seeds_are_stable_distinct_and_inside_the_spec_range(tmp_path: Path) -> None:
    seeds = [job.payload["seed"] for job in plan_of(tmp_path, SOFA).jobs]
    again = [job.payload["seed"] for job in plan_of(tmp_path, SOFA).jobs]
    assert seeds == again
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= seed <= 4294967295 for seed in seeds)
    renamed = plan_of(tmp_path / "other", "name: other\n" + SOFA)
    assert [job.payload["seed"] for job in renamed.jobs] != seeds


def test_cost_budget_and_time(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, SOFA)
    assert [job.cost_usd for job in plan.jobs] == [0.339] * 4
    assert (plan.estimated_cost_usd, plan.budget_usd, plan.within_budget) == (1.356, 2, True)
    assert plan.estimated_seconds(concurrency=2) == pytest.approx(2 * 33.64)
    assert plan.estimated_seconds(concurrency=8, rpm=2) == pytest.approx(3 * 30 + 33.64)
    assert build_plan(load_recipe(tmp_path / "r.yaml"), budget_usd=1.0).within_budget is False


def test_samples_multiply_the_price_and_unpriced_models_plan(tmp_path: Path) -> None:
    recipe = """\
        model: sd1.5-scifi
        matrix:
          n: [1, 3]
        params:
          prompt: a city
          samples: "{{ n }}"
        """
    plan = plan_of(tmp_path, recipe)
    assert [job.cost_usd for job in plan.jobs] == [None, None]
    assert (plan.unpriced, plan.estimated_cost_usd, plan.within_budget) == (True, None, None)
    priced = plan_of(tmp_path / "p", recipe + "price_usd: 0.01\n")
    assert [job.cost_usd for job in priced.jobs] == [0.01, 0.03]


def test_only_and_limit_narrow_the_plan(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, SOFA, only=parse_only(["aspect_ratio=16x9"]))
    assert [job.id for job in plan.jobs] == ["sofa/16x9", "lamp/16x9"]
    plan = plan_of(
        tmp_path,
        SOFA,
        only=parse_only(["product=lamp", "product=sofa", "aspect_ratio=1:1 (Perfect Square)"]),
    )
    assert [job.id for job in plan.jobs] == ["sofa/1x1", "lamp/1x1"]
    assert [job.id for job in plan_of(tmp_path, SOFA, limit=1).jobs] == ["sofa/1x1"]


def test_parse_only_refuses_a_pair_without_a_value() -> None:
    with pytest.raises(
        RecipeError, match=r"^--only style: expected AXIS=VALUE, such as style=cozy$"
    ):
        parse_only(["style"])


def test_output_paths_are_normalised_and_take_the_format_extension(tmp_path: Path) -> None:
    recipe = (
        SOFA
        + '  image_format: png\noutput: "shots/./{{ product.id }}//{{ aspect_ratio | slug }}"\n'
    )
    plan = plan_of(tmp_path, recipe)
    assert [job.output for job in plan.jobs][:2] == ["shots/sofa/1x1.png", "shots/sofa/16x9.png"]


def test_a_failing_job_does_not_hide_the_others(tmp_path: Path) -> None:
    recipe = SOFA.replace(
        'steps: "{{ 10 * 3 }}"', "steps: \"{{ 60 if product.id == 'lamp' else 30 }}\""
    )
    plan = plan_of(tmp_path, recipe)
    assert [job.id for job in plan.jobs] == ["sofa/1x1", "sofa/16x9"]
    assert [(e.job, e.param, e.message) for e in plan.errors] == [
        ("lamp/1x1", "steps", "60 is above the maximum 50 (allowed: an integer from 1 to 50)"),
        ("lamp/16x9", "steps", "60 is above the maximum 50 (allowed: an integer from 1 to 50)"),
    ]
    assert plan.errors[0].location == f"{tmp_path / 'r.yaml'}:12"


def test_json_is_the_design_object(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, SOFA, limit=1)
    data = plan.to_json()
    assert list(data) == [
        "recipe", "model", "jobs", "job_count", "estimated_cost_usd", "budget_usd", "within_budget", "errors",
    ]  # fmt: skip
    assert list(data["jobs"][0]) == ["id", "payload", "cost_usd", "output"]
    assert data["jobs"][0]["payload"]["image"] == str(tmp_path / "images" / "sofa.png")
    assert (data["job_count"], data["estimated_cost_usd"], data["within_budget"]) == (
        1,
        0.339,
        True,
    )


def test_image_paths_are_checked_once_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    original = Path.is_file

    def counting(self: Path) -> bool:
        calls.append(self)
        return original(self)

    write_tree(tmp_path, {"r.yaml": SOFA})
    _png(tmp_path / "images" / "sofa.png")
    file = load_recipe(tmp_path / "r.yaml")
    monkeypatch.setattr(Path, "is_file", counting)
    build_plan(file)
    assert calls == [tmp_path / "images" / "sofa.png"]


def test_a_template_that_reaches_a_limit_is_not_rendered_for_every_job(tmp_path: Path) -> None:
    """Reaching a sandbox limit can take a second: a large plan must not pay it once per job."""
    axis = ", ".join(str(n) for n in range(20))
    write_tree(
        tmp_path,
        {
            "r.yaml": f"""\
                model: sd1.5-scifi
                price_usd: 0.01
                matrix:
                  n: [{axis}]
                  m: [{axis}]
                params:
                  prompt: "{{% for i in range(99999) %}}{{% for j in range(99999) %}}x{{% endfor %}}{{% endfor %}}"
                """
        },
    )
    plan = build_plan(load_recipe(tmp_path / "r.yaml"))
    (error,) = plan.errors
    assert error.job is None
    assert error.message == (
        "not allowed in a template: more than 100,000 loop iterations and macro calls in one value "
        "are not allowed (in job 0/0; the template is not rendered for the other jobs)"
    )
    assert (plan.jobs, plan.failed_jobs) == ((), 400)
