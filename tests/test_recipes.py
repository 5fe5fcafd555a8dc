"""The shipped recipes: each plans with no error, uses its endpoint's own inputs, and its images are light."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engine.plan import build_plan
from engine.recipe import load_recipe
from tests.helpers import ROOT

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_shipped_recipe_plans_with_no_error(path: Path) -> None:
    plan = build_plan(load_recipe(path))
    assert plan.errors == ()
    assert plan.jobs
    assert plan.within_budget in {True, None}


def test_the_recipes_cover_the_five_endpoints_with_their_own_inputs() -> None:
    plans = {path.stem: build_plan(load_recipe(path)) for path in RECIPES}
    assert {plan.model for plan in plans.values()} == {
        "scenecraft", "ai-product-photography", "consistent-character", "sd1.5-scifi", "furniture-staging",
    }  # fmt: skip
    assert "lighting_prompt" in plans["lighting"].jobs[0].payload
    assert {"Character", "Scene", "Prompt"} <= set(plans["characters"].jobs[0].payload)
    assert {"samples", "scheduler"} <= set(plans["scifi"].jobs[0].payload)
    staging = plans["staging"].jobs[0].payload
    assert {"main_image", "overlay_image", "main_image_mask", "overlay_image_mask"} <= set(staging)


def test_spring_is_the_flagship_matrix() -> None:
    file = load_recipe(ROOT / "recipes" / "spring.yaml")
    matrix = file.recipe.matrix
    assert (len(matrix["product"]), len(matrix["style"]), len(matrix["aspect_ratio"])) >= (4, 3, 3)
    assert file.recipe.include
    assert file.recipe.exclude
    plan = build_plan(file)
    assert len(plan.jobs) == 4 * 3 * 3 - 3 + 1
    assert "sofa/cozy/9x16" in {job.id for job in plan.jobs}
    assert not any(job.id.startswith("lamp/terrace/") for job in plan.jobs)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "recipes" / "images").glob("*.png")), ids=lambda p: p.stem
)
def test_recipe_images_are_small_pngs(path: Path) -> None:
    assert path.stat().st_size < 200_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        if path.stem in {"sofa", "lamp", "armchair", "vase", "character", "table"}:
            assert image.convert("RGB").getpixel((0, 0)) == (255, 255, 255)  # on white
