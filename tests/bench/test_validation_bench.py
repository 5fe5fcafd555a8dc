"""Benchmark: validating 10,000 payloads through our spec models, against bare pydantic on the same payloads.

The baseline is the model a developer would write by hand for SceneCraft (Literal enums, bounded
fields, strict types, no error translation). Run with `nox -s bench`; it prints ratios, it asserts
no times.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.specs import load_spec
from engine.validation import payload_violations

N = 10_000
ROUNDS = 7

AspectRatio = Literal[
    "1:1 (Perfect Square)", "2:3 (Classic Portrait)", "3:4 (Golden Ratio)", "3:5 (Elegant Vertical)",
    "4:5 (Artistic Frame)", "5:7 (Balanced Portrait)", "5:8 (Tall Portrait)", "7:9 (Modern Portrait)",
    "9:16 (Slim Vertical)", "9:19 (Tall Slim)", "9:21 (Ultra Tall)", "9:32 (Skyline)",
    "3:2 (Golden Landscape)", "4:3 (Classic Landscape)", "5:3 (Wide Horizon)", "5:4 (Balanced Frame)",
    "7:5 (Elegant Landscape)", "8:5 (Cinematic View)", "9:7 (Artful Horizon)", "16:9 (Panorama)",
    "19:9 (Cinematic Ultrawide)", "21:9 (Epic Ultrawide)", "32:9 (Extreme Ultrawide)",
]  # fmt: skip


class HandWritten(BaseModel):
    """SceneCraft's payload as one would write it by hand."""

    model_config = ConfigDict(strict=True, extra="forbid")

    image: str
    prompt: str
    aspect_ratio: AspectRatio | None = None
    dropshadow: bool | None = None
    guidance_scale: Annotated[float, Field(ge=1, le=20)] | None = None
    image_format: Literal["png", "jpeg", "webp"] | None = None
    image_quality: Annotated[int, Field(ge=10, le=100)] | None = None
    megapixel: float | str | None = None
    negative_prompt: str | None = None
    scale: Annotated[float, Field(ge=0, le=1)] | None = None
    seed: Annotated[int, Field(ge=-1, le=4294967295)] | None = None
    steps: Annotated[int, Field(ge=1, le=50)] | None = None
    upscale: bool | None = None
    x_value: Annotated[float, Field(ge=1, le=100)] | None = None
    y_value: Annotated[float, Field(ge=1, le=100)] | None = None


def _payloads() -> list[dict[str, Any]]:
    rng = random.Random(7)
    spec = load_spec("scenecraft")
    ratios = list(spec.params["aspect_ratio"].enum or ())
    return [
        {
            "image": f"https://example.com/products/{i}.png",
            "prompt": f"Product photo {i} in a sunlit room, spring light",
            "aspect_ratio": rng.choice(ratios),
            "dropshadow": rng.random() < 0.5,
            "guidance_scale": rng.uniform(1, 20),
            "image_format": rng.choice(["png", "jpeg", "webp"]),
            "image_quality": rng.randint(10, 100),
            "megapixel": rng.choice([1.0, "1.5", 2]),
            "negative_prompt": "blur, CGI",
            "scale": rng.random(),
            "seed": rng.randint(0, 2**32 - 1),
            "steps": rng.randint(1, 50),
            "upscale": False,
            "x_value": rng.uniform(1, 100),
            "y_value": rng.uniform(1, 100),
        }
        for i in range(N)
    ]


def _best(run: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def test_validation_against_bare_pydantic() -> None:
    spec = load_spec("scenecraft")
    payloads = _payloads()
    validate = HandWritten.model_validate
    assert all(payload_violations(spec, p) == () for p in payloads[:100])

    ours = _best(lambda: [payload_violations(spec, p) for p in payloads])
    bare = _best(lambda: [validate(p) for p in payloads])
    print(
        f"\nvalidate {N:,} scenecraft payloads: ours {ours * 1000:.1f} ms, "
        f"bare pydantic {bare * 1000:.1f} ms, ratio {ours / bare:.2f}x"
    )

    broken = [{**p, "steps": 99, "promt": "x"} for p in payloads[:1000]]
    ours_bad = _best(lambda: [payload_violations(spec, p) for p in broken])
    bare_bad = _best(lambda: [_catch(validate, p) for p in broken])
    print(
        f"validate 1,000 invalid payloads (messages built): ours {ours_bad * 1000:.1f} ms, "
        f"bare pydantic {bare_bad * 1000:.1f} ms, ratio {ours_bad / bare_bad:.2f}x"
    )


def _catch(validate: Callable[[Any], object], payload: dict[str, Any]) -> object:
    try:
        return validate(payload)
    except Exception as exc:
        return exc
