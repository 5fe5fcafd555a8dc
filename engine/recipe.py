"""The recipe: a model, templated parameters and a matrix, read from YAML with the line of every field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import RecipeError, YamlError, field_name, problems_of
from engine.formatting import kind_of, value_with_kind
from engine.matrix import matches
from engine.paths import component_problem, shown
from engine.suggest import did_you_mean
from engine.yamlfile import LocatedYaml, load_yaml

__all__ = [
    "DEFAULT_MAX_JOBS",
    "MAX_JOBS_CEILING",
    "POOL_NAME",
    "RESERVED_NAMES",
    "Recipe",
    "RecipeFile",
    "load_recipe",
]

DEFAULT_MAX_JOBS = 10_000
# The most `max_jobs` may allow: a plan this size takes seconds and a few hundred MB to make.
MAX_JOBS_CEILING = 100_000
# Names templates see besides the recipe's own vars and axes.
RESERVED_NAMES = frozenset(
    {"job_id", "recipe", "loop", "range", "dict", "lipsum", "cycler", "joiner", "namespace"}
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# What a budget pool may be named (`budget_pool:`, `render budget set NAME`).
POOL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Recipe(BaseModel):
    """What to render: the model, the parameters (Jinja templates) and the matrix they vary over."""

    # Strict: YAML already gives real types, so `budget_usd: true` is a mistake, not $1.00.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: str | None = Field(
        default=None, description="Names the run and its output folder; default: the file's stem."
    )
    model: str = Field(description="A spec id (`render specs list`).")
    budget_usd: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Hard cap on one run's spend, in dollars.",
    )
    budget_pool: str | None = Field(
        default=None,
        pattern=POOL_NAME,
        description="A budget pool (`render budget set NAME USD`) shared with every run that "
        "names it, on any machine using the same ledger; budget_usd still caps this run.",
    )
    vars: dict[str, Any] = Field(
        default_factory=dict, description="Constants the templates can use."
    )
    matrix: dict[str, list[Any]] = Field(
        description="Named axes; every combination of their values is a job."
    )
    include: list[dict[str, Any]] = Field(
        default_factory=list, description="GitHub Actions `include`: extend or add combinations."
    )
    exclude: list[dict[str, Any]] = Field(
        default_factory=list,
        description="GitHub Actions `exclude`: drop combinations (partial match).",
    )
    params: dict[str, Any] = Field(
        description="The payload; every string is a Jinja template. `seed: auto` gives a stable seed per job."
    )
    output: str | None = Field(
        default=None,
        description="Output path template inside the output folder, without extension; default: the job id.",
    )
    price_usd: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Price per call, for a model whose spec has none (a priced spec's price stands).",
    )
    max_jobs: int = Field(
        default=DEFAULT_MAX_JOBS,
        gt=0,
        le=MAX_JOBS_CEILING,
        description=f"Refuse to plan more jobs than this (at most {MAX_JOBS_CEILING:,}).",
    )
    image_root: str | None = Field(
        default=None,
        description="A folder (relative to the recipe) local images may also come from; by default "
        "only the recipe's own folder tree.",
    )

    @field_validator("matrix")
    @classmethod
    def _axes(cls, matrix: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not matrix:
            raise ValueError(
                "the matrix has no axes; give at least one axis with at least one value"
            )
        return matrix


@dataclass(frozen=True)
class RecipeFile:
    """A recipe and where it came from: its path (for relative images) and the line of every field."""

    path: Path
    recipe: Recipe
    doc: LocatedYaml

    @property
    def name(self) -> str:
        return self.recipe.name or self.path.stem

    def where(self, *keys: str | int) -> str:
        return str(self.doc.location(keys))


def load_recipe(path: str | Path) -> RecipeFile:
    """Read and check a recipe; every mistake names the file, the line and the field."""
    recipe_path = Path(path)
    try:
        doc = load_yaml(recipe_path)
    except YamlError as exc:
        raise RecipeError(str(exc)) from exc
    if not isinstance(doc.data, dict):
        found = "an empty file" if doc.data is None else kind_of(doc.data)
        raise RecipeError(
            f"{doc.location()}: a recipe is a mapping of fields (model, matrix, params, ...), not {found}"
        )
    try:
        recipe = Recipe.model_validate(doc.data)
    except ValidationError as exc:
        problems = problems_of(exc, doc, describe=_described)
        # A misspelt field explains the "missing" one it stands for: it is reported first.
        first = next((p for p in problems if p.problem.startswith("unknown field")), problems[0])
        raise RecipeError(problems=[first]) from exc
    file = RecipeFile(recipe_path, recipe, doc)
    _check_names(file)
    _check_axes(file)
    _check_entries(file, "exclude")
    _check_entries(file, "include")
    return file


_EXPECTED = {
    "string_type": "a string",
    "float_type": "a number",
    "int_type": "an integer",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "finite_number": "a finite number",
}


def _described(error: Mapping[str, Any]) -> tuple[str | None, str]:
    """A pydantic error in a recipe writer's words: the field, and what is wrong with it."""
    loc = tuple(error["loc"])
    field = field_name(loc) or "recipe"
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        hint = did_you_mean(loc[-1], Recipe.model_fields)
        return None, f"unknown field '{loc[-1]}'{hint} (fields: {', '.join(Recipe.model_fields)})"
    if kind == "missing":
        return None, f"missing required field '{loc[-1]}'"
    if loc and loc[-1] == "[key]":
        section = "axis name" if loc[0] == "matrix" else "name"
        return str(loc[0]), f"{section} '{value}' must be a template name (letters, digits, _)"
    if loc[:1] == ("matrix",) and len(loc) == 2 and kind == "list_type":
        return field, f"an axis must be a list of values, got {value_with_kind(value)}"
    if kind in {"greater_than", "greater_than_equal", "less_than_equal"}:
        bound = error.get("ctx", {})
        word = {"greater_than": "greater than", "greater_than_equal": "at least"}.get(
            kind, "at most"
        )
        limit = bound.get("gt", bound.get("ge", bound.get("le")))
        limit = int(limit) if isinstance(limit, float) and limit.is_integer() else limit
        shown = f"{limit:,}" if isinstance(limit, int) else limit
        return field, f"expected a number {word} {shown}, got {value_with_kind(value)}"
    if kind in _EXPECTED:
        return field, f"expected {_EXPECTED[kind]}, got {value_with_kind(value)}"
    return field, str(error["msg"]).removeprefix("Value error, ")


