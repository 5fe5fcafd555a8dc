"""Recipe templates: Jinja's sandbox with StrictUndefined, compiled once, rendered per combination.

A value that is exactly one expression (``"{{ steps }}"``) renders to the expression's own value, so
an integer stays an integer; any other template renders to a string. Templates see the recipe's
``vars``, the combination's axes and ``job_id``; they cannot read files or the environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import Location, RecipeError
from engine.slug import slug
from engine.suggest import did_you_mean

__all__ = ["Template", "TemplateFailure", "compile_value", "environment"]

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{|\{%).)*)\}\}\s*$", re.DOTALL)
_UNDEFINED_NAME = re.compile(r"^'(?P<name>[^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"has no attribute '(?P<name>[^']+)'$")


class TemplateFailure(Exception):
    """A template failed for one combination; the plan turns it into that job's error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_ENVIRONMENT: SandboxedEnvironment | None = None


def environment() -> SandboxedEnvironment:
    """The one sandboxed environment: strict about undefined names, no autoescape, a ``slug`` filter."""
    global _ENVIRONMENT  # noqa: PLW0603 - built once, on first use
    if _ENVIRONMENT is None:
        env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        env.filters["slug"] = slug
        _ENVIRONMENT = env
    return _ENVIRONMENT


@dataclass(frozen=True)
class Template:
    """A compiled parameter value: call it with a context to get the rendered value."""

    render: Callable[[Mapping[str, Any]], Any]
    is_template: bool


def compile_value(value: Any, *, where: Location, field: str) -> Template:
    """Compile a recipe value: strings are templates, lists and mappings are walked, the rest is kept."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return Template(lambda _context: value, False)
        return _compile_string(value, where=where, field=field)
    if isinstance(value, list):
        items = [compile_value(v, where=where, field=f"{field}[{i}]") for i, v in enumerate(value)]
        if not any(item.is_template for item in items):
            return Template(lambda _context: value, False)
        return Template(lambda context: [item.render(context) for item in items], True)
    if isinstance(value, dict):
        entries = {k: compile_value(v, where=where, field=f"{field}.{k}") for k, v in value.items()}
        if not any(entry.is_template for entry in entries.values()):
            return Template(lambda _context: value, False)
        return Template(lambda context: {k: e.render(context) for k, e in entries.items()}, True)
    return Template(lambda _context: value, False)


def _compile_string(text: str, *, where: Location, field: str) -> Template:
    env = environment()
    single = _SINGLE_EXPRESSION.match(text)
    try:
        if single:
            expression = env.compile_expression(single.group("expr"), undefined_to_none=False)
            call: Callable[[Mapping[str, Any]], Any] = lambda context: expression(**context)  # noqa: E731
        else:
            template = env.from_string(text)
            call = template.render
    except jinja2.TemplateSyntaxError as exc:
        raise RecipeError(f"{where}: {field}: template syntax error: {exc.message}") from exc

    def render(context: Mapping[str, Any]) -> Any:
        try:
            value = call(context)
        except jinja2.UndefinedError as exc:
            raise TemplateFailure(_undefined(str(exc.message), context)) from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateFailure(f"not allowed in a template: {exc}") from exc
        except Exception as exc:
            raise TemplateFailure(f"template failed: {type(exc).__name__}: {exc}") from exc
        if isinstance(value, jinja2.Undefined):
            raise TemplateFailure(_undefined(str(value._undefined_message), context))
        return value

    return Template(render, True)


def _undefined(message: str, context: Mapping[str, Any]) -> str:
    name = _UNDEFINED_NAME.match(message)
    if name:
        hint = did_you_mean(name.group("name"), context)
        return f"'{name.group('name')}' is undefined{hint} (defined: {', '.join(sorted(context))})"
    attribute = _NO_ATTRIBUTE.search(message)
    if attribute:
        keys = {k for v in context.values() if isinstance(v, Mapping) for k in v}
        hint = did_you_mean(attribute.group("name"), keys)
        return f"no key '{attribute.group('name')}' there{hint}"
    return message
