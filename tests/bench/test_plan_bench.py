"""Benchmarks: planning 10,000 jobs against a bare render-and-validate loop, and `render --help` start-up.

Targets (DESIGN.md): under 1 s and within 1.5x of the bare loop; `render --help` under 0.3 s. Printed,
not asserted: machines here are noisy.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.matrix import expand
from engine.plan import build_plan
from engine.recipe import load_recipe
from engine.specs import load_spec
from engine.templating import environment
from tests.helpers import ROOT, write_tree

ROUNDS = 3


def _best(run: Callable[[], object], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _recipe(tmp_path: Path) -> Path:
    products = "\n".join(
        f"    - {{id: p{i}, image: images/sofa.png, noun: product number {i}}}" for i in range(25)
    )
    styles = "\n".join(f"    - {{id: s{i}, scene: scene number {i}}}" for i in range(20))
    ratios = load_spec("scenecraft").params["aspect_ratio"].enum or ()
    aspect = ", ".join(f'"{r}"' for r in list(ratios)[:20])
    write_tree(
        tmp_path,
        {
            "big.yaml": "model: scenecraft\nbudget_usd: 5000\nmatrix:\n  product:\n"
            + products
            + "\n  style:\n"
            + styles
            + f"\n  aspect_ratio: [{aspect}]\n"
            + "params:\n"
            '  image: "{{ product.image }}"\n'
            '  prompt: "Product photo of a {{ product.noun }} in {{ style.scene }}, spring light"\n'
            '  aspect_ratio: "{{ aspect_ratio }}"\n'
            "  steps: 30\n"
            "  seed: auto\n"
            'output: "{{ product.id }}/{{ style.id }}-{{ aspect_ratio | slug }}"\n',
            "images/sofa.png": (ROOT / "recipes" / "images" / "sofa.png").read_bytes(),
        },
    )
    return tmp_path / "big.yaml"


def test_planning_ten_thousand_jobs(tmp_path: Path) -> None:
    path = _recipe(tmp_path)
    file = load_recipe(path)
    plan = build_plan(file)
    assert len(plan.jobs) == 10_000
    assert not plan.errors

    recipe = file.recipe
    env = environment()
    templates = {
        name: env.from_string(value)
        for name, value in recipe.params.items()
        if isinstance(value, str) and "{{" in value
    }
    output = env.from_string(recipe.output or "")
    validate = load_spec("scenecraft").validator._validate
    image = str(tmp_path / "images" / "sofa.png")

    def bare() -> None:
        for combo in expand(recipe.matrix):
            context: dict[str, Any] = {**recipe.vars, **combo.values}
            payload: dict[str, Any] = {name: t.render(context) for name, t in templates.items()}
            payload["image"] = "https://example.com/" + image
            payload["steps"] = 30
            payload["seed"] = 1
            output.render(context)
            validate(payload)

    ours = _best(lambda: build_plan(load_recipe(path)))
    baseline = _best(bare)
    print(
        f"\nplan 10,000 jobs (load, expand, render, validate, price, paths): {ours:.3f} s; "
        f"bare render+validate loop {baseline:.3f} s; ratio {ours / baseline:.2f}x (target 1.5x, < 1 s)"
    )


def test_help_start_up() -> None:
    render = Path(sys.executable).with_name("render")
    python = _best(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), rounds=7)
    helped = _best(
        lambda: subprocess.run([str(render), "--help"], check=True, capture_output=True), rounds=7
    )
    print(
        f"\n`render --help`: {helped:.3f} s; bare `python -c pass` {python:.3f} s; "
        f"render's own share {helped - python:.3f} s (target < 0.3 s in all)"
    )
