"""``engine.matrix`` against GitHub Actions' ``strategy.matrix`` rules.

The documented examples come from
https://docs.github.com/en/actions/using-jobs/using-a-matrix-for-your-jobs; the properties compare
``expand`` with a small reference implementation written straight from the rules below.

1. The cartesian product of the axes in declaration order (the first axis varies slowest).
2. ``exclude`` removes every combination an entry matches partially.
3. Each ``include`` entry extends every original (post-exclude) combination none of whose axis
   values it would overwrite (keys that are not axes are added, and may overwrite what an earlier
   include added); an entry that extends none becomes a combination of its own, which later
   includes never extend.

Our extension: an axis value may be a mapping with an ``id``, named in entries by that id or by a
partial mapping; a new combination from an include gets the matrix's own mapping. Job ids join the
axes' value ids with "/" in axis order; repeats get "~2", "~3" in order.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.matrix import expand, matches, value_id
from engine.slug import slug

PROPERTY = settings(max_examples=150, deadline=None)


def _jobs(axes: Mapping[str, Sequence[Any]], **entries: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(c.id, dict(c.values)) for c in expand(axes, **entries)]


def _typed(value: Any) -> Any:
    """A comparable form that tells ``True`` from ``1`` and ``1`` from ``1.0``."""
    if isinstance(value, Mapping):
        return ("mapping", tuple(sorted((str(k), _typed(v)) for k, v in value.items())))
    return (type(value).__name__, value)


def _typed_jobs(jobs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Any]]:
    return [(job_id, _typed(values)) for job_id, values in jobs]


# --- GitHub's documented examples ---------------------------------------------------------------


def test_plain_product_runs_in_declaration_order_first_axis_slowest() -> None:
    jobs = _jobs({"version": [10, 12, 14], "os": ["ubuntu-latest", "windows-latest"]})
    assert jobs == [
        ("10/ubuntu-latest", {"version": 10, "os": "ubuntu-latest"}),
        ("10/windows-latest", {"version": 10, "os": "windows-latest"}),
        ("12/ubuntu-latest", {"version": 12, "os": "ubuntu-latest"}),
        ("12/windows-latest", {"version": 12, "os": "windows-latest"}),
        ("14/ubuntu-latest", {"version": 14, "os": "ubuntu-latest"}),
        ("14/windows-latest", {"version": 14, "os": "windows-latest"}),
    ]


def test_docs_include_example_fruit_and_animal() -> None:
    jobs = _jobs(
        {"fruit": ["apple", "pear"], "animal": ["cat", "dog"]},
        include=[
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    )
    assert jobs == [
        ("apple/cat", {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"}),
        ("apple/dog", {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"}),
        ("pear/cat", {"fruit": "pear", "animal": "cat", "color": "pink"}),
        ("pear/dog", {"fruit": "pear", "animal": "dog", "color": "green"}),
        ("banana", {"fruit": "banana"}),
        ("banana/cat", {"fruit": "banana", "animal": "cat"}),
    ]


def test_docs_exclude_example_partial_match() -> None:
    axes = {
        "os": ["macos-latest", "windows-latest"],
        "version": [12, 14, 16],
        "environment": ["staging", "production"],
    }
    exclude = [
        {"os": "macos-latest", "version": 12, "environment": "production"},
        {"os": "windows-latest", "version": 16},
    ]
    jobs = _jobs(axes, exclude=exclude)
    assert [job_id for job_id, _ in jobs] == [
        "macos-latest/12/staging",
        "macos-latest/14/staging",
        "macos-latest/14/production",
        "macos-latest/16/staging",
        "macos-latest/16/production",
        "windows-latest/12/staging",
        "windows-latest/12/production",
        "windows-latest/14/staging",
        "windows-latest/14/production",
    ]
    assert all(values.keys() == axes.keys() for _, values in jobs)


def test_docs_include_expands_one_configuration() -> None:
    jobs = _jobs(
        {"os": ["windows-latest", "ubuntu-latest"], "node": [14, 16]},
        include=[{"os": "windows-latest", "node": 16, "npm": 6}],
    )
    assert jobs == [
        ("windows-latest/14", {"os": "windows-latest", "node": 14}),
        ("windows-latest/16", {"os": "windows-latest", "node": 16, "npm": 6}),
        ("ubuntu-latest/14", {"os": "ubuntu-latest", "node": 14}),
        ("ubuntu-latest/16", {"os": "ubuntu-latest", "node": 16}),
    ]


def test_docs_include_adds_a_configuration() -> None:
    jobs = _jobs(
        {"os": ["windows-latest", "ubuntu-latest"], "node": [14, 16]},
        include=[{"os": "windows-latest", "node": 17}],
    )
    assert [job_id for job_id, _ in jobs] == [
        "windows-latest/14",
        "windows-latest/16",
        "ubuntu-latest/14",
        "ubuntu-latest/16",
        "windows-latest/17",
    ]
    assert jobs[-1][1] == {"os": "windows-latest", "node": 17}


def test_docs_include_only_matrix_runs_every_entry() -> None:
    """Docs: "If you don't specify any matrix variables, all configurations under include will run."."""
    include = [
        {"site": "production", "datacenter": "site-a"},
        {"site": "staging", "datacenter": "site-b"},
    ]
    assert [dict(c.values) for c in expand({}, include=include)] == include


def test_include_fitting_nothing_after_exclude_becomes_its_own_job() -> None:
    jobs = _jobs({"a": ["x"]}, exclude=[{"a": "x"}], include=[{"color": "green"}])
    assert [values for _, values in jobs] == [{"color": "green"}]


def test_later_include_never_extends_a_combination_an_include_added() -> None:
    jobs = _jobs({"a": ["x"]}, include=[{"a": "y"}, {"a": "y", "color": "green"}])
    assert [values for _, values in jobs] == [{"a": "x"}, {"a": "y"}, {"a": "y", "color": "green"}]


def test_include_overwrites_what_an_earlier_include_added_but_not_axis_values() -> None:
    jobs = _jobs(
        {"a": ["x", "y"]},
        include=[{"color": "green"}, {"a": "x", "color": "pink"}, {"a": "x", "b": 1}],
    )
    assert [values for _, values in jobs] == [
        {"a": "x", "color": "pink", "b": 1},
        {"a": "y", "color": "green"},
    ]


# --- mapping values with ids --------------------------------------------------------------------

LAMP = {"id": "lamp", "prompt": "a brass arc lamp"}
CHAIR = {"id": "chair", "prompt": "a walnut chair"}


def test_mapping_values_are_named_by_id_in_job_ids() -> None:
    jobs = _jobs({"product": [LAMP, CHAIR], "ratio": ["16:9 (Panorama)", "1:1"]})
    assert [job_id for job_id, _ in jobs] == [
        "lamp/16x9",
        "lamp/1x1",
        "chair/16x9",
        "chair/1x1",
    ]
    assert jobs[0][1] == {"product": LAMP, "ratio": "16:9 (Panorama)"}


def test_include_extends_a_mapping_value_named_by_id_and_keeps_the_mapping() -> None:
    jobs = _jobs({"product": [LAMP, CHAIR]}, include=[{"product": "lamp", "steps": 30}])
    assert jobs == [("lamp", {"product": LAMP, "steps": 30}), ("chair", {"product": CHAIR})]


def test_include_extends_a_mapping_value_named_by_a_partial_mapping() -> None:
    jobs = _jobs({"product": [LAMP, CHAIR]}, include=[{"product": {"id": "chair"}, "steps": 30}])
    assert jobs == [("lamp", {"product": LAMP}), ("chair", {"product": CHAIR, "steps": 30})]


def test_new_combination_from_include_gets_the_matrix_mapping() -> None:
    jobs = _jobs(
        {"product": [LAMP, CHAIR], "ratio": ["1:1"]},
        include=[{"product": "lamp", "ratio": "4:3", "steps": 30}],
    )
    assert jobs[-1] == ("lamp/4x3", {"product": LAMP, "ratio": "4:3", "steps": 30})


def test_exclude_names_a_mapping_value_by_id_or_partial_mapping() -> None:
    axes = {"product": [LAMP, CHAIR], "ratio": ["1:1", "4:3"]}
    by_id = _jobs(axes, exclude=[{"product": "lamp", "ratio": "4:3"}])
    by_mapping = _jobs(axes, exclude=[{"product": {"prompt": "a brass arc lamp"}, "ratio": "4:3"}])
    assert [job_id for job_id, _ in by_id] == ["lamp/1x1", "chair/1x1", "chair/4x3"]
    assert by_mapping == by_id


def test_repeated_job_ids_get_suffixes_in_order() -> None:
    jobs = _jobs({"ratio": ["16:9 (Panorama)", "16:9", "16x9"], "n": [1]})
    assert [job_id for job_id, _ in jobs] == ["16x9/1", "16x9/1~2", "16x9/1~3"]


def test_job_ids_stay_unique_when_a_mapping_id_looks_like_a_suffix() -> None:
    """A recipe-valid matrix: the second include re-adds "x", and its "~2" must not clash."""
    combos = expand(
        {"model": [{"id": "x"}, {"id": "x~2"}]},
        exclude=[{"model": "x"}],
        include=[{"model": "x", "seed": 1}, {"model": "x", "seed": 2}],
    )
    ids = [c.id for c in combos]
    assert len(ids) == 3
    assert len(set(ids)) == len(ids), ids


# --- matches and value_id -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wanted", "expected"),
    [
        ("x", "x", True),
        ("x", "X", False),
        (12, 12, True),
        (12, "12", False),
        ("12", 12, False),
        (1, True, False),
        (True, 1, False),
        (0, False, False),
        (1, 1.0, False),
        (True, True, True),
        (None, None, True),
        (LAMP, "lamp", True),
        (LAMP, "chair", False),
        (LAMP, {"id": "lamp"}, True),
        (LAMP, {"prompt": "a brass arc lamp"}, True),
        (LAMP, {"id": "lamp", "prompt": "other"}, False),
        (LAMP, {"id": "lamp", "steps": 30}, False),
        (LAMP, dict(LAMP), True),
        (LAMP, {}, True),
        ("lamp", {"id": "lamp"}, False),
        ({"prompt": "p"}, "p", False),
    ],
)
def test_matches(value: Any, wanted: Any, expected: bool) -> None:
    assert matches(value, wanted) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("16:9 (Panorama)", "16x9"),
        ("16:9", "16x9"),
        (" 4 : 3 wide", "4x3"),
        ("Brass Arc Lamp", "brass-arc-lamp"),
        ("Café crème", "cafe-creme"),
        ("!!!", "_"),
        ("", "_"),
        (True, "true"),
        (False, "false"),
        (30, "30"),
        (7.5, "7-5"),
        (None, "none"),
        (LAMP, "lamp"),
        ({"id": "Brass Arc Lamp"}, "Brass Arc Lamp"),
        ({"id": 3}, "3"),
    ],
)
def test_value_id(value: Any, expected: str) -> None:
    assert value_id(value) == expected


@pytest.mark.parametrize("value", ["16:9 (Panorama)", "Brass Arc Lamp", 3, 2.5, True, None, "é"])
def test_value_id_of_a_scalar_is_its_slug(value: Any) -> None:
    assert value_id(value) == slug(value)


# --- the reference ------------------------------------------------------------------------------


def _ref_names(value: Any, wanted: Any) -> bool:
    """Whether an axis value is what an entry names: a mapping by id or part of it, else equality."""
    if isinstance(value, Mapping):
        if isinstance(wanted, Mapping):
            return all(key in value and value[key] == want for key, want in wanted.items())
        return value["id"] == wanted
    if isinstance(wanted, Mapping):
        return False
    return type(value) is type(wanted) and value == wanted


def _ref_resolve(axis_values: Sequence[Any], wanted: Any) -> Any:
    for value in axis_values:
        if isinstance(value, Mapping) and _ref_names(value, wanted):
            return value
    return wanted


def _ref_value_id(value: Any) -> str:
    return str(value["id"]) if isinstance(value, Mapping) else slug(value)


def reference_parts(
    axes: Mapping[str, Sequence[Any]],
    include: Sequence[Mapping[str, Any]],
    exclude: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(originals, added)``: the product after exclude and include, and the includes' own jobs."""
    names = list(axes)
    product: list[dict[str, Any]] = [{}] if names else []
    for name in names:
        product = [{**combo, name: value} for combo in product for value in axes[name]]

    originals = []
    for combo in product:
        excluded = False
        for entry in exclude:
            if all(key in combo and _ref_names(combo[key], want) for key, want in entry.items()):
                excluded = True
        if not excluded:
            originals.append(combo)

    added = []
    for entry in include:
        extended = False
        for combo in originals:
            overwrites = False
            for key, want in entry.items():
                if key in names and not _ref_names(combo[key], want):
                    overwrites = True
            if not overwrites:
                for key, want in entry.items():
                    if key not in names:
                        combo[key] = want
                extended = True
        if not extended:
            added.append(
                {
                    key: _ref_resolve(axes[key], want) if key in names else want
                    for key, want in entry.items()
                }
            )
    return originals, added


