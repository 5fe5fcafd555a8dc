"""The engine's HTML pages from the Jinja templates in ``engine/templates/``: autoescaped, every
value escaped as ``html.escape`` does (quotes included), a missing name an error, never blank.

These templates are the engine's own, loaded from the installed package; recipes' templates run in
the bounded sandbox of engine/sandbox.py instead.
"""

from __future__ import annotations

import functools
import html

import jinja2
from markupsafe import Markup

__all__ = ["render_page"]


def render_page(name: str, **context: object) -> str:
    """Render one template of ``engine/templates/``."""
    return _templates().get_template(name).render(context)


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("engine", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_escaped,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _escaped(value: object) -> object:
    """``"`` becomes ``&quot;`` (markupsafe writes ``&#34;``), as the pages always have. Markup
    the templates made stays."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))
