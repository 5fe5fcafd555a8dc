"""The plan: every job a recipe gives, with its validated payload, price and output path, and every error.

Planning sends nothing and reads no image: local image paths are checked to exist and kept as paths,
to be encoded only when a request is built.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.errors import RecipeError, SpecError
from engine.formatting import money
from engine.localimage import LocalImage, image_problem
from engine.matrix import Combination, expand, matches, value_id
from engine.paths import path_problem, shown
from engine.recipe import RecipeFile
from engine.specs import Spec, load_spec
from engine.suggest import did_you_mean
from engine.templating import Template, TemplateFailure, compile_value
from engine.validation import is_sendable_image

__all__ = ["Job", "Plan", "PlanProblem", "build_plan", "parse_only"]

_EXTENSIONS = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png", "webp": ".webp"}
_DEFAULT_SEED_MAX = 2**32 - 1
# How a template that reached one of the sandbox's limits fails (engine.sandbox).
_REFUSED = "not allowed in a template:"


class Job(BaseModel):
    """One request to make: its id, the payload (local images as paths), its price and output file."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str
    values: dict[str, str]
    payload: dict[str, Any]
    cost_usd: float | None
    output: str


class PlanProblem(BaseModel):
    """A mistake found while planning (data, not an exception): which job (None: every job),
    parameter, what, and where."""

    model_config = ConfigDict(frozen=True)

    job: str | None
    param: str | None
    message: str
    location: str