def _check_name(file: RecipeFile) -> None:
    """The name becomes the output folder (renders/<name>/): one plain folder name, nothing else."""
    problem = component_problem(file.name)
    if problem is None:
        return
    where = file.where("name") if file.recipe.name is not None else str(file.path)
    source = (
        "name" if file.recipe.name is not None else "the file's name (the recipe's default name)"
    )
    raise RecipeError(
        f"{where}: {source}: '{shown(file.name)}' {problem}; the name becomes the output folder "
        "renders/<name>/, so it must be one plain folder name (letters, digits, '-', '_')"
    )


def _check_names(file: RecipeFile) -> None:
    _check_name(file)
    recipe = file.recipe
    for name in recipe.vars:
        if not _IDENTIFIER.match(name):
            raise RecipeError(
                f"{file.where('vars', name)}: vars.{name}: a var name must be a template name (letters, digits, _)"
            )
    for name in (*recipe.vars, *recipe.matrix):
        if name in RESERVED_NAMES:
            raise RecipeError(
                f"{_where_name(file, name)}: '{name}' is a name templates reserve; choose another"
            )
    for name in recipe.matrix:
        if name in recipe.vars:
            raise RecipeError(
                f"{file.where('matrix', name)}: axis '{name}' has the name of a var; rename one"
            )


def _where_name(file: RecipeFile, name: str) -> str:
    return file.where("matrix", name) if name in file.recipe.matrix else file.where("vars", name)


def _check_axes(file: RecipeFile) -> None:
    for axis, values in file.recipe.matrix.items():
        if not _IDENTIFIER.match(axis):
            raise RecipeError(
                f"{file.where('matrix', axis)}: matrix: axis name '{axis}' must be a template name "
                "(letters, digits, _)"
            )
        if not values:
            raise RecipeError(f"{file.where('matrix', axis)}: matrix: axis '{axis}' has no values")
        seen: dict[str, int] = {}
        for index, value in enumerate(values):
            where = file.where("matrix", axis, index)
            if isinstance(value, Mapping):
                if "id" not in value:
                    raise RecipeError(
                        f"{where}: matrix.{axis}[{index}]: a mapping value needs an `id` (it names the job)"
                    )
                key = str(value["id"])
                if not isinstance(value["id"], str | int) or not key:
                    raise RecipeError(
                        f"{where}: matrix.{axis}[{index}].id: expected a non-empty string"
                    )
            elif isinstance(value, list):
                raise RecipeError(
                    f"{where}: matrix.{axis}[{index}]: a value must be a scalar or a mapping with an `id`, not a list"
                )
            else:
                key = repr(value)
            if key in seen:
                raise RecipeError(
                    f"{where}: matrix.{axis}[{index}]: '{key.strip(chr(39))}' repeats the value on line {file.doc.line(('matrix', axis, seen[key]))}"
                )
            seen[key] = index


def _check_entries(file: RecipeFile, field: str) -> None:
    matrix = file.recipe.matrix
    entries: list[dict[str, Any]] = getattr(file.recipe, field)
    for index, entry in enumerate(entries):
        where = file.where(field, index)
        axes = [key for key in entry if key in matrix]
        if not axes:
            hint = did_you_mean(next(iter(entry), ""), matrix) if entry else ""
            raise RecipeError(
                f"{where}: {field}[{index}] names no axis{hint} (axes: {', '.join(matrix)})"
            )
        for key, value in entry.items():
            if key not in matrix:
                if field == "exclude":
                    hint = did_you_mean(key, matrix)
                    raise RecipeError(
                        f"{file.where(field, index, key)}: {field}[{index}].{key}: not an axis{hint} (axes: {', '.join(matrix)})"
                    )
                continue
            _check_named_value(file, field, index, key, value)


def _check_named_value(file: RecipeFile, field: str, index: int, axis: str, value: Any) -> None:
    """An entry naming a mapping axis by id must name one that exists (a scalar axis may add values)."""
    values = file.recipe.matrix[axis]
    mapped = [v for v in values if isinstance(v, Mapping)]
    # An include may add a new plain value (Actions does); an exclude of a value not there is a typo.
    if field == "include" and (not mapped or (isinstance(value, Mapping) and "id" in value)):
        return
    if any(matches(v, value) for v in values):
        return
    names = [str(v.get("id")) if isinstance(v, Mapping) else str(v) for v in values]
    hint = did_you_mean(value, names)
    noun = "ids" if mapped else "values"
    raise RecipeError(
        f"{file.where(field, index, axis)}: {field}[{index}].{axis}: '{value}' names no value of axis "
        f"'{axis}'{hint} ({noun}: {', '.join(names)})"
    )
