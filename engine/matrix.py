"""Expand a matrix into combinations with GitHub Actions' ``strategy.matrix`` rules, and name them.

Product of the axes in declaration order (the first axis varies slowest), then ``exclude`` (a partial
match removes a combination), then ``include``: an entry extends every original combination whose
axis values it does not overwrite, or, when it fits none, is added as a combination of its own.
An axis value may be a scalar or a mapping; a mapping is named by its ``id`` in job ids and in
include/exclude entries.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.slug import slug

__all__ = ["Combination", "expand", "matches", "value_id"]


@dataclass(frozen=True, slots=True)
class Combination:
    """One job's matrix values (axis → value, plus keys an include added), its id and each axis' id."""

    id: str
    values: Mapping[str, Any]
    ids: Mapping[str, str]


def value_id(value: Any) -> str:
    """How an axis value appears in a job id: a mapping's ``id``, a scalar's slug."""
    if isinstance(value, Mapping):
        return str(value.get("id"))
    return slug(value)


def matches(value: Any, wanted: Any) -> bool:
    """Whether an axis value is what an include/exclude entry names.

    A mapping entry matches by its ``id`` or by a partial mapping; a scalar by equality.
    """
    if isinstance(wanted, Mapping):
        return isinstance(value, Mapping) and all(
            k in value and value[k] == v for k, v in wanted.items()
        )
    if isinstance(value, Mapping):
        found = value.get("id")
        return bool(found == wanted) and type(found) is type(wanted)
    return bool(value == wanted) and type(value) is type(wanted)


def expand(
    axes: Mapping[str, Sequence[Any]],
    *,
    include: Sequence[Mapping[str, Any]] = (),
    exclude: Sequence[Mapping[str, Any]] = (),
) -> list[Combination]:
    """Every combination, in order, with a stable id unique within the expansion."""
    names = list(axes)
    originals: list[dict[str, Any]] = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(axes[name] for name in names))
    ]
    if not names or not all(axes[name] for name in names):
        # No axes (or an empty one) means no product: only include entries make jobs.
        originals = []
    originals = [
        combo
        for combo in originals
        if not any(
            all(k in combo and matches(combo[k], v) for k, v in entry.items()) for entry in exclude
        )
    ]
    added: list[dict[str, Any]] = []
    for entry in include:
        fitted = False
        for combo in originals:
            if all(k not in axes or matches(combo[k], v) for k, v in entry.items()):
                combo.update({k: v for k, v in entry.items() if k not in axes})
                fitted = True
        if not fitted:
            added.append({k: _resolve(axes.get(k), v) for k, v in entry.items()})
    return _named(names, [*originals, *added])


def _resolve(values: Sequence[Any] | None, wanted: Any) -> Any:
    """An include's value for an axis: the matrix's own entry when it names one, else as given."""
    for value in values or ():
        if isinstance(value, Mapping) and matches(value, wanted):
            return value
    return wanted


def _named(names: list[str], combos: list[dict[str, Any]]) -> list[Combination]:
    used: set[str] = set()
    named = []
    for combo in combos:
        ids = {name: value_id(combo[name]) for name in names if name in combo}
        base = "/".join(ids.values()) or "job"
        candidate, count = base, 1
        # An id may itself end in "~2": count on until the name is free.
        while candidate in used:
            count += 1
            candidate = f"{base}~{count}"
        used.add(candidate)
        named.append(Combination(candidate, combo, ids))
    return named