def reference(
    axes: Mapping[str, Sequence[Any]],
    include: Sequence[Mapping[str, Any]] = (),
    exclude: Sequence[Mapping[str, Any]] = (),
) -> list[tuple[str, dict[str, Any]]]:
    originals, added = reference_parts(axes, include, exclude)
    seen: dict[str, int] = {}
    jobs = []
    for combo in originals + added:
        # "job" names a combination that has no axis at all (only an include's own keys).
        base = "/".join(_ref_value_id(combo[name]) for name in axes if name in combo) or "job"
        seen[base] = seen.get(base, 0) + 1
        jobs.append((base if seen[base] == 1 else f"{base}~{seen[base]}", combo))
    return jobs


def test_reference_reproduces_the_docs_example() -> None:
    """The reference itself must agree with GitHub before it can judge ``expand``."""
    jobs = reference(
        {"fruit": ["apple", "pear"], "animal": ["cat", "dog"]},
        include=[
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    )
    assert [values for _, values in jobs] == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


# --- random matrices ----------------------------------------------------------------------------

AXIS_NAMES = ("fruit", "animal", "size", "mode")
EXTRA_KEYS = ("color", "shape")
# Slugs collide on purpose ("x"/"X"/"x!", "16:9 (Panorama)"/"16:9"/"16x9", True/"true"), and
# True/1/1.0 are equal in Python but distinct matrix values.
SCALARS = ("x", "y", "X", "x!", "16:9 (Panorama)", "16:9", "16x9", "true", True, False, 1, 0, 1.0)
MAPPING_IDS = ("m1", "m2", "x")
FRESH = "zz-fresh-value"

scalars = st.sampled_from(SCALARS)
mappings = st.builds(
    lambda id_, size: {"id": id_} if size is None else {"id": id_, "size": size},
    st.sampled_from(MAPPING_IDS),
    st.none() | st.integers(0, 2),
)
axis_values = st.one_of(scalars, scalars, mappings)


def _namings(value: Any) -> st.SearchStrategy[Any]:
    """Ways an entry can name an axis value: itself, or for a mapping its id or part of it."""
    if not isinstance(value, Mapping):
        return st.just(value)
    parts = [st.just(value), st.just(value["id"]), st.just({"id": value["id"]})]
    if "size" in value:
        parts.append(st.just({"size": value["size"]}))
    return st.one_of(parts)


@st.composite
def matrices(draw: st.DrawFn) -> tuple[dict[str, list[Any]], list[dict[str, Any]], list[dict]]:
    count = draw(st.integers(1, 4))
    axes = {
        name: draw(st.lists(axis_values, min_size=1, max_size=4)) for name in AXIS_NAMES[:count]
    }

    def value_for(key: str) -> Any:
        if key not in axes:
            return draw(scalars)
        named = draw(st.sampled_from(axes[key]).flatmap(_namings))
        return draw(st.one_of(st.just(named), st.just(named), axis_values))

    def entry(keys: Sequence[str], min_size: int) -> dict[str, Any]:
        chosen = draw(st.lists(st.sampled_from(keys), min_size=min_size, max_size=3, unique=True))
        return {key: value_for(key) for key in chosen}

    include = [entry([*axes, *EXTRA_KEYS], 0) for _ in range(draw(st.integers(0, 4)))]
    exclude = [entry(list(axes), 1) for _ in range(draw(st.integers(0, 3)))]
    return axes, include, exclude


@PROPERTY
@given(matrices())
def test_expand_agrees_with_the_reference(case: Any) -> None:
    axes, include, exclude = case
    got = _jobs(axes, include=include, exclude=exclude)
    want = reference(copy.deepcopy(axes), copy.deepcopy(include), copy.deepcopy(exclude))
    assert len(got) == len(want)
    assert [_typed(values) for _, values in got] == [_typed(values) for _, values in want]
    assert _typed_jobs(got) == _typed_jobs(want)


@PROPERTY
@given(matrices())
def test_job_ids_are_unique(case: Any) -> None:
    axes, include, exclude = case
    ids = [c.id for c in expand(axes, include=include, exclude=exclude)]
    assert len(set(ids)) == len(ids), ids


@PROPERTY
@given(matrices())
def test_expansion_is_deterministic_and_leaves_its_input_alone(case: Any) -> None:
    axes, include, exclude = case
    before = copy.deepcopy(case)
    first = _jobs(axes, include=include, exclude=exclude)
    second = _jobs(
        copy.deepcopy(axes), include=copy.deepcopy(include), exclude=copy.deepcopy(exclude)
    )
    assert _typed_jobs(first) == _typed_jobs(second)
    assert _typed(dict(enumerate(case))) == _typed(dict(enumerate(before)))


@PROPERTY
@given(matrices(), st.sampled_from([FRESH, {"id": FRESH}]))
def test_ids_are_stable_when_a_value_is_added_at_the_end_of_the_last_axis(
    case: Any, fresh: Any
) -> None:
    axes, include, exclude = case
    last = list(axes)[-1]
    grown = {**axes, last: [*axes[last], fresh]}
    before = _typed_jobs(_jobs(axes, include=include, exclude=exclude))
    after = _typed_jobs(_jobs(grown, include=include, exclude=exclude))

    # The original combinations all survive, under the same ids.
    originals, added = reference_parts(copy.deepcopy(axes), include, exclude)
    assert set(before[: len(originals)]) <= set(after)
    # The includes' own jobs too, unless the new value gave one of them an original to extend.
    _, grown_added = reference_parts(copy.deepcopy(grown), include, exclude)
    if _typed(dict(enumerate(added))) == _typed(dict(enumerate(grown_added))):
        assert set(before) <= set(after)


@PROPERTY
@given(matrices())
def test_excluded_combinations_appear_only_when_an_include_adds_them(case: Any) -> None:
    axes, include, exclude = case
    readded = [
        _typed({key: _ref_resolve(axes.get(key, ()), want) for key, want in entry.items()})
        for entry in include
    ]
    for combo in expand(axes, include=include, exclude=exclude):
        if any(
            all(key in combo.values and _ref_names(combo.values[key], want) for key, want in e)
            for e in (entry.items() for entry in exclude)
        ):
            assert _typed(dict(combo.values)) in readded, combo


@PROPERTY
@given(matrices())
def test_include_never_overwrites_an_original_axis_value(case: Any) -> None:
    axes, include, exclude = case
    names = list(axes)
    survivors = [
        values
        for values in itertools.product(*axes.values())
        if not any(
            all(_ref_names(values[names.index(key)], want) for key, want in entry.items())
            for entry in exclude
        )
    ]
    combos = expand(axes, include=include, exclude=exclude)
    got = [tuple(combo.values[name] for name in names) for combo in combos[: len(survivors)]]
    assert [tuple(map(_typed, values)) for values in got] == [
        tuple(map(_typed, values)) for values in survivors
    ]
    for combo in combos[: len(survivors)]:
        for key, value in combo.values.items():
            if key in names:
                assert any(_typed(value) == _typed(v) for v in axes[key])
