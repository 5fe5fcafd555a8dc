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
    from engine.executor import Backend
    from engine.plan import Plan
    from engine.progress import ProgressModel
    from engine.runner import Result, RunOptions
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

# A run estimated above this asks first (DESIGN.md, CLI).
CONFIRM_ABOVE_USD = 5.0

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
        from engine.errors import BudgetError, InputError, RenderError

        try:
            return func(*args, **kwargs)
        except InputError as exc:
            _fail(str(exc), EXIT["invalid_input"])
        except BudgetError as exc:
            _fail(str(exc), EXIT["budget"])
        except RenderError as exc:
            _fail(str(exc), EXIT["jobs_failed"])
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT["interrupted"])

    return wrapper


def _warn(notes: Iterable[Note], source: str) -> None:
    for note in notes:
        where = f"{source}:{note.line}: " if note.line is not None else f"{source}: "
        click.echo(f"warning: {where}{note.message}", err=True)


class _RenderGroup(click.Group):
    """`render RECIPE...` runs recipes; any other first word is a command (`render specs list`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((a for a in args if not a.startswith("-")), None)
        if first is not None and first not in self.commands:
            before = set(args[: args.index(first)])
            if not before & {"-h", "--help", "--version"}:
                args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(
    cls=_RenderGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    options_metavar="[RECIPE...] [OPTIONS]",
    subcommand_metavar="| COMMAND [ARGS]...",
)
@click.version_option(package_name="render-engine", prog_name="render")
def cli() -> None:
    """render: a declarative render engine for Segmind's image APIs.

    `render RECIPE... [OPTIONS]` plans and renders recipes (`render run --help` lists the options);
    `render recipes/spring.yaml --dry-run` shows every job and its cost without sending anything.
    """


@cli.command("run", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument(
    "recipes",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="RECIPE...",
)
@click.option("--dry-run", is_flag=True, help="Validate and price every job; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option(
    "--backend",
    type=click.Choice(["segmind", "preview"]),
    help="segmind (needs SEGMIND_API_KEY) or preview (free, local). Default: segmind when a key is set.",
)
@click.option(
    "--budget",
    type=click.FloatRange(min=0, min_open=True),
    help="Budget cap in USD (overrides the recipe's).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--rpm", type=click.IntRange(min=1), help="Requests a minute at most (Segmind: 5 free, 50 Pro)."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder instead of renders/ (each recipe in DIR/<name>/).",
)
@click.option(
    "--only",
    multiple=True,
    metavar="AXIS=VALUE",
    help="Keep only jobs with this axis value (repeatable).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Keep only the first N jobs.")
@click.option("--force", is_flag=True, help="Render again even jobs whose outputs exist.")
@click.option("--yes", is_flag=True, help="Do not ask before a run estimated above $5.")
@click.option(
    "--cassette",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Record the run's HTTP to this vcr cassette, or replay it (with --record none).",
)
@click.option(
    "--record",
    type=click.Choice(["once", "new", "all", "none"]),
    default="once",
    show_default=True,
    help="once: record if the cassette is new; new: add new requests; all: record again; none: replay only.",
)
@click.option(
    "--no-report", is_flag=True, help="Do not write the HTML report at the end of the run."
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Send again jobs an earlier run sent but never heard back about.",
)
@_handles_errors
def run(
    *,
    recipes: tuple[Path, ...],
    dry_run: bool,
    as_json: bool,
    backend: str | None,
    budget: float | None,
    concurrency: int,
    rpm: int | None,
    out: Path | None,
    only: tuple[str, ...],
    limit: int | None,
    force: bool,
    yes: bool,
    cassette: Path | None,
    record: str,
    no_report: bool,
    retry_unknown: bool,
) -> None:
    """Plan RECIPE... and render them (with --dry-run: plan and price only)."""
    import json

    from engine.dryrun import describe_plan
    from engine.plan import build_plan, parse_only
    from engine.recipe import load_recipe

    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run")
    pairs = parse_only(only)
    plans = [
        build_plan(load_recipe(path), budget_usd=budget, only=pairs, limit=limit)
        for path in recipes
    ]
    if dry_run or any(plan.errors for plan in plans):
        if as_json:
            objects = [plan.to_json() for plan in plans]
            click.echo(json.dumps(objects[0] if len(objects) == 1 else objects, indent=2))
        else:
            click.echo(
                "\n\n".join(describe_plan(p, concurrency=concurrency, rpm=rpm) for p in plans)
            )
        if any(plan.errors for plan in plans):
            sys.exit(EXIT["invalid_input"])
        if any(plan.within_budget is False for plan in plans):
            sys.exit(EXIT["budget"])
        return
    from engine.runner import RunOptions

    replay = cassette is not None and record == "none"
    if len(plans) > 1 and cassette is not None:
        raise click.UsageError("--cassette takes one recipe at a time")
    # A replay sends nothing: it needs no key, no price and no budget, and it never skips a job.
    chosen = _backend("preview" if replay else backend, notice=not replay)
    codes = []
    for plan in plans:
        if not replay:
            _gate(plan, chosen.name, yes=yes)
        options = RunOptions(
            backend="replay" if replay else chosen.name,
            charge=chosen.charges and not replay,
            concurrency=concurrency,
            rpm=rpm,
            force=force or cassette is not None,
            retry_unknown=retry_unknown,
            replay=replay,
        )
        codes.append(
            _render(
                plan,
                chosen,
                options,
                out=out,
                cassette=cassette,
                record=record,
                report=not no_report,
            )
        )
    # The most serious outcome wins; 0 only when every recipe ended well.
    sys.exit(max(codes, key=lambda code: (code != 0, code)))


def _backend(name: str | None, *, notice: bool = True) -> Backend:
    import os

    from engine.executor import preview_backend, segmind_backend

    key = os.environ.get("SEGMIND_API_KEY", "").strip()
    if name == "preview" or (name is None and not key):
        if name is None and notice:
            click.echo(
                "note: SEGMIND_API_KEY is not set: rendering free local previews "
                "(--backend segmind renders for real)",
                err=True,
            )
        return preview_backend()
    if not key:
        raise click.UsageError("--backend segmind needs SEGMIND_API_KEY in the environment")
    return segmind_backend(key)


def _gate(plan: Plan, backend: str, *, yes: bool) -> None:
    """What must hold before money is spent: a price, a budget the plan fits, and a yes above $5."""
    from engine.dryrun import money
    from engine.errors import BudgetError, InputError

    if backend != "segmind":
        return
    where = plan.recipe_path
    if plan.unpriced:
        raise InputError(
            f"{where}: {plan.model} has no price: set `price_usd` in the recipe "
            "(or use --backend preview) to run it"
        )
    cost = plan.estimated_cost_usd or 0.0
    if plan.budget_usd is None:
        raise InputError(
            f"{where}: no budget: set `budget_usd` in the recipe or pass --budget "
            f"(the plan costs {money(cost)})"
        )
    if cost > plan.budget_usd:
        raise BudgetError(
            f"{where}: the plan costs {money(cost)}, more than its {money(plan.budget_usd)} budget: "
            "raise the budget, or narrow the run with --only or --limit"
        )
    if cost > CONFIRM_ABOVE_USD and not yes:
        if not sys.stdin.isatty():
            raise InputError(
                f"{where}: the run costs {money(cost)} (over {money(CONFIRM_ABOVE_USD)}): "
                "pass --yes to run it without a terminal to confirm on"
            )
        question = f"{plan.recipe}: {len(plan.jobs)} jobs, about {money(cost)} of a {money(plan.budget_usd)} budget. Run it?"
        if not click.confirm(question, err=True):
            raise InputError("not confirmed: nothing was sent")


def _render(
    plan: Plan,
    backend: Backend,
    options: RunOptions,
    *,
    out: Path | None,
    cassette: Path | None = None,
    record: str = "once",
    report: bool = True,
) -> int:
    from engine.executor import execute
    from engine.progress import ProgressModel

    out_dir = (out or Path("renders")) / plan.recipe
    model = ProgressModel(plan, backend=options.backend)
    try:
        with _LiveProgress(model, interactive=sys.stderr.isatty()) as live:
            summary = execute(
                plan,
                backend=backend,
                out_dir=out_dir,
                options=options,
                budget_usd=plan.budget_usd,
                on_result=live.update,
                cassette=cassette,
                record=record,
            )
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: what finished is recorded in {out_dir}; "
            "run the same command again to resume",
            err=True,
        )
        return EXIT["interrupted"]
    click.echo(model.closing(summary))
    if report:
        from engine.report import write_report

        click.echo(f"  report   {write_report(out_dir, summary.run_id)}")
    if summary.aborted:
        return EXIT["aborted"]
    if summary.budget_reached:
        return EXIT["budget"]
    if summary.count("failed") or summary.count("unknown"):
        return EXIT["jobs_failed"]
    return EXIT["ok"]


class _LiveProgress:
    """A live bar (done / failed / skipped, dollars, ETA) on a terminal; a plain line per job otherwise."""

    def __init__(self, model: ProgressModel, *, interactive: bool) -> None:
        self.model = model
        self.interactive = interactive
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _LiveProgress:
        if self.interactive:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                console=_console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                self.model.plan.recipe, total=self.model.total, status=""
            )
        return self

    def update(self, result: Result) -> None:
        self.model.update(result)
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.model.finished, status=self.model.status_text()
            )
        else:
            click.echo(self.model.line(result), err=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (loopback unless told otherwise).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port (0: any free one).",
)
@click.option(
    "--latency", type=click.FloatRange(min=0), help="Seconds every request takes (default: none)."
)
@click.option(
    "--latency-scale",
    type=click.FloatRange(min=0),
    help="Each spec's latency times this (0.01: 34 s → 0.34 s).",
)
@click.option(
    "--faults",
    default="",
    metavar="SPEC",
    help="Fault rates, e.g. 429=0.1,500=0.05,drop=0.02,failed=0.05.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault schedule.")
@click.option(
    "--balance",
    type=click.FloatRange(min=0),
    default=100.0,
    show_default=True,
    help="Credits in USD.",
)
@click.option("--key", help="Accept only this API key (default: any non-empty key).")
@click.option(
    "--images",
    type=click.Choice(["preview", "tiny"]),
    default="preview",
    show_default=True,
    help="Real previews, or a few-byte image for load tests.",
)
@_handles_errors
def simulate(
    *,
    host: str,
    port: int,
    latency: float | None,
    latency_scale: float | None,
    faults: str,
    seed: int,
    balance: float,
    key: str | None,
    images: str,
) -> None:
    """Serve a local Segmind (all five endpoints) for previews, load and fault tests."""
    from engine.simulator import SimulatorConfig, all_specs, create_app, parse_faults, serve

    config = SimulatorConfig(
        specs=all_specs(),
        latency_s=latency,
        latency_scale=latency_scale,
        faults=parse_faults(faults),
        seed=seed,
        balance_usd=balance,
        key=key,
        images="tiny" if images == "tiny" else "preview",
    )
    click.echo(
        f"simulating Segmind on http://{host}:{port} (set SEGMIND_BASE_URL to use it); Ctrl-C stops",
        err=True,
    )
    serve(create_app(config), host=host, port=port)


@cli.command()
@click.argument("run_target", metavar="RUN", type=click.Path(path_type=Path))
@_handles_errors
def report(*, run_target: Path) -> None:
    """Write the HTML contact sheet of RUN (a run's folder, renders/<recipe>/, or a run id)."""
    from engine.executor import render_home
    from engine.report import find_run_dir, write_report

    folder, run_id = find_run_dir(run_target, home=render_home())
    click.echo(str(write_report(folder, run_id)))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_handles_errors
def ledger(*, as_json: bool) -> None:
    """Show spend by day, recipe and model, from the ledger under RENDER_HOME."""
    import json

    from engine.dryrun import money
    from engine.executor import LEDGER_FILE, render_home
    from engine.ledger import Ledger

    path = render_home() / LEDGER_FILE
    if not path.exists():
        if as_json:
            click.echo("[]")
        else:
            click.echo(f"no runs yet (no ledger at {path})")
        return
    book = Ledger(path)
    try:
        rows = book.spend()
    finally:
        book.close()
    if as_json:
        click.echo(json.dumps([row.__dict__ for row in rows], indent=2))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("day", "recipe", "model", "backend", "jobs", "spent", "unknown"):
        table.add_column(
            column, justify="right" if column in {"jobs", "spent", "unknown"} else "left"
        )
    for row in rows:
        table.add_row(
            row.day,
            row.recipe,
            row.model,
            row.backend,
            str(row.jobs),
            money(row.spent_usd),
            money(row.unknown_usd) if row.unknown_usd else "",
        )
    total = sum(row.spent_usd for row in rows if row.backend == "segmind")
    _console().print(table)
    click.echo(f"total spent on Segmind: {money(total)}")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the recipe format (for editor completion)."""
    import json

    from engine.recipe import Recipe

    click.echo(json.dumps(Recipe.model_json_schema(), indent=2))


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
    from engine.files import atomic_write

    text, notes = generate_spec(page, overlay=overlay)
    _warn(notes, page.name)
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write(output, text)
    click.echo(f"wrote {output}", err=True)


@specs.command("list")
@_handles_errors
def specs_list() -> None:
    """List the specs a recipe can name as its `model`."""
    from rich.table import Table

    from engine.dryrun import money
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
            money(spec.price_usd),
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

    from engine.dryrun import money

    def wrapped(text: str, indent: str) -> str:
        return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent)

    lines = [
        f"{spec.id}: {spec.title}",
        f"  endpoint  POST {spec.endpoint} ({spec.protocol}, auth {spec.auth}, returns {spec.response})",
        f"  price     {money(spec.price_usd)} a call, latency {_seconds(spec.latency_s)}",
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


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"~{value:g} s"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `render` console script."""
    cli.main(args=argv, prog_name="render")
