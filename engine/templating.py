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


_MAX_BUILT = 1_000_000
_MAX_EXPONENT = 256


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, also refusing to build huge values (``'x' * 10**10`` would eat the memory)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > _MAX_EXPONENT:
            raise jinja2.exceptions.SecurityError(
                f"an exponent above {_MAX_EXPONENT} is not allowed"
            )
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if (
                    isinstance(sized, str | list | tuple)
                    and isinstance(times, int)
                    and len(sized) * times > _MAX_BUILT
                ):
                    raise jinja2.exceptions.SecurityError(
                        f"a value longer than {_MAX_BUILT:,} is not allowed"
                    )
        return super().call_binop(context, operator, left, right)


_ENVIRONMENT: SandboxedEnvironment | None = None


def environment() -> SandboxedEnvironment:
    """The one sandboxed environment: strict about undefined names, no autoescape, a ``slug`` filter."""
    global _ENVIRONMENT  # noqa: PLW0603 - built once, on first use
    if _ENVIRONMENT is None:
        env = _Sandbox(
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
        unknown = re.match(r"No (filter|test) named '([^']+)'", exc.message or "")
        if unknown:
            kind, name = unknown.groups()
            known = env.filters if kind == "filter" else env.tests
            problem = f"unknown {kind} '{name}'{did_you_mean(name, known)}"
            raise RecipeError(f"{where}: {field}: {problem}") from exc
        raise RecipeError(f"{where}: {field}: template syntax error: {exc.message}") from exc

    def render(context: Mapping[str, Any]) -> Any:
        try:
            value = call(context)
        except jinja2.UndefinedError as exc:
            raise TemplateFailure(_undefined(str(exc.message), context, text)) from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateFailure(f"not allowed in a template: {exc}") from exc
        except Exception as exc:
            raise TemplateFailure(f"template failed: {type(exc).__name__}: {exc}") from exc
        if isinstance(value, jinja2.Undefined):
            raise TemplateFailure(_undefined(str(value._undefined_message), context, text))
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