class Plan(BaseModel):
    """A recipe expanded into jobs, with what it will cost against its budget."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    recipe: str
    recipe_path: str
    model: str
    spec: Spec
    axes: tuple[str, ...]
    jobs: tuple[Job, ...]
    errors: tuple[PlanProblem, ...]
    budget_usd: float | None
    # The budget pool the run draws from too (``budget_pool:``, --pool), if any.
    budget_pool: str | None = None
    # The whole recipe, before --only and --limit: every job id, and each axis' values in order
    # (the report shows the recipe's current state, not only what one run rendered).
    recipe_jobs: tuple[str, ...] = ()
    value_order: dict[str, tuple[str, ...]] = {}
    # How many combinations were planned (after --only and --limit), jobs or errors.
    combinations: int = 0

    @property
    def unpriced(self) -> bool:
        return any(job.cost_usd is None for job in self.jobs)

    @property
    def estimated_cost_usd(self) -> float | None:
        if self.unpriced:
            return None
        return round(math.fsum(job.cost_usd or 0.0 for job in self.jobs), 6)

    @property
    def within_budget(self) -> bool | None:
        """None when it cannot be said: no price, no budget, or a plan with errors."""
        cost = self.estimated_cost_usd
        if cost is None or self.budget_usd is None or self.errors:
            return None
        return cost <= self.budget_usd

    def estimated_seconds(
        self, *, concurrency: int, rpm: int | None = None, jobs: int | None = None
    ) -> float | None:
        """Wall time of ``jobs`` (default: all) in waves of ``concurrency`` at the spec's latency,
        or at the rate limit if slower."""
        count = len(self.jobs) if jobs is None else jobs
        if not count:
            return 0.0
        if self.spec.latency_s is None:
            return None
        waves = math.ceil(count / max(concurrency, 1)) * self.spec.latency_s
        limited = (count - 1) * 60 / rpm + self.spec.latency_s if rpm else 0.0
        return max(waves, limited)

    @property
    def job_total(self) -> int:
        """Every job this plan was asked for, planned or not."""
        named = len(self.jobs) + len({e.job for e in self.errors if e.job is not None})
        return max(self.combinations, named)

    @property
    def failed_jobs(self) -> int:
        """How many of them cannot run: an error that names no job fails every job."""
        if any(error.job is None for error in self.errors):
            return self.job_total
        return len({error.job for error in self.errors})

    def to_json(self) -> dict[str, Any]:
        """The dry-run object of DESIGN.md (CLI), exactly."""
        return {
            "recipe": self.recipe,
            "model": self.model,
            "jobs": [
                {
                    "id": job.id,
                    "payload": {k: _json_value(v) for k, v in job.payload.items()},
                    "cost_usd": job.cost_usd,
                    "output": job.output,
                }
                for job in self.jobs
            ],
            "job_count": len(self.jobs),
            "estimated_cost_usd": self.estimated_cost_usd,
            "budget_usd": self.budget_usd,
            "within_budget": self.within_budget,
            "errors": [error.model_dump() for error in self.errors],
        }


def _json_value(value: Any) -> Any:
    return str(value) if isinstance(value, LocalImage) else value


def parse_only(items: Iterable[str]) -> list[tuple[str, str]]:
    """``["style=cozy", ...]`` → ``[("style", "cozy"), ...]``; a malformed one is an input error."""
    pairs = []
    for item in items:
        axis, sep, value = item.partition("=")
        if not sep or not axis.strip() or not value.strip():
            raise RecipeError(f"--only {item}: expected AXIS=VALUE, such as style=cozy")
        pairs.append((axis.strip(), value.strip()))
    return pairs


def build_plan(
    file: RecipeFile,
    *,
    budget_usd: float | None = None,
    pool: str | None = None,
    only: Sequence[tuple[str, str]] = (),
    limit: int | None = None,
    select: Collection[str] | None = None,
    reseed: Mapping[str, int] | None = None,
) -> Plan:
    """Expand, render and validate every job of a recipe; raises only for a recipe that cannot plan.

    ``select`` keeps only those job ids (``--rejected``); ``reseed`` gives those jobs the seed of
    a generation (``--reseed``): stable for the recipe, the job id and the generation, so a retry
    is a new picture and the same retry twice is the same request."""
    recipe = file.recipe
    spec = _spec(file)
    _check_size(file)
    combos = expand(recipe.matrix, include=recipe.include, exclude=recipe.exclude)
    if len(combos) > recipe.max_jobs:
        raise RecipeError(_too_many(file, len(combos)))
    everything = tuple(combo.id for combo in combos)
    order: dict[str, dict[str, None]] = {axis: {} for axis in recipe.matrix}
    for combo in combos:
        for axis, value in combo.ids.items():
            if axis in order:
                order[axis][value] = None
    combos = _narrow(file, combos, only)
    if select is not None:
        combos = [combo for combo in combos if combo.id in select]
    if reseed and "seed" not in spec.params:
        raise RecipeError(
            f"{file.where('model')}: --reseed: {spec.id} takes no seed, so a retry cannot be "
            "made different; edit the prompt instead"
        )
    if limit is not None:
        combos = combos[:limit]
    planner = _Planner(file, spec, reseed=reseed or {})
    jobs = [job for combo in combos if (job := planner.job(combo)) is not None]
    planner.check_outputs(jobs)
    return Plan(
        recipe=file.name,
        recipe_path=str(file.path),
        model=spec.id,
        spec=spec,
        axes=tuple(recipe.matrix),
        jobs=tuple(jobs),
        errors=tuple(planner.errors),
        budget_usd=budget_usd if budget_usd is not None else recipe.budget_usd,
        budget_pool=pool if pool is not None else recipe.budget_pool,
        recipe_jobs=everything,
        combinations=len(combos),
        value_order={axis: tuple(values) for axis, values in order.items()},
    )


def _spec(file: RecipeFile) -> Spec:
    try:
        spec = load_spec(file.recipe.model)
    except SpecError as exc:
        raise RecipeError(f"{file.where('model')}: model: {exc}") from exc
    if spec.price_usd is not None and file.recipe.price_usd is not None:
        # A recipe must not set what a run is charged below what Segmind charges: the budget
        # checks and the $5 question would be wrong by the difference.
        raise RecipeError(
            f"{file.where('price_usd')}: price_usd: {spec.id} has its price in its spec "
            f"({money(spec.price_usd)} a call); `price_usd` is only for a model whose spec has no "
            "price: remove it"
        )
    return spec


def _too_many(file: RecipeFile, count: int | str) -> str:
    cap = file.recipe.max_jobs
    advice = (
        "raise `max_jobs`"
        if "max_jobs" in file.recipe.model_fields_set
        else "set `max_jobs` in the recipe"
    )
    return (
        f"{file.where('matrix')}: matrix: the recipe gives {count} jobs, more than max_jobs "
        f"({cap:,}); {advice} to allow it, or narrow the matrix"
    )


def _check_size(file: RecipeFile) -> None:
    """Refuse a huge matrix before expanding it (10^9 combinations would never finish)."""
    size = math.prod(len(values) for values in file.recipe.matrix.values())
    if size - len(file.recipe.exclude) > file.recipe.max_jobs * 10:
        raise RecipeError(_too_many(file, f"up to {size:,}"))


def _narrow(
    file: RecipeFile, combos: list[Combination], only: Sequence[tuple[str, str]]
) -> list[Combination]:
    """``--only AXIS=VALUE``: one axis named twice keeps either value; different axes all must hold."""
    wanted: dict[str, list[str]] = {}
    matrix = file.recipe.matrix
    for axis, value in only:
        if axis not in matrix:
            raise RecipeError(
                f"--only {axis}={value}: no axis '{axis}'{did_you_mean(axis, matrix)} (axes: {', '.join(matrix)})"
            )
        names = [value_id(v) for v in matrix[axis]]
        if not any(_names(v, value) for v in matrix[axis]) and not any(
            _names(c.values.get(axis), value) for c in combos
        ):
            raise RecipeError(
                f"--only {axis}={value}: no such value{did_you_mean(value, names)} (values: {', '.join(names)})"
            )
        wanted.setdefault(axis, []).append(value)
    return [
        combo
        for combo in combos
        if all(
            any(_names(combo.values.get(axis), v) for v in values)
            for axis, values in wanted.items()
        )
    ]


def _names(value: Any, wanted: str) -> bool:
    if value is None:
        return False
    return matches(value, wanted) or value_id(value) == wanted or str(value) == wanted


class _Planner:
    """Renders and checks jobs; templates are compiled once, errors collected, not raised."""

    def __init__(self, file: RecipeFile, spec: Spec, *, reseed: Mapping[str, int]) -> None:
        self.file = file
        self.spec = spec
        self.reseed = reseed
        self.errors: list[PlanProblem] = []
        # Templates that reached a sandbox limit: no longer rendered (see job()).
        self.refused: set[str] = set()
        self.base = file.path.parent
        # Local images come from the recipe's own folder tree, or a folder it names.
        self.image_roots = [self.base.resolve()]
        if file.recipe.image_root is not None:
            self.image_roots.append((self.base / file.recipe.image_root).expanduser().resolve())
        self._images: dict[str, LocalImage | str] = {}
        recipe = file.recipe
        self.unknown = {name for name in recipe.params if name not in spec.params}
        for name in self.unknown:
            hint = did_you_mean(name, spec.params)
            self._error(
                None, name, f"unknown parameter{hint} (parameters: {', '.join(spec.params)})"
            )
        for name, param in spec.params.items():
            if param.required and name not in recipe.params:
                self.errors.append(
                    PlanProblem(
                        job=None,
                        param=name,
                        message=f"required parameter missing (allowed: {param.allowed(most=12)})",
                        location=file.where("params"),
                    )
                )
        self.templates: dict[str, Template] = {
            name: compile_value(
                value, where=file.doc.location(("params", name)), field=f"params.{name}"
            )
            for name, value in recipe.params.items()
            if not (name == "seed" and value == "auto")
        }
        self.auto_seed = recipe.params.get("seed") == "auto"
        seed = spec.params.get("seed")
        self.seed_low = max(0, int(seed.minimum)) if seed and seed.minimum is not None else 0
        self.seed_high = (
            int(seed.maximum) if seed and seed.maximum is not None else _DEFAULT_SEED_MAX
        )
        output = recipe.output or "{{ job_id }}"
        self.output = compile_value(output, where=file.doc.location(("output",)), field="output")
        self.images = {name for name, param in spec.params.items() if param.type == "image"}
        self.price = recipe.price_usd if recipe.price_usd is not None else spec.price_usd
        self.samples_default = spec.params["samples"].default if "samples" in spec.params else None

    def _error(self, job: str | None, param: str | None, message: str, *keys: str | int) -> None:
        if not keys:
            keys = ("params", param) if param else ("params",)
        location = self.file.where(*keys)
        self.errors.append(PlanProblem(job=job, param=param, message=message, location=location))

    def job(self, combo: Combination) -> Job | None:
        context = {**self.file.recipe.vars, **combo.values, "job_id": combo.id}
        payload: dict[str, Any] = {}
        failed = False
        for name, template in self.templates.items():
            if name in self.refused:
                failed = True
                continue
            try:
                value = template.render(context)
            except TemplateFailure as exc:
                if exc.message.startswith(_REFUSED):
                    # Reaching a limit can take a second: not once per job of a large plan.
                    self.refused.add(name)
                    message = f"{exc.message} (in job {combo.id}; the template is not rendered for the other jobs)"
                    self._error(None, name, message)
                else:
                    self._error(combo.id, name, exc.message)
                failed = True
                continue
            if name in self.images and isinstance(value, str) and not is_sendable_image(value):
                value = self._local_image(combo.id, name, value)
                if value is None:
                    failed = True
                    continue
            payload[name] = value
        if combo.id in self.reseed:
            payload["seed"] = self._seed(combo.id, self.reseed[combo.id])
        elif self.auto_seed:
            payload["seed"] = self._seed(combo.id)
        output = self._output(combo.id, context, payload)
        if output is None or failed:
            return None
        for violation in self.spec.validator.violations(payload):
            if violation.param in self.unknown or violation.param not in payload:
                continue  # reported once for the whole recipe
            self._error(combo.id, violation.param, violation.detail)
            failed = True
        if failed:
            return None
        return Job.model_construct(
            id=combo.id,
            values=dict(combo.ids),
            payload=payload,
            cost_usd=self._cost(payload),
            output=output,
        )

    def _local_image(self, job: str, name: str, value: str) -> LocalImage | None:
        # Thousands of jobs share a handful of images: each is looked up on disk once.
        if value not in self._images:
            self._images[value] = self._find_image(value)
        image = self._images[value]
        if isinstance(image, str):
            self._error(job, name, image)
            return None
        return image

    def _find_image(self, value: str) -> LocalImage | str:
        """The image file ``value`` names, or why it cannot be sent."""
        path = Path(value).expanduser()
        path = path if path.is_absolute() else self.base / path
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root) for root in self.image_roots):
            roots = " or ".join(str(root) for root in self.image_roots)
            return (
                f"'{value}' is outside the recipe's folder ({roots}): a recipe sends images only "
                "from its own folder tree; move the image there, or name its folder in `image_root`"
            )
        if not resolved.is_file():
            return f"no such image file '{value}' (looked for {path})"
        problem = image_problem(resolved)
        if problem is not None:
            return f"'{value}' {problem}; only image files are sent"
        return LocalImage(path)

    def _seed(self, job_id: str, generation: int = 0) -> int:
        # Generation 0 is `seed: auto`'s own seed, unchanged since it was first given.
        key = f"{self.file.name}\0{job_id}" + (f"\0{generation}" if generation else "")
        digest = hashlib.sha256(key.encode()).digest()
        return self.seed_low + int.from_bytes(digest[:8], "big") % (
            self.seed_high - self.seed_low + 1
        )

    def _output(
        self, job_id: str, context: Mapping[str, Any], payload: Mapping[str, Any]
    ) -> str | None:
        try:
            rendered = str(self.output.render(context))
        except TemplateFailure as exc:
            self._error(job_id, None, f"output: {exc.message}", "output")
            return None
        path = posixpath.normpath(rendered.strip().replace("\\", "/"))
        if (
            not rendered.strip()
            or path.startswith(("/", ".."))
            or path == "."
            or ":" in path.split("/")[0]
        ):
            self._error(
                job_id,
                None,
                f"output: the template gives '{rendered}', which is not a path inside the output folder",
                "output",
            )
            return None
        path += self._extension(payload)
        problem = path_problem(path)
        if problem is not None:
            self._error(
                job_id,
                None,
                f"output: the template gives '{shown(path)}', which cannot be written: {problem}",
                "output",
            )
            return None
        return path

    def _extension(self, payload: Mapping[str, Any]) -> str:
        param = self.spec.params.get("image_format")
        chosen = payload.get("image_format", param.default if param else None)
        return _EXTENSIONS.get(str(chosen).lower(), ".png")

    def _cost(self, payload: Mapping[str, Any]) -> float | None:
        if self.price is None:
            return None
        samples = payload.get("samples", self.samples_default)
        count = (
            samples
            if isinstance(samples, int) and not isinstance(samples, bool) and samples > 0
            else 1
        )
        return round(self.price * count, 6)

    def check_outputs(self, jobs: Sequence[Job]) -> None:
        """No two jobs write one file, and no job writes under another's file (``a.jpg/b.jpg``)."""
        owners: dict[str, str] = {}
        for job in jobs:
            for path in self._files_of(job):
                first = owners.setdefault(path, job.id)
                if first != job.id:
                    self._error(
                        job.id,
                        None,
                        f"output: jobs {first} and {job.id} both write '{path}'; make the output "
                        "template tell them apart (for example with {{ job_id }})",
                        "output",
                    )
                    break
        for job in jobs:
            parts = job.output.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder in owners:
                    self._error(
                        job.id,
                        None,
                        f"output: '{job.output}' needs a folder '{folder}', which is the output "
                        f"of job {owners[folder]}; a path cannot be both a file and a folder",
                        "output",
                    )
                    break

    def _files_of(self, job: Job) -> list[str]:
        """The files a job writes: its output, and ``-2``, ``-3``… for more samples."""
        samples = job.payload.get("samples", self.samples_default)
        count = samples if isinstance(samples, int) and not isinstance(samples, bool) else 1
        stem, dot, extension = job.output.rpartition(".")
        return [job.output] + [f"{stem}-{n}{dot}{extension}" for n in range(2, max(count, 1) + 1)]
