"""Recipe templates: compiled once, rendered per combination, in the sandbox of engine.sandbox.

A value that is exactly one expression (``"{{ steps }}"``) renders to the expression's own value, so
an integer stays an integer; any other template renders to a string. Templates see the recipe's
``vars``, the combination's axes and ``job_id``; they cannot read files or the environment, nor
change the lists and mappings they are given, and what they may cost is bounded (engine.sandbox).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from engine.errors import Location, RecipeError, TemplateFailure
from engine.sandbox import (
    MAX_TEMPLATES,
    MAX_TEXT,
    NUMBER_TOO_LONG,
    RESULT_TOO_LONG,
    TICK_FILTER,
    TOO_DEEP,
    environment,
    one_budget,
)
from engine.suggest import did_you_mean

__all__ = ["Template", "TemplateFailure", "compile_value", "environment"]

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{|\{%).)*)\}\}\s*$", re.DOTALL)
_UNDEFINED_NAME = re.compile(r"^'(?P<name>[^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"has no attribute '(?P<name>[^']+)'$")


# -- Compiling recipe values -----------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A compiled parameter value: call it with a context to get the rendered value."""

    render: Callable[[Mapping[str, Any]], Any]
    is_template: bool


def compile_value(value: Any, *, where: Location, field: str) -> Template:
    """Compile a recipe value: strings are templates, lists and mappings are walked, the rest is kept."""
    compiled, templates = _compile(value, where, field, {})
    if templates > MAX_TEMPLATES:
        raise RecipeError(
            f"{where}: {field}: more than {MAX_TEMPLATES:,} templates in one value are not "
            f"allowed (it has {templates:,}, counting each repeat of an alias)"
        )
    if templates <= 1:
        return compiled

    def render(context: Mapping[str, Any]) -> Any:
        # The templates of one value share one budget, so that a list of them is bounded as one is.
        with one_budget():
            return compiled.render(context)

    return Template(render, True)


def _constant(value: Any) -> Template:
    return Template(lambda _context: value, False)


def _compile(
    value: Any, where: Location, field: str, done: dict[int, tuple[Any, Template, int]]
) -> tuple[Template, int]:
    """The compiled value and how many templates rendering it runs."""
    # YAML aliases repeat a list or mapping: compile it once, whatever the number of references.
    if isinstance(value, list | dict) and id(value) in done:
        return done[id(value)][1:]
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return _constant(value), 0
        return _compile_string(value, where=where, field=field), 1
    if isinstance(value, list):
        items = [_compile(v, where, f"{field}[{i}]", done) for i, v in enumerate(value)]
        templates = sum(count for _, count in items)
        rendered = [item for item, _ in items]
        compiled = (
            Template(lambda context: [item.render(context) for item in rendered], True)
            if templates
            else _constant(value)
        )
    elif isinstance(value, dict):
        entries = {k: _compile(v, where, f"{field}.{k}", done) for k, v in value.items()}
        templates = sum(count for _, count in entries.values())
        rendered_entries = {k: entry for k, (entry, _) in entries.items()}
        compiled = (
            Template(
                lambda context: {k: e.render(context) for k, e in rendered_entries.items()}, True
            )
            if templates
            else _constant(value)
        )
    else:
        return _constant(value), 0
    done[id(value)] = (value, compiled, templates)
    return compiled, templates


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> Callable[[Mapping[str, Any]], Any]:
    """The render function of a template text; the same text in many places is compiled once."""
    env = environment()
    single = _SINGLE_EXPRESSION.match(text)
    if single:
        expression = env.compile_expression(single.group("expr"), undefined_to_none=False)
        return lambda context: expression(**context)
    return env.from_string(text).render


def _compile_string(text: str, *, where: Location, field: str) -> Template:
    env = environment()
    try:
        call = _compiled(text)
    except jinja2.TemplateSyntaxError as exc:
        unknown = re.match(r"No (filter|test) named '([^']+)'", exc.message or "")
        if unknown:
            kind, name = unknown.groups()
            known = [
                n for n in (env.filters if kind == "filter" else env.tests) if n != TICK_FILTER
            ]
            problem = f"unknown {kind} '{name}'{did_you_mean(name, known)}"
            raise RecipeError(f"{where}: {field}: {problem}") from exc
        raise RecipeError(f"{where}: {field}: template syntax error: {exc.message}") from exc
    except (RecursionError, MemoryError, SyntaxError) as exc:
        # Jinja's parser recurses per bracket and operator, Python's compiler limits blocks and
        # indentation: a template nested beyond either cannot compile.
        raise RecipeError(f"{where}: {field}: template syntax error: nested too deeply") from exc
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise RecipeError(f"{where}: {field}: template syntax error: {exc}") from exc
        raise RecipeError(f"{where}: {field}: template syntax error: {NUMBER_TOO_LONG}") from exc

    def render(context: Mapping[str, Any]) -> Any:
        try:
            value = call(context)
        except jinja2.UndefinedError as exc:
            raise TemplateFailure(_undefined(str(exc.message), context, text)) from exc
        except SecurityError as exc:
            raise TemplateFailure(f"not allowed in a template: {exc}") from exc
        except RecursionError as exc:
            raise TemplateFailure(f"not allowed in a template: {TOO_DEEP}") from exc
        except Exception as exc:
            raise TemplateFailure(f"template failed: {type(exc).__name__}: {exc}") from exc
        if isinstance(value, jinja2.Undefined):
            raise TemplateFailure(_undefined(str(value._undefined_message), context, text))
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise TemplateFailure(f"not allowed in a template: {RESULT_TOO_LONG}")
        return value

    return Template(render, True)


def _undefined(message: str, context: Mapping[str, Any], source: str) -> str:
    """Jinja's "'dict object' has no attribute 'nown'" said in the recipe's own names."""
    if message.endswith("is unsafe."):
        return f"not allowed in a template: {message}"
    name = _UNDEFINED_NAME.match(message)
    if name:
        hint = did_you_mean(name.group("name"), context)
        return f"'{name.group('name')}' is undefined{hint} (defined: {', '.join(sorted(context))})"
    attribute = _NO_ATTRIBUTE.search(message)
    if attribute is None:
        return message
    key = attribute.group("name")
    owner = re.search(
        rf"\b([A-Za-z_]\w*)\s*(?:\.\s*{re.escape(key)}\b|\[\s*['\"]{re.escape(key)}['\"]\s*\])",
        source,
    )
    if owner is None or owner.group(1) not in context:
        return f"no key '{key}' there"
    variable, value = owner.group(1), context[owner.group(1)]
    if isinstance(value, Mapping):
        hint = did_you_mean(key, value)
        return f"'{variable}' has no key '{key}'{hint} (keys: {', '.join(map(str, value))})"
    return f"'{variable}' is '{value}', not a mapping; it has no key '{key}'"
