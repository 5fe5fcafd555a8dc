"""The `render` command line: the only place that prints and chooses exit codes.

Heavy libraries (pydantic, rich, the importer) are imported inside the commands that need them, so
`render --help` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from engine.docimport import Note
    from engine.specs import Spec

__all__ = ["EXIT", "main"]

# The exit codes of DESIGN.md (CLI); the public contract scripts depend on.
EXIT = {
    "ok": 0,
    "jobs_failed": 1,
    "invalid_input": 2,
    "budget": 3,
    "aborted": 4,
    "interrupted": 130,
}

P = ParamSpec("P")
R = TypeVar("R")


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    # Off a terminal rich assumes 80 columns; a pipe or a log deserves the full table.
    width = None if sys.stdout.isatty() else 120
    return Console(stderr=stderr, highlight=False, width=width)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the engine's errors into a message on stderr and the documented exit code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from engine.errors import InputError, RenderError

        try:
            return func(*args, **kwargs)
        except InputError as exc:
            _fail(str(exc), EXIT["invalid_input"])
        except RenderError as exc:  # pragma: no cover - later issues add the other kinds
            _fail(str(exc), 1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT["interrupted"])

    return wrapper


def _warn(notes: Iterable[Note], source: str) -> None:
    for note in notes:
        where = f"{source}:{note.line}: " if note.line is not None else f"{source}: "
        click.echo(f"warning: {where}{note.message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="render-engine", prog_name="render")
def cli() -> None:
    """render: a declarative render engine for Segmind's image APIs.

    Specs describe what each Segmind endpoint takes; `render specs list` shows them.
    """


@cli.group()
def specs() -> None:
    """Import, list and show the endpoint specs."""


@specs.command("import")
@click.argument("page", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--overlay",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Corrections to apply (specs/overlays/ID.yaml).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the spec here instead of to standard output.",
)
@_handles_errors
def specs_import(page: Path, overlay: Path | None, output: Path | None) -> None:
    """Read a Segmind API PAGE (saved as text) into a spec."""
    from engine.docimport import generate_spec
    from engine.yamlfile import atomic_write_text

    text, notes = generate_spec(page, overlay=overlay)
    _warn(notes, page.name)
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write_text(output, text)
    click.echo(f"wrote {output}", err=True)


@specs.command("list")
@_handles_errors
def specs_list() -> None:
    """List the specs a recipe can name as its `model`."""
    from rich.table import Table

    from engine.specs import available_specs, load_spec

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "title", "protocol", "price/call", "latency", "params"):
        table.add_column(column)
    for spec_id in available_specs():
        spec = load_spec(spec_id)
        table.add_row(
            spec.id,
            spec.title,
            spec.protocol,
            _money(spec.price_usd),
            _seconds(spec.latency_s),
            str(len(spec.params)),
        )
    _console().print(table)


@specs.command("show")
@click.argument("spec_id", metavar="ID")
@_handles_errors
def specs_show(spec_id: str) -> None:
    """Show what a spec takes: every parameter, its type, default and allowed values."""
    from engine.specs import load_spec

    spec = load_spec(spec_id)
    _print_spec(spec)


def _print_spec(spec: Spec) -> None:
    import textwrap

    def wrapped(text: str, indent: str) -> str:
        return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent)

    lines = [
        f"{spec.id}: {spec.title}",
        f"  endpoint  POST {spec.endpoint} ({spec.protocol}, auth {spec.auth}, returns {spec.response})",
        f"  price     {_money(spec.price_usd)} a call, latency {_seconds(spec.latency_s)}",
        f"  source    {spec.source}",
    ]
    lines += [wrapped(f"corrected: {note}", "  ") for note in spec.notes]
    lines.append("")
    lines.append("parameters (required first):")
    ordered = sorted(spec.params.items(), key=lambda item: not item[1].required)
    for name, param in ordered:
        kind = param.type + (f", sent as {param.encoding}" if param.encoding else "")
        flag = "required" if param.required else f"default {_short(param.default)}"
        lines.append(f"  {name}  ({kind}; {flag})")
        if param.description:
            lines.append(wrapped(param.description, "      "))
        if param.enum is not None or param.minimum is not None or param.maximum is not None:
            lines.append(wrapped(f"allowed: {param.allowed()}", "      "))
        lines += [wrapped(f"corrected: {note}", "      ") for note in param.notes]
    click.echo("\n".join(lines))


def _short(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value) if len(value) <= 50 else repr(value[:47] + "...")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _money(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:.4f}".rstrip("0").rstrip(".")


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"~{value:g} s"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `render` console script."""
    cli.main(args=argv, prog_name="render")
