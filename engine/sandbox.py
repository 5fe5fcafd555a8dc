"""The sandbox recipe templates run in: Jinja's immutable sandbox, with every way of building a huge
value or running for ever bounded.

No operation may build a value longer than 1,000,000 characters or items (checked before the value is
built), nor a number longer than 4,300 digits; a rendered string is at most 100,000 characters. Each
rendered value gets a budget of 100,000 loop iterations and macro calls and of 5,000,000 steps of
work: characters and items built, compared or written, and template nodes run in loops (counted by
ticks the code generator puts in every loop body). A template past a limit raises Jinja's
``SecurityError`` with a message for users, instead of taking the memory or hanging. Templates
cannot change the lists and mappings they are given.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import types
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import chain
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context
from jinja2.sandbox import (
    MAX_RANGE,
    ImmutableSandboxedEnvironment,
    SandboxedEnvironment,
    SandboxedFormatter,
)
from jinja2.utils import Namespace, _PassArg, generate_lorem_ipsum
from markupsafe import EscapeFormatter, Markup

from engine.slug import slug

__all__ = [
    "MAX_TEMPLATES",
    "MAX_TEXT",
    "NUMBER_TOO_LONG",
    "RESULT_TOO_LONG",
    "TICK_FILTER",
    "TOO_DEEP",
    "environment",
    "one_budget",
]


# -- Limits ----------------------------------------------------------------------------------------

_MAX_BUILT = 1_000_000
_MAX_EXPONENT = 256
# Python will not print a longer integer (sys.get_int_max_str_digits()): a longer one is no use.
_MAX_DIGITS = 4_300
# A prompt is never this long; the limit keeps one bad value from filling a plan of 10,000 jobs.
_MAX_TEXT = 100_000
# The sandbox's own largest range: one loop over it is fine, a loop inside it is not.
_MAX_ITERATIONS = MAX_RANGE
# Under a second of the slowest kinds of step measured; a real template uses a few thousand.
_MAX_WORK = 5_000_000
# Each renders once per job; no value needs more, and YAML aliases can repeat one a million times.
_MAX_TEMPLATES = 10_000

# Steps are calibrated to about a tenth of a microsecond: what a call, an operator or a template
# node costs in Python, beyond the characters and items it handles.
_CALL_STEPS = 20
_OPERATOR_STEPS = 10
_NODE_STEPS = 3

_TOO_LONG = f"a value longer than {_MAX_BUILT:,} is not allowed"
_NUMBER_TOO_LONG = f"a number longer than {_MAX_DIGITS:,} digits"
_TOO_MANY_DIGITS = f"{_NUMBER_TOO_LONG} is not allowed"
_RESULT_TOO_LONG = f"a result longer than {_MAX_TEXT:,} characters is not allowed"
_TOO_MANY_ITERATIONS = (
    f"more than {_MAX_ITERATIONS:,} loop iterations and macro calls in one value are not allowed"
)
_TOO_MUCH_WORK = (
    f"more than {_MAX_WORK:,} steps of work in one value are not allowed (a step is a character "
    "or item built, compared or written, or a statement run in a loop)"
)
_TOO_DEEP = (
    "recursion this deep is not allowed (does a macro or a recursive loop call itself without end?)"
)
_NAMESPACE_INSIDE = "a namespace inside a list, mapping or namespace is not allowed"

_CONTAINERS = (list, tuple, dict, set, frozenset)
_SEQUENCES = (str, bytes, bytearray, list, tuple)
_VIEWS = (KeysView, ValuesView, ItemsView)


def _digits(number: int) -> int:
    """An upper bound of the decimal digits of ``number`` (log10(2) is just under 0.30103)."""
    return number.bit_length() * 30103 // 100_000 + 1


class _Budget:
    """What one render may still spend, and the sizes of the values it has measured."""

    __slots__ = ("iterations", "weights", "work")

    def __init__(self) -> None:
        self.iterations = 0
        self.work = 0
        # Keyed by id; the value is kept so that its id cannot be reused while the render runs.
        self.weights: dict[int, tuple[Any, int]] = {}

    def spend(self, steps: int) -> None:
        self.work += steps
        if self.work > _MAX_WORK:
            raise SecurityError(_TOO_MUCH_WORK)

    def iterate(self, steps: int) -> None:
        self.iterations += 1
        if self.iterations > _MAX_ITERATIONS:
            raise SecurityError(_TOO_MANY_ITERATIONS)
        self.spend(steps)

    def weigh(self, value: Any, *, inside: bool = False) -> int:
        """How big ``value`` is written out: characters, digits or items, a shared part each time it
        appears. Lists and mappings cannot change in the sandbox, so each is measured once."""
        if isinstance(value, str | bytes | bytearray):
            return len(value)
        if isinstance(value, int):
            return _digits(value)
        if isinstance(value, _CONTAINERS):
            known = self.weights.get(id(value))
            if known is not None:
                return known[1]
            self.spend(_OPERATOR_STEPS)
            if isinstance(value, dict):
                weight = self._weigh_items(tuple(value)) + self._weigh_items(tuple(value.values()))
            else:
                weight = self._weigh_items(
                    value if isinstance(value, list | tuple) else tuple(value)
                )
            self.remember(value, weight)
            return weight
        if isinstance(value, range):  # lazy, but whatever reads it reads every item
            return len(value)
        if isinstance(value, _VIEWS):
            items = chain.from_iterable(value) if isinstance(value, ItemsView) else value
            return self._weigh_items(tuple(items))
        if isinstance(value, Namespace):
            # A namespace changes as the template runs, so it is measured afresh, and kept out of
            # lists, whose measured size would otherwise grow unseen.
            if inside:
                raise SecurityError(_NAMESPACE_INSIDE)
            attributes: dict[str, Any] = object.__getattribute__(value, "_Namespace__attrs")
            self.spend(len(attributes))
            return sum(len(k) + max(1, self.weigh(v, inside=True)) for k, v in attributes.items())
        return 1

    def remember(self, value: Any, weight: int) -> None:
        """Record the weight of a new list or mapping whose weight is known without measuring it."""
        self.weights[id(value)] = (value, weight)

    def _weigh_items(self, items: list[Any] | tuple[Any, ...]) -> int:
        """The weight of a container's items, each at least 1: fast for plain text or numbers."""
        kinds = set(map(type, items))
        self.spend(len(items) // 4)
        if kinds <= {str}:
            return sum(map(len, items)) + items.count("")
        if kinds <= {int, bool}:
            return sum(map(int.bit_length, items)) * 30103 // 100_000 + len(items)
        if kinds <= {float, bool, type(None)}:
            return len(items)
        self.spend(4 * len(items))
        return sum(max(1, self.weigh(item, inside=True)) for item in items)

    def built(self, value: Any) -> Any:
        """Refuse ``value`` if it is too big, else charge for it and hand it on."""
        if type(value) is str:  # most values, and the cheapest to measure
            if len(value) > _MAX_BUILT:
                raise SecurityError(_TOO_LONG)
            self.spend(len(value))
            return value
        if isinstance(value, int) and _digits(value) > _MAX_DIGITS:
            raise SecurityError(_TOO_MANY_DIGITS)
        weight = self.weigh(value)
        if weight > _MAX_BUILT:
            raise SecurityError(_TOO_LONG)
        self.spend(weight)
        return value


def _budget(context: Context) -> _Budget:
    return context.budget if isinstance(context, _Context) else _Budget()


# Set while the templates of one list or mapping render, so that they spend one budget between them.
_SHARED_BUDGET: ContextVar[_Budget | None] = ContextVar("shared_budget", default=None)


class _Context(Context):
    """A render's context, carrying the render's budget; the contexts derived from it share it."""

    # Made on first use: "{{ steps }}" never needs one, and it is rendered 10,000 times in a plan.
    _budget: _Budget | None = None

    @property
    def budget(self) -> _Budget:
        if self._budget is None:
            self._budget = _SHARED_BUDGET.get() or _Budget()
        return self._budget

    def derived(self, locals: dict[str, Any] | None = None) -> Context:
        context = super().derived(locals)
        if isinstance(context, _Context):
            context._budget = self.budget
        return context


class _Namespace(Namespace):
    """``namespace()``, refusing another namespace as an attribute (see :meth:`_Budget.weigh`)."""

    def __setitem__(self, name: str, value: Any) -> None:
        if isinstance(value, Namespace):
            raise SecurityError(_NAMESPACE_INSIDE)
        super().__setitem__(name, value)


# -- Sizes of what string operations would build ---------------------------------------------------


def _refuse_above(size: object, limit: int = _MAX_BUILT) -> None:
    if isinstance(size, int) and size > limit:
        raise SecurityError(_TOO_LONG)


def _percent_padding(text: str, values: Any) -> int:
    """At most how much ``text % values`` adds to ``text``: widths and precisions, ``*`` ones too.

    Walks the conversions as Python's own ``%`` does, so that each ``*`` takes the right argument.
    """
    arguments = list(values) if isinstance(values, tuple) else [values]
    padding, used, at, end = 0, 0, 0, len(text)
    while (at := text.find("%", at) + 1) > 0:
        if at < end and text[at] == "(":  # a mapping key; its parentheses may nest
            depth = 0
            while at < end:
                depth += {"(": 1, ")": -1}.get(text[at], 0)
                at += 1
                if depth == 0:
                    break
        while at < end and text[at] in "-+ #0":
            at += 1
        for part in ("width", "precision"):
            if part == "precision":
                if at >= end or text[at] != ".":
                    break
                at += 1
            if at < end and text[at] == "*":
                star = arguments[used] if used < len(arguments) else 0
                used += 1
                at += 1
                padding += abs(star) if isinstance(star, int) else 0
                continue
            start = at
            while at < end and text[at] in "0123456789":
                at += 1
            if at - start > 7:  # longer than any allowed size: no need to read it
                return _MAX_BUILT + 1
            padding += int(text[start:at] or 0)
        while at < end and text[at] in "hlL":
            at += 1
        if at < end and text[at] != "%":
            used += 1
        at += 1
    return padding


def _check_percent(text: str | bytes, values: Any) -> None:
    pattern = text.decode("latin-1") if isinstance(text, bytes) else text
    if len(pattern) + _percent_padding(pattern, values) > _MAX_BUILT:
        raise SecurityError(_TOO_LONG)


def _check_format_spec(spec: str) -> None:
    """A spec such as ``>999999999`` or ``.999999999f`` pads or extends a value to its numbers."""
    for number in re.findall(r"\d+", spec):
        if len(number) > 7 or int(number) > _MAX_BUILT:
            raise SecurityError(_TOO_LONG)


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing huge widths and a result longer than the limit."""

    def __init__(self, env: jinja2.Environment, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.length = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_format_spec(format_spec)
        text = super().format_field(value, format_spec)
        self.length += len(text)
        if self.length > _MAX_BUILT:
            raise SecurityError(_TOO_LONG)
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


def _joined(budget: _Budget, separator: str | bytes | bytearray, items: Iterable[Any]) -> list[Any]:
    """The items of a join, listed; refused as soon as the joined value would be too long."""
    listed: list[Any] = []
    size = 0
    for item in items:
        listed.append(item)
        size += len(item) if isinstance(item, str | bytes | bytearray) else 1
        if size + len(separator) * (len(listed) - 1) > _MAX_BUILT:
            raise SecurityError(_TOO_LONG)
    budget.spend(len(listed))
    return listed


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, type(text)) or not isinstance(new, type(text)):
        return len(text)  # Python refuses the call itself
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _check_text_method(
    budget: _Budget,
    text: str | bytes | bytearray,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, ...]:
    """Refuse a str or bytes method call building a huge value; returns the arguments to use."""
    if name in ("ljust", "rjust", "center", "zfill"):
        _refuse_above(args[0] if args else kwargs.get("width"))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        tab: Any = "\t" if isinstance(text, str) else b"\t"
        if isinstance(size, int):
            _refuse_above(len(text) + text.count(tab) * size)
    elif name == "join" and args:
        return (_joined(budget, text, args[0]), *args[1:])
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        _refuse_above(
            _replaced_size(
                bytes(text) if isinstance(text, bytearray) else text, args[0], args[1], count
            )
        )
    elif name == "translate" and isinstance(text, str) and args:
        table = args[0]
        found = (
            table.values()
            if isinstance(table, Mapping)
            else table
            if isinstance(table, list | tuple)
            else ()
        )
        longest = max((len(v) for v in found if isinstance(v, str)), default=1)
        _refuse_above(len(text) * longest)
    return args


# -- Filters, tests and globals --------------------------------------------------------------------

# A filter's size check gets its arguments by name, defaults filled in; it may return the value and
# arguments to call the filter with instead (a join, for one, lists its items to measure them).
_Replacement = tuple[Any, tuple[Any, ...], dict[str, Any]]
_Check = Callable[[Context, _Budget, Any, dict[str, Any]], _Replacement | None]


def _check_center(_context: Context, _budget: _Budget, _value: Any, a: dict[str, Any]) -> None:
    _refuse_above(a["width"])


def _check_indent(_context: Context, _budget: _Budget, value: Any, a: dict[str, Any]) -> None:
    text, width = str(value), a["width"]
    step = len(width) if isinstance(width, str) else width
    if isinstance(step, int):
        _refuse_above(len(text) + (len(text.splitlines()) + 1) * step)


def _check_format(_context: Context, _budget: _Budget, value: Any, a: dict[str, Any]) -> None:
    _check_percent(str(value), a["kwargs"] or a["args"])


def _check_wordwrap(_context: Context, _budget: _Budget, value: Any, a: dict[str, Any]) -> None:
    text = str(value)
    if len(text) > _MAX_TEXT:  # textwrap is quadratic in the length of a word
        raise SecurityError(
            f"'wordwrap' on a text longer than {_MAX_TEXT:,} characters is not allowed"
        )
    _refuse_above(len(text) + (len(text) + 1) * len(str(a["wrapstring"] or "\n")))


def _check_striptags(_context: Context, _budget: _Budget, value: Any, _a: dict[str, Any]) -> None:
    if len(str(value)) > _MAX_TEXT:  # markupsafe's striptags is quadratic in the number of tags
        raise SecurityError(
            f"'striptags' on a text longer than {_MAX_TEXT:,} characters is not allowed"
        )


def _check_urlize(_context: Context, _budget: _Budget, value: Any, a: dict[str, Any]) -> None:
    text = str(value)
    # Any word may become a link, written twice and carrying the target and rel attributes.
    per_link = len(str(a["target"] or "")) + len(str(a["rel"] or "")) + 60
    _refuse_above(3 * len(text) + len(text.split()) * per_link)


def _check_round(_context: Context, _budget: _Budget, _value: Any, a: dict[str, Any]) -> None:
    # Rounding computes 10 ** precision, exactly, for an integer or the "ceil" and "floor" methods.
    if isinstance(a["precision"], int) and abs(a["precision"]) > _MAX_DIGITS:
        raise SecurityError(_TOO_MANY_DIGITS)


def _check_replace(_context: Context, _budget: _Budget, value: Any, a: dict[str, Any]) -> None:
    _refuse_above(_replaced_size(str(value), str(a["old"]), str(a["new"]), a["count"]))


def _check_join(context: Context, budget: _Budget, value: Any, a: dict[str, Any]) -> _Replacement:
    if a["attribute"] is not None:
        value = map(make_attrgetter(context.environment, a["attribute"]), value)
    # Written out here, so that the joined length is known before joining; the filter joins them.
    texts = (item if isinstance(item, str) else str(item) for item in value)
    return _joined(budget, str(a["d"]), texts), (a["d"],), {}


def _check_batch(_context: Context, budget: _Budget, _value: Any, a: dict[str, Any]) -> None:
    if a["fill_with"] is not None and isinstance(a["linecount"], int):
        _refuse_above(a["linecount"] * max(1, budget.weigh(a["fill_with"])))


def _check_slice(_context: Context, budget: _Budget, _value: Any, a: dict[str, Any]) -> None:
    _refuse_above(a["slices"])
    if isinstance(a["slices"], int) and a["slices"] > 0:
        budget.spend(a["slices"])


def _check_sum(
    context: Context, budget: _Budget, value: Any, a: dict[str, Any]
) -> _Replacement | None:
    start = a["start"]
    if isinstance(start, int | float | complex):
        return None
    if a["attribute"] is not None:
        value = map(make_attrgetter(context.environment, a["attribute"]), value)
    items = list(value)
    total = budget.weigh(start) + sum(budget.weigh(item) for item in items)
    _refuse_above(total)
    budget.spend(len(items) * total)  # sum() copies the growing total once per item
    return items, (), {"start": start}


_FILTER_CHECKS: dict[str, _Check] = {
    "batch": _check_batch,
    "center": _check_center,
    "format": _check_format,
    "indent": _check_indent,
    "join": _check_join,
    "replace": _check_replace,
    "round": _check_round,
    "slice": _check_slice,
    "striptags": _check_striptags,
    "sum": _check_sum,
    "urlize": _check_urlize,
    "wordwrap": _check_wordwrap,
}

# Steps per character or item of the filtered value, where it differs from one: filters that do not
# read it all cost nothing, filters that run Python code per item or per word cost more.
_FILTER_COST = {
    **dict.fromkeys(["attr", "count", "d", "default", "first", "last", "length", "random"], 0),
    **dict.fromkeys(["join", "list", "reverse", "sum", "tojson"], 3),
    **dict.fromkeys(["batch", "items", "map", "max", "min", "reject", "rejectattr"], 5),
    **dict.fromkeys(["select", "selectattr", "slice", "unique", "xmlattr"], 5),
    **dict.fromkeys(["dictsort", "sort"], 10),
    **dict.fromkeys(["pprint", "striptags", "urlize"], 20),
    **dict.fromkeys(["wordwrap"], 40),
    **dict.fromkeys(["groupby"], 100),
}


def _with_pass_arg(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as ``(context, value, *args, **kwargs)``, whatever it takes first."""
    pass_arg = _PassArg.from_obj(func)
    if pass_arg is _PassArg.context:
        return func
    if pass_arg is _PassArg.eval_context:
        return lambda context, *args, **kwargs: func(context.eval_ctx, *args, **kwargs)
    if pass_arg is _PassArg.environment:
        return lambda context, *args, **kwargs: func(context.environment, *args, **kwargs)
    return lambda _context, *args, **kwargs: func(*args, **kwargs)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` charged to the render's budget, with ``name``'s size check first if it has one."""
    check = _FILTER_CHECKS.get(name)
    cost = _FILTER_COST.get(name, 1)
    signature = inspect.signature(func)
    # The signature is the wrapped function's (Jinja's async variants wrap one); it takes a context,
    # eval context or environment first if that function does.
    passes_first = _PassArg.from_obj(inspect.unwrap(func)) is not None
    call = _with_pass_arg(func)

    # Taking the context also keeps Jinja from running the filter at compile time, outside a budget.
    @jinja2.pass_context
    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget(context)
        steps = _CALL_STEPS + (cost * budget.weigh(value) if cost else 0)
        if args or kwargs:
            steps += sum(budget.weigh(a) for a in chain(args, kwargs.values()))
        budget.spend(steps)
        if check is not None:
            bound = signature.bind(*((None,) if passes_first else ()), value, *args, **kwargs)
            bound.apply_defaults()
            replaced = check(context, budget, value, bound.arguments)
            if replaced is not None:
                value, args, kwargs = replaced
        return budget.built(call(context, value, *args, **kwargs))

    return functools.update_wrapper(
        guarded, func, assigned=("__name__", "__qualname__", "__doc__"), updated=()
    )


def _guard_test(func: Callable[..., Any]) -> Callable[..., Any]:
    call = _with_pass_arg(func)

    @jinja2.pass_context
    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget(context)
        budget.spend(
            _CALL_STEPS
            + budget.weigh(value)
            + sum(budget.weigh(a) for a in chain(args, kwargs.values()))
        )
        return call(context, value, *args, **kwargs)

    return functools.update_wrapper(
        guarded, func, assigned=("__name__", "__qualname__", "__doc__"), updated=()
    )


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """``lipsum()``, refusing more words than the limit allows (each under 16 characters)."""
    if isinstance(n, int) and isinstance(min, int) and isinstance(max, int):
        _refuse_above(n * (16 * (max if max > min else min) + 10))
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _depth(value: Any, seen: dict[int, int]) -> int:
    if not isinstance(value, _CONTAINERS):
        return 0
    if id(value) not in seen:
        items = value.values() if isinstance(value, dict) else value
        seen[id(value)] = 1 + max((_depth(item, seen) for item in items), default=0)
    return seen[id(value)]


def _json_dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` for ``tojson``, refusing an indented result longer than the limit."""
    indent = kwargs.get("indent")
    if indent is None:
        return json.dumps(value, **kwargs)  # no longer than the (measured) value written out
    step = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    _refuse_above(step * (_depth(value, {}) + 1))
    size = 0
    pieces = []
    for piece in json.JSONEncoder(**kwargs).iterencode(value):
        size += len(piece)
        if size > _MAX_BUILT:
            raise SecurityError(_TOO_LONG)
        pieces.append(piece)
    return "".join(pieces)


@jinja2.pass_context
def _finalize(context: Context, value: Any) -> str:
    """What ``{{ ... }}`` writes, as text: measured before it is written out, and charged."""
    budget = _budget(context)
    if isinstance(value, str):
        budget.spend(len(value))
        return value
    text = str(budget.built(value))
    _refuse_above(len(text))
    budget.spend(len(text))
    return text


def _concat(pieces: Iterable[str]) -> str:
    """Jinja's join of a template's output, refusing one longer than the limit before joining it."""
    listed = list(pieces)
    if sum(map(len, listed)) > _MAX_BUILT:
        raise SecurityError(_TOO_LONG)
    return "".join(listed)


# -- The compiled code: loops, comparisons, slices, literals and `~` report to the budget ----------


# The filter the loop and macro bodies call to charge the budget. Its name cannot be written after a
# `|`, but `map('budget tick', ...)` can still reach it: it must never give steps back.
_TICK = "budget tick"


@jinja2.pass_context
def _tick(context: Context, steps: Any, iteration: Any) -> bool:
    """Charge one run of a loop or macro body (``steps``, its size); true, so it can lead a test."""
    budget = _budget(context)
    steps = steps if type(steps) is int and steps > 0 else 0
    if iteration:
        budget.iterate(steps)
    else:
        budget.spend(steps)
    return True


def _tick_node(steps: int, iteration: bool, lineno: int) -> nodes.Filter:
    return nodes.Filter(
        nodes.Const(steps), _TICK, [nodes.Const(iteration)], [], None, None, lineno=lineno
    )


def _size(body: Iterable[nodes.Node]) -> int:
    """How many nodes a loop or macro body has: roughly, what running it once costs."""
    return sum(1 + sum(1 for _ in node.find_all(nodes.Node)) for node in body)


def _add_ticks(template: nodes.Template) -> None:
    # Macros, call blocks and blocks (`self.name()`) can run their bodies any number of times too.
    for node in list(template.find_all((nodes.For, nodes.Macro, nodes.CallBlock, nodes.Block))):
        assert isinstance(node, nodes.For | nodes.Macro | nodes.CallBlock | nodes.Block)
        lineno = node.lineno
        if isinstance(node, nodes.For) and node.test is not None:
            # The test runs for every item, the body only for those that pass: the test counts them.
            tick = _tick_node(_NODE_STEPS * _size([node.test]), True, lineno)
            node.test = nodes.And(tick, node.test, lineno=lineno)
            steps = _NODE_STEPS * _size(node.body)
            node.body.insert(0, nodes.ExprStmt(_tick_node(steps, False, lineno), lineno=lineno))
        else:
            steps = _NODE_STEPS * (1 + _size(node.body))
            if not isinstance(node, nodes.For):  # a call, which costs Jinja several microseconds
                steps += 3 * _CALL_STEPS
            node.body.insert(0, nodes.ExprStmt(_tick_node(steps, True, lineno), lineno=lineno))


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator; where time or memory could go unseen, it reports to the budget."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _add_ticks(node)
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"{join}(environment.concat_parts(context, (")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write(")))")

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("environment.compare(context, ")
        self.visit(node.expr, frame)
        for operand in node.ops:
            self.write(f", {operand.op!r}, ")
            self.visit(operand.expr, frame)
        self.write(")")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.sliced(context, ")
        self.visit(node.node, frame)
        self.write(")[")
        self.visit(node.arg, frame)
        self.write("]")

    def _built(
        self,
        visit: Callable[[Any, Frame], None],
        node: nodes.Tuple | nodes.List | nodes.Dict,
        frame: Frame,
    ) -> None:
        # A literal of constants is as long as its source: only one naming other values can grow.
        parts = [
            p
            for item in node.items
            for p in (item.iter_child_nodes() if isinstance(item, nodes.Pair) else [item])
        ]
        if all(isinstance(part, nodes.Const) for part in parts):
            visit(node, frame)
            return
        self.write("environment.built(context, ")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._built(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._built(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":
            self._built(super().visit_Tuple, node, frame)
        else:  # an assignment target: `{% set a, b = ... %}`
            super().visit_Tuple(node, frame)


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gteq": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lteq": lambda a, b: a <= b,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox, also refusing to build huge values (``'x' * 10**10`` would eat the memory),
    to change values it is given, and to run past its budget of iterations and work."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    code_generator_class = _CodeGenerator
    context_class = _Context

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget(context)
        budget.spend(_OPERATOR_STEPS)
        weight = None  # the result's, when it is known before the result is built
        if operator == "**" and isinstance(right, int):
            if abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"an exponent above {_MAX_EXPONENT} is not allowed")
            digits = _digits(left) if isinstance(left, int) else 0
            if right > 0 and digits > 1 and (digits - 1) * right > _MAX_DIGITS:
                raise SecurityError(_TOO_MANY_DIGITS)
        elif operator == "*" and isinstance(left, int) and isinstance(right, int):
            if _digits(left) + _digits(right) > _MAX_DIGITS + 1:
                raise SecurityError(_TOO_MANY_DIGITS)
        elif operator == "*":
            for sized, times in ((left, right), (right, left)):
                if isinstance(sized, _SEQUENCES) and isinstance(times, int):
                    weight = max(0, budget.weigh(sized) * times)
                    _refuse_above(weight)
        elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            weight = budget.weigh(left) + budget.weigh(right)
            _refuse_above(weight)
        elif operator == "%" and isinstance(left, str | bytes):
            _check_percent(left, right)
        result = self.binop_table[operator](left, right)
        if weight is not None and isinstance(result, list | tuple):
            budget.remember(result, weight)
        return budget.built(result)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _budget(context)
        receiver = getattr(obj, "__self__", None)
        budget.spend(
            _CALL_STEPS
            + budget.weigh(receiver)
            + sum(budget.weigh(a) for a in args)
            + sum(
                budget.weigh(v) for k, v in kwargs.items() if k not in ("_loop_vars", "_block_vars")
            )
        )
        if isinstance(receiver, str | bytes | bytearray):
            args = _check_text_method(budget, receiver, getattr(obj, "__name__", ""), args, kwargs)
        elif isinstance(receiver, int) and getattr(obj, "__name__", "") == "to_bytes":
            _refuse_above(args[0] if args else kwargs.get("length"))
        return budget.built(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja's own, with a formatter that refuses huge widths and results.
        if not isinstance(
            value, types.MethodType | types.BuiltinMethodType
        ) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        text: Any = value.__self__
        if not isinstance(text, str):
            return None
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            formatter = (
                _BoundedEscapeFormatter(self, escape=text.escape)
                if isinstance(text, Markup)
                else _BoundedFormatter(self)
            )
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    # Called by the code _CodeGenerator writes.

    def concat_parts(self, context: Context, parts: tuple[Any, ...]) -> tuple[Any, ...]:
        budget = _budget(context)
        texts = tuple(part if isinstance(part, str) else str(budget.built(part)) for part in parts)
        # A list of a million floats is written out in some 20 million characters: measured after.
        size = sum(map(len, texts))
        if size > _MAX_BUILT:
            raise SecurityError(_TOO_LONG)
        budget.spend(_OPERATOR_STEPS + size)
        return texts

    def compare(self, context: Context, left: Any, /, *operations: Any) -> Any:
        budget = _budget(context)
        result: Any = True
        for at in range(0, len(operations), 2):
            operator, right = operations[at], operations[at + 1]
            # Looking a key up in a mapping does not read the mapping.
            hashed = operator in ("in", "notin") and isinstance(
                right, dict | set | frozenset | KeysView | ItemsView
            )
            budget.spend(
                _OPERATOR_STEPS + budget.weigh(left) + (0 if hashed else budget.weigh(right))
            )
            result = _COMPARISONS[operator](left, right)
            if not result:
                return result
            left = right
        return result

    def sliced(self, context: Context, value: Any) -> Any:
        if isinstance(value, str | bytes | list | tuple):
            _budget(context).spend(len(value))
        return value

    def built(self, context: Context, value: Any) -> Any:
        return _budget(context).built(value)


_ENVIRONMENT: _Sandbox | None = None


def environment() -> SandboxedEnvironment:
    """The one sandboxed environment: strict about undefined names, no autoescape, a ``slug`` filter."""
    global _ENVIRONMENT  # noqa: PLW0603 - built once, on first use
    if _ENVIRONMENT is None:
        env = _Sandbox(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=_finalize,
        )
        env.concat = _concat  # type: ignore[method-assign]
        env.filters["slug"] = slug
        env.filters = {name: _guard_filter(name, func) for name, func in env.filters.items()}
        env.filters[_TICK] = _tick
        env.tests = {
            name: _guard_test(cast(Callable[..., Any], func)) for name, func in env.tests.items()
        }
        env.globals["lipsum"] = _lipsum
        env.globals["namespace"] = _Namespace
        env.policies["json.dumps_function"] = _json_dumps
        _ENVIRONMENT = env
    return _ENVIRONMENT


@contextmanager
def one_budget() -> Iterator[None]:
    """The templates rendered inside share one budget (the templates of one recipe value)."""
    token = _SHARED_BUDGET.set(_Budget())
    try:
        yield
    finally:
        _SHARED_BUDGET.reset(token)


# Public names of the limits, for the messages templating writes.
MAX_TEMPLATES = _MAX_TEMPLATES
MAX_TEXT = _MAX_TEXT
NUMBER_TOO_LONG = _NUMBER_TOO_LONG
RESULT_TOO_LONG = _RESULT_TOO_LONG
TICK_FILTER = _TICK
TOO_DEEP = _TOO_DEEP
