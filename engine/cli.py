"""The `render` command line: the only place that prints and chooses exit codes.

Heavy libraries (pydantic, rich, the importer) are imported inside the commands that need them, so
`render --help` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar, cast

import click

if TYPE_CHECKING:
    from rich.console import Console

    from engine.backends import Backend
    from engine.docimport import Note
    from engine.ledger import Ledger, RunRow, Spend
    from engine.plan import Plan
    from engine.pools import PoolUse
    from engine.progress import ProgressModel
    from engine.results import RecordMode, Result, RunOptions, RunSummary
    from engine.settings import Home
    from engine.shots import RunShots
    from engine.specs import Spec
    from engine.triage import Outlook
    from engine.verdicts import Judgement, Verdict

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
    """Turn the engine's errors into a message on stderr and the exit code each class carries."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from engine.errors import RenderError

        try:
            with _ledger_named():
                return func(*args, **kwargs)
        except RenderError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT["interrupted"])

    return wrapper


_LEDGER_KEY = "render.ledger"


def _set_ledger(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--ledger``: kept on the context until the command runs (a later option may be refused,
    and then nothing must have changed)."""
    if value:
        ctx.meta[_LEDGER_KEY] = value


@contextmanager
def _ledger_named() -> Iterator[None]:
    """RENDER_LEDGER_URL as ``--ledger`` named it, while the command runs (the settings read it),
    then as it was."""
    import os

    ctx = click.get_current_context(silent=True)
    value = ctx.meta.get(_LEDGER_KEY) if ctx is not None else None
    if not value:
        yield
        return
    before = os.environ.get("RENDER_LEDGER_URL")
    os.environ["RENDER_LEDGER_URL"] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RENDER_LEDGER_URL", None)
        else:
            os.environ["RENDER_LEDGER_URL"] = before


_ledger_option = click.option(
    "--ledger",
    metavar="URL",
    expose_value=False,
    is_eager=True,
    callback=_set_ledger,
    help="The ledger: a team's postgresql:// URL, or a SQLite file "
    "(default: RENDER_LEDGER_URL, else the file in RENDER_HOME).",
)


# Hidden: the length of the account's rate window, for a simulator whose --rate-window shrinks it.
_rate_window_option = click.option(
    "--rate-window",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    hidden=True,
    help="The length of the account's rate window in seconds (a simulator's --rate-window).",
)
# Options a run and a submitted run (render submit) share.
_only_option = click.option(
    "--only",
    multiple=True,
    metavar="AXIS=VALUE",
    help="Keep only jobs with this axis value (repeatable).",
)
_limit_option = click.option(
    "--limit", type=click.IntRange(min=1), help="Keep only the first N jobs."
)
_yes_option = click.option(
    "--yes", is_flag=True, help="Do not ask before a run estimated above $5."
)


def _warn(notes: Iterable[Note], source: str) -> None:
    for note in notes:
        where = f"{source}:{note.line}: " if note.line is not None else f"{source}: "
        click.echo(f"warning: {where}{note.message}", err=True)


_GROUP_HELP = """render: a declarative render engine for Segmind's image APIs.

`render RECIPE... [OPTIONS]` plans and renders recipes; `render RECIPE --dry-run` shows every job,
what it costs and what is already rendered, without sending anything. Outputs go to
renders/<recipe name>/ under the folder you run render from (or --out DIR); a recipe's image paths
are read relative to the recipe file. The ledger that keeps runs from paying twice lives in your
user data folder (RENDER_HOME overrides).
"""


class _RenderGroup(click.Group):
    """`render RECIPE...` runs recipes; any other first word is a command (`render specs list`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((a for a in args if not a.startswith("-")), None)
        if first is not None and first not in self.commands:
            before = set(args[: args.index(first)])
            if not before & {"-h", "--help", "--version"}:
                args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The run options first (most invocations are runs), then the commands in full."""
        run_command = self.commands["run"]
        with click.Context(run_command, info_name="run", parent=ctx) as run_ctx:
            rows = [
                row
                for param in run_command.get_params(run_ctx)
                if isinstance(param, click.Option)
                and "--help" not in param.opts
                and (row := param.get_help_record(run_ctx)) is not None
            ]
        with formatter.section("Run options (render RECIPE... [OPTIONS])"):
            formatter.write_dl(rows)
        super().format_options(ctx, formatter)
        with formatter.section("Commands"):
            formatter.write_dl(
                [
                    (name, command.help.split("\n\n")[0].replace("\n", " ") if command.help else "")
                    for name, command in sorted(self.commands.items())
                    if name != "run"
                ]
            )

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        del ctx, formatter  # listed by format_options, whole


@click.group(
    cls=_RenderGroup,
    help=_GROUP_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    options_metavar="[RECIPE...] [OPTIONS]",
    subcommand_metavar="| COMMAND [ARGS]...",
)
@click.version_option(package_name="render-engine", prog_name="render")
def cli() -> None:
    pass


class _Dollars(click.ParamType):  # type: ignore[type-arg]
    """An amount of dollars: finite, and not negative (nan would make every check pass)."""

    name = "USD"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        import math

        try:
            amount = float(value)
        except (TypeError, ValueError):
            self.fail(f"'{value}' is not an amount of dollars, such as 12.50", param, ctx)
        if not math.isfinite(amount) or amount < 0:
            self.fail(f"'{value}' is not allowed: give a finite amount, 0 or more", param, ctx)
        return amount


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
    "--budget", type=_Dollars(), help="Budget cap in USD for each recipe (overrides budget_usd)."
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
    help="Output folder instead of ./renders (each recipe in DIR/<name>/), relative to where you run.",
)
@_only_option
@_limit_option
@click.option(
    "--pool",
    metavar="NAME",
    help="Draw from this budget pool too (`render budget set`; overrides budget_pool).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Pay again for jobs already rendered (queued requests are collected, never re-sent).",
)
@_yes_option
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
    help="once: record if the cassette is new, else replay; new: add new requests; all: record again; none: replay only.",
)
@click.option(
    "--no-report", is_flag=True, help="Do not write the HTML report at the end of the run."
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Send again jobs an earlier run sent but never heard back about (they may be paid twice).",
)
@click.option(
    "--rejected",
    is_flag=True,
    help="Render again only the jobs whose current picture was rejected (render reject, render review).",
)
@click.option(
    "--reseed",
    is_flag=True,
    help="With --rejected: give each job a new stable seed, so the retry is a different picture.",
)
@click.option(
    "--compare-baseline",
    is_flag=True,
    help="Render the baseline's jobs again (paid; narrow with --only) and exit 1 if any drifted from it.",
)
@_rate_window_option
@_ledger_option
@click.pass_context
@_handles_errors
def run(ctx: click.Context, /, **params: Any) -> None:
    """Plan RECIPE... and render them (with --dry-run: plan and price only)."""
    args = _RunArgs(**params)
    if args.as_json and not args.dry_run:
        raise click.UsageError("--json goes with --dry-run")
    if len(args.recipes) > 1 and args.cassette is not None:
        raise click.UsageError("--cassette takes one recipe at a time")
    options = _run_options(args)
    chosen = _choose_backend(args.backend, replay=_replays(options))
    if args.reseed and not args.rejected:
        raise click.UsageError("--reseed goes with --rejected")
    plans = [_plan(path, args) for path in args.recipes]
    outlooks = [_outlook(plan, _out_dir(args.out, plan.recipe), chosen, options) for plan in plans]
    if args.rejected and not args.reseed and any(outlook.reuse for outlook in outlooks):
        click.echo(
            "note: --rejected: a job whose payload did not change is the same request, so it reuses "
            "the rejected picture; add --reseed for a new take, or edit the recipe",
            err=True,
        )
    if args.dry_run or any(plan.errors for plan in plans):
        _show_plans(plans, outlooks, out=args.out, backend=chosen.label, as_json=args.as_json, options=options)  # fmt: skip
        return
    if args.backend is None and chosen.name == "preview":
        click.echo(
            "note: SEGMIND_API_KEY is not set: rendering free local previews "
            "(--backend segmind renders for real)",
            err=True,
        )
    codes = [
        _render(ctx, plan, outlook, chosen, options, out_dir=_out_dir(args.out, plan.recipe), yes=args.yes, report=not args.no_report)
        for plan, outlook in zip(plans, outlooks, strict=True)
    ]  # fmt: skip
    if args.compare_baseline:
        codes += [_drift_report(plan, _out_dir(args.out, plan.recipe)) for plan in plans]
    # The most serious outcome wins; 0 only when every recipe ended well.
    sys.exit(max(codes, key=lambda code: (code != 0, code)))


@dataclass(frozen=True)
class _RunArgs:
    """The command line of a run, as click parsed it."""

    recipes: tuple[Path, ...]
    dry_run: bool
    as_json: bool
    backend: str | None
    budget: float | None
    concurrency: int
    rpm: int | None
    out: Path | None
    only: tuple[str, ...]
    limit: int | None
    pool: str | None
    force: bool
    yes: bool
    cassette: Path | None
    record: RecordMode
    no_report: bool
    retry_unknown: bool
    rejected: bool
    reseed: bool
    compare_baseline: bool
    rate_window: float


def _plan(path: Path, args: _RunArgs) -> Plan:
    """One recipe's plan, narrowed as the command line asks: ``--only``, ``--limit``, the rejected
    jobs (``--rejected``, reseeded with ``--reseed``), the baseline's canaries (``--compare-baseline``)."""
    from engine.plan import build_plan, parse_only
    from engine.recipe import load_recipe

    file = load_recipe(path)
    rejected = _rejected(args.out, file.name) if args.rejected else None
    select: set[str] | None = set(rejected) if rejected is not None else None
    if args.compare_baseline:
        from engine.baseline import baseline_path, load_baseline

        canaries = set(load_baseline(baseline_path(file.path)).jobs)
        select = canaries if select is None else select & canaries
    return build_plan(
        file,
        budget_usd=args.budget,
        pool=args.pool,
        only=parse_only(args.only),
        limit=args.limit,
        select=select,
        reseed=rejected if args.reseed else None,
    )


def _drift_report(plan: Plan, out_dir: Path) -> int:
    """``--compare-baseline``: this run's canaries measured against the baseline; 1 past its threshold."""
    from engine.baseline import baseline_path, drift, load_baseline
    from engine.shots import run_shots

    baseline = load_baseline(baseline_path(Path(plan.recipe_path)))
    run = run_shots(out_dir)
    pictures = {
        job: file
        for job, shot in run.shots.items()
        if shot.run == run.run_id and (file := run.file(shot)) is not None
    }
    drifts = drift(baseline, pictures)
    moved = [item for item in drifts if item.changed]
    click.echo(
        f"baseline: {len(moved)} of {len(drifts)} canaries changed (distance above "
        f"{baseline.threshold:.3f})"
    )
    for item in drifts:
        click.echo(f"  {item.job:<30} {item.distance:.3f}{'  changed' if item.changed else ''}")
    return EXIT["jobs_failed"] if moved else EXIT["ok"]


def _rejected(out: Path | None, recipe: str) -> dict[str, int]:
    """``--rejected``: the recipe's jobs whose current picture was rejected, with their generation."""
    from engine.review import rejected_jobs

    with _ledger() as book:
        return rejected_jobs(_out_dir(out, recipe), recipe=recipe, ledger=book)


def _run_options(args: _RunArgs) -> RunOptions:
    """The run's options from its command line. A run with a cassette never skips a job (the
    recording must hold them all); recording everything again leaves nothing of the old one."""
    from engine.results import CassetteUse, RunOptions

    cassette, record = args.cassette, args.record
    use = CassetteUse(cassette, record, drop_unused=record == "all") if cassette else None
    return RunOptions(
        concurrency=args.concurrency,
        rpm=args.rpm,
        # Canaries are rendered again, paid: that is the point of comparing with the baseline.
        force=args.force or cassette is not None or args.compare_baseline,
        retry_unknown=args.retry_unknown,
        rate_window_s=args.rate_window,
        home=_home().path,
        cassette=use,
    )


def _replays(options: RunOptions) -> bool:
    """A replay sends nothing: it needs no key, no price and no budget. `--record once` replays a
    cassette that exists already."""
    use = options.cassette
    return use is not None and (
        use.record == "none" or (use.record == "once" and use.path.exists())
    )


def _show_plans(
    plans: Sequence[Plan],
    outlooks: Sequence[Outlook],
    *,
    out: Path | None,
    backend: str,
    as_json: bool,
    options: RunOptions,
) -> None:
    """The dry run (or the plan's errors): every job, what it costs, what is rendered already;
    exits 2 on an invalid plan and 3 on one over its budget."""
    import json

    from engine.dryrun import describe_plan, plan_json, within_budget

    pairs = list(zip(plans, outlooks, strict=True))
    pools = [_pool_use(plan) for plan in plans]
    if as_json:
        objects = [
            plan_json(p, o, out_dir=_out_dir(out, p.recipe), backend=backend) for p, o in pairs
        ]
        click.echo(json.dumps(objects[0] if len(objects) == 1 else objects, indent=2))
    else:
        described = (
            describe_plan(
                p,
                o,
                out_dir=_out_dir(out, p.recipe),
                backend=backend,
                concurrency=options.concurrency,
                rpm=options.rpm,
                pool=pool,
            )
            for (p, o), pool in zip(pairs, pools, strict=True)
        )
        click.echo("\n\n".join(described))
    # A pool that does not exist refuses a paid run (a preview renders, and says so).
    refused = backend.startswith("segmind") and any(isinstance(pool, str) for pool in pools)
    if any(plan.errors for plan in plans) or refused:
        sys.exit(EXIT["invalid_input"])
    if any(within_budget(p, o) is False for p, o in pairs):
        sys.exit(EXIT["budget"])


def _out_dir(out: Path | None, recipe: str) -> Path:
    return (out or Path("renders")) / recipe


def _choose_backend(name: str | None, *, replay: bool = False) -> Backend:
    """A replay's, the preview (asked for, or no key), or Segmind with a key that can be sent."""
    from engine.backends import preview_backend, replay_backend, segmind_backend
    from engine.settings import api_key, base_url

    if replay:
        return replay_backend()
    key = api_key()
    if name == "preview" or (name is None and not key):
        return preview_backend()
    if not key:
        raise click.UsageError("--backend segmind needs SEGMIND_API_KEY in the environment")
    _check_key(key)
    return segmind_backend(key, base_url=base_url())


def _check_key(key: str) -> None:
    """A key that cannot go in an HTTP header is refused before anything is planned or sent; the
    message says what is wrong with it, never the key itself."""
    from engine.errors import CredentialError

    for position, char in enumerate(key, start=1):
        if char in "\r\n":
            problem = "a line break"
        elif not char.isascii():
            problem = "a character that is not ASCII"
        elif not char.isprintable() or char.isspace():
            problem = "a space or a control character"
        else:
            continue
        raise CredentialError(
            f"SEGMIND_API_KEY cannot be sent: it holds {problem} (character {position} of "
            f"{len(key)}; the key is not shown). Set it to the key alone, as Segmind's console shows it"
        )


def _outlook(plan: Plan, out_dir: Path, backend: Backend, options: RunOptions) -> Outlook:
    """What each job of ``plan`` needs, from the ledger (if there is one yet) and the output folder."""
    from engine.ledger import open_ledger
    from engine.outputs import OutputStore
    from engine.triage import Triage

    book = open_ledger(options.home, create=False)
    try:
        triage = Triage.for_run(
            book, OutputStore(out_dir), backend=backend, options=options, model=plan.model
        )
        return triage.outlook(plan)
    finally:
        if book is not None:
            book.close()


_HOME_NOTED: list[bool] = []


def _home() -> Home:
    """RENDER_HOME as the settings find it; its notice (a local .render/) is said once."""
    from engine.settings import render_home

    home = render_home()
    if home.notice and not _HOME_NOTED:
        _HOME_NOTED.append(True)
        click.echo(home.notice, err=True)
    return home


def _gate(plan: Plan, outlook: Outlook, *, yes: bool) -> None:
    """The budget's policy (engine.budget.check_spend), and its question asked on the terminal."""
    from engine.budget import check_spend
    from engine.errors import InputError

    question = check_spend(plan, outlook, confirmed=yes, can_ask=sys.stdin.isatty())
    if question is not None and not click.confirm(f"{plan.recipe}: {question}", err=True):
        raise InputError("not confirmed: nothing was sent")


def _pool_use(plan: Plan) -> PoolUse | str | None:
    """The plan's pool as the ledger has it now (a string: why the run would be refused)."""
    from engine.errors import LedgerError
    from engine.ledger import open_ledger
    from engine.pools import Pools

    if plan.budget_pool is None:
        return None
    book = open_ledger(_home().path, create=False)
    if book is None:
        name = plan.budget_pool
        return f"no budget pool '{name}' yet: create it with `render budget set {name} USD`"
    try:
        pools = Pools(book)
        return pools.use(pools.need(plan.budget_pool))
    except LedgerError as problem:
        return str(problem)
    finally:
        book.close()


def _check_pool(plan: Plan, outlook: Outlook, *, charges: bool = True) -> None:
    """The recipe's pool must exist (a LedgerError says which there are); a run that would spend
    more than it has left is said so: the pool stops it there."""
    from engine.formatting import money
    from engine.pools import Pools

    if plan.budget_pool is None:
        return
    with _ledger() as book:
        pools = Pools(book)
        use = pools.use(pools.need(plan.budget_pool))
    if charges and outlook.cost_usd is not None and outlook.cost_usd > use.left_usd:
        click.echo(
            f"note: {plan.recipe}: {use.pool.describe()} has {money(use.left_usd)} left, less "
            f"than the {money(outlook.cost_usd)} this run would spend: jobs stop when it runs out",
            err=True,
        )


def _would_refuse(plan: Plan, options: RunOptions, *, out_dir: Path) -> None:
    """A preview renders whatever it costs on Segmind; it says when Segmind's run would be refused."""
    from engine.backends import segmind_backend
    from engine.budget import check_spend
    from engine.errors import InputError, RenderError
    from engine.settings import base_url

    outlook = _outlook(plan, out_dir, segmind_backend("", base_url=base_url()), options)
    try:
        check_spend(plan, outlook, confirmed=True)
        pool = _pool_use(plan)
        if isinstance(pool, str):
            raise InputError(pool)
    except RenderError as refusal:
        reason = str(refusal).removeprefix(f"{plan.recipe_path}: ")
        click.echo(
            f"note: the preview renders anyway, but on Segmind this run would be refused: {reason}",
            err=True,
        )


def _resume_command(ctx: click.Context, plan: Plan) -> str:
    """The exact command that resumes this recipe's run: the same one, for this recipe alone and
    without --force (which would pay again for what finished before the interrupt)."""
    import shlex

    params = ctx.params
    words = ["render", plan.recipe_path]
    for option, name in (
        ("--backend", "backend"),
        ("--budget", "budget"),
        ("--rpm", "rpm"),
        ("--out", "out"),
        ("--limit", "limit"),
        ("--pool", "pool"),
        ("--cassette", "cassette"),
    ):
        if params.get(name) is not None:
            words += [option, str(params[name])]
    if params.get("concurrency") != 8:
        words += ["--concurrency", str(params["concurrency"])]
    for pair in params.get("only") or ():
        words += ["--only", pair]
    if params.get("cassette") is not None:
        words += ["--record", str(params["record"])]
    words += [
        flag
        for flag, name in (
            ("--yes", "yes"),
            ("--retry-unknown", "retry_unknown"),
            ("--no-report", "no_report"),
            ("--rejected", "rejected"),
            ("--reseed", "reseed"),
        )
        if params.get(name)
    ]
    return shlex.join(words)


def _render(
    ctx: click.Context,
    plan: Plan,
    outlook: Outlook,
    backend: Backend,
    options: RunOptions,
    *,
    out_dir: Path,
    yes: bool,
    report: bool,
) -> int:
    """One recipe's run, after the budget's yes (Segmind) or the preview's note; its exit code."""
    import dataclasses

    from engine.executor import execute
    from engine.progress import ProgressModel

    if backend.charges:
        _gate(plan, outlook, yes=yes)
        _check_pool(plan, outlook)
    elif backend.name == "preview":
        _would_refuse(plan, options, out_dir=out_dir)
    model = ProgressModel(plan, label=backend.label, charges=backend.charges)
    try:
        with _LiveProgress(model, interactive=sys.stderr.isatty()) as live:
            options = dataclasses.replace(options, on_result=live.update)
            summary = execute(plan, backend=backend, out_dir=out_dir, options=options)
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: what finished is recorded in {out_dir}/, and requests already sent "
            f"are collected, not paid again, by running:\n  {_resume_command(ctx, plan)}",
            err=True,
        )
        return EXIT["interrupted"]
    click.echo(model.closing(summary))
    if report:
        from engine.report import write_report

        page = write_report(out_dir, summary.run_id, verdicts=_verdicts(plan.recipe))
        click.echo(f"  report   {page}")
    return _exit_code(summary)


def _exit_code(summary: RunSummary) -> int:
    if summary.aborted:
        return EXIT["aborted"]
    if summary.budget_reached:
        return EXIT["budget"]
    if summary.count("failed") or summary.count("unknown") or summary.count("unfetched"):
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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            model = self.model

            class _TimeLeft(TextColumn):
                """Time left from the completions seen so far (rich's own guess counts skipped jobs,
                which take no time, and a wave of completions as a pace)."""

                def __init__(self) -> None:
                    super().__init__("")

                def render(self, task: Any) -> Any:
                    from rich.text import Text

                    del task  # the same for every task: the run's

                    return Text(model.eta_text())

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                _TimeLeft(),
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
    help="Fault rates, e.g. 429=0.1,500=0.05,drop=0.02,failed=0.05,lost=0.1.",
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
    "--rpm",
    type=click.IntRange(min=1),
    help="Submissions per key in each --rate-window (default: no limit); more are answered 429.",
)
@click.option(
    "--rate-window",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds of the --rpm window (Segmind's minute; shrink it for tests).",
)
@click.option(
    "--reset-format",
    type=click.Choice(["iso", "epoch", "http-date"]),
    default="iso",
    show_default=True,
    help="How a 429's x-rate-limit-reset-at-utc is written.",
)
@click.option(
    "--retention",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a queued request is answered after its submission (default: 3600, times --latency-scale).",
)
@click.option(
    "--strict-urls",
    is_flag=True,
    help="Refuse base64 in image parameters that take a URL (400): upload the file and send its URL.",
)
@click.option(
    "--upload-key",
    type=click.Choice(["file_urls", "urls"]),
    default="file_urls",
    show_default=True,
    help="The list's name in the upload answer (the SDK's file_urls, or the docs page's urls).",
)
@click.option(
    "--lost-for",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds a 'lost' fault's output files answer 404/403 after their request completes.",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1),
    default=32 * 2**20,
    show_default=True,
    help="Largest request body in bytes; a larger one is answered 413.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a connection may wait on its client (before, between or inside requests).",
)
@click.option(
    "--images",
    type=click.Choice(["preview", "tiny"]),
    default="preview",
    show_default=True,
    help="Real previews, or a few-byte image for load tests.",
)
@_handles_errors
def simulate(  # noqa: PLR0913 - click passes each of the simulator's options as an argument
    *,
    host: str,
    port: int,
    latency: float | None,
    latency_scale: float | None,
    faults: str,
    seed: int,
    balance: float,
    key: str | None,
    rpm: int | None,
    rate_window: float,
    reset_format: str,
    retention: float | None,
    strict_urls: bool,
    upload_key: str,
    lost_for: float,
    max_body: int,
    idle_timeout: float,
    images: str,
) -> None:
    """Serve a local Segmind (every spec, storage and request history) for previews and tests."""
    from engine.simulator import SimulatorConfig, all_specs, create_app, parse_faults, serve
    from engine.simulator.config import ResetFormat

    config = SimulatorConfig(
        specs=all_specs(),
        latency_s=latency,
        latency_scale=latency_scale,
        faults=parse_faults(faults),
        seed=seed,
        balance_usd=balance,
        key=key,
        images="tiny" if images == "tiny" else "preview",
        max_body_bytes=max_body,
        rpm=rpm,
        rate_window_s=rate_window,
        reset_format=cast(ResetFormat, reset_format),
        retention_s=retention,
        strict_urls=strict_urls,
        upload_answer_key="urls" if upload_key == "urls" else "file_urls",
        lost_for_s=lost_for,
    )
    click.echo(
        f"simulating Segmind on http://{host}:{port} (set SEGMIND_BASE_URL to use it); Ctrl-C stops",
        err=True,
    )
    serve(create_app(config), host=host, port=port, idle_timeout_s=idle_timeout)


@cli.command()
@click.argument("run_target", metavar="RUN", type=click.Path(path_type=Path))
@_ledger_option
@_handles_errors
def report(*, run_target: Path) -> None:
    """Write the HTML contact sheet of RUN (a run's folder, renders/<recipe>/, or a run id)."""
    from engine.report import write_report
    from engine.shots import find_run, run_record

    folder, run_id = find_run(str(run_target), home=_home().path)
    recipe = str(run_record(folder, run_id).get("recipe", ""))
    click.echo(str(write_report(folder, run_id, verdicts=_verdicts(recipe))))


@cli.command()
@click.argument("run_a", metavar="A")
@click.argument("run_b", metavar="B")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page (default: compare-A-B.html in B's folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the pairs as JSON instead of a page.")
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, max=1),
    help="The distance above which a pair counts as changed (default: the engine's, see README).",
)
@_handles_errors
def compare(
    *, run_a: str, run_b: str, output: Path | None, as_json: bool, threshold: float | None
) -> None:
    """Compare two runs' pictures, paired by job id, most changed first (A, B: run ids or run
    folders, meaning their latest run)."""
    import json

    from engine.compare import compare_runs, write_compare_page

    a, b = _shots_of(run_a), _shots_of(run_b)
    comparison = compare_runs(a, b, threshold=threshold)
    if as_json:
        click.echo(json.dumps(comparison.as_json(), indent=2))
        return
    page = output or b.out_dir / f"compare-{a.run_id}-{b.run_id}.html"
    write_compare_page(comparison, page)
    click.echo(
        f"{comparison.changed} of {len(comparison.pairs)} pairs changed"
        + (f"; only in A: {len(comparison.only_a)}" if comparison.only_a else "")
        + (f"; only in B: {len(comparison.only_b)}" if comparison.only_b else "")
    )
    click.echo(f"  page  {page}")


def _shots_of(target: str) -> RunShots:
    """A run id, or a run folder meaning its latest run, as the shots it left."""
    from engine.shots import find_run, run_shots

    folder, run_id = find_run(target, home=_home().path)
    return run_shots(folder, run_id)


def _naming_shots(note_help: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """RUN, its shots (JOB ids or --only AXIS=VALUE) and a --note: what approve and reject take."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        for option in (
            _ledger_option,
            click.option("--note", help=note_help),
            click.option("--only", multiple=True, metavar="AXIS=VALUE", help="Every shot with this axis value (repeatable)."),
            click.argument("jobs", nargs=-1, metavar="[JOB]..."),
            click.argument("run_target", metavar="RUN"),
        ):  # fmt: skip
            command = option(command)
        return command

    return decorate


@cli.command()
@_naming_shots("A note kept with the verdict.")
@_handles_errors
def approve(
    *, run_target: str, jobs: tuple[str, ...], only: tuple[str, ...], note: str | None
) -> None:
    """Approve the pictures of RUN's jobs (JOB ids, or --only AXIS=VALUE)."""
    _judge(run_target, jobs, only, verdict="approved", note=note)


@cli.command()
@_naming_shots("A note kept with the verdict (what to change).")
@_handles_errors
def reject(
    *, run_target: str, jobs: tuple[str, ...], only: tuple[str, ...], note: str | None
) -> None:
    """Reject the pictures of RUN's jobs; `render RECIPE --rejected` renders them again."""
    _judge(run_target, jobs, only, verdict="rejected", note=note)


def _judge(
    run_target: str,
    jobs: tuple[str, ...],
    only: tuple[str, ...],
    *,
    verdict: Verdict,
    note: str | None,
) -> None:
    from engine.formatting import count as count_of
    from engine.plan import parse_only
    from engine.review import pick
    from engine.verdicts import Verdicts

    run = _shots_of(run_target)
    shots = pick(run, jobs, parse_only(only))
    with _ledger() as book:
        given = Verdicts(book).give(run.recipe, shots, verdict, note=note)
    click.echo(f"{verdict}: {count_of(given, 'shot')} of {run.recipe} (run {run.run_id})")


@cli.command()
@click.argument("run_target", metavar="RUN")
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    help="Port on 127.0.0.1 (default: a free one).",
)
@_ledger_option
@_handles_errors
def review(*, run_target: str, port: int) -> None:
    """Give verdicts on RUN's shots in a local web app (approve, reject, notes; keys a, r, n, j/k)."""
    from engine.reviewapp import serve_review
    from engine.settings import ledger_target
    from engine.shots import find_run

    folder, run_id = find_run(run_target, home=_home().path)

    def ready(url: str) -> None:
        click.echo(f"reviewing {folder} at {url} (Ctrl-C stops)")

    serve_review(folder, run_id, ledger=ledger_target(_home().path), port=port, on_ready=ready)


@cli.command()
@click.argument("run_target", metavar="RUN")
@_handles_errors
def baseline(*, run_target: str) -> None:
    """Record RUN's approved pictures' perceptual hashes as its recipe's baseline (beside its snapshot)."""
    from engine.baseline import baseline_path, make_baseline, write_baseline
    from engine.errors import InputError
    from engine.formatting import count
    from engine.verdicts import Verdicts

    run = _shots_of(run_target)
    with _ledger() as book:
        recorded = book.run(run.run_id)
        made = make_baseline(run, Verdicts(book).of(run.recipe))
    if recorded is None:
        raise InputError(f"run {run.run_id} is not in this ledger: its recipe file is unknown")
    path = baseline_path(Path(recorded["recipe_path"]))
    write_baseline(made, path)
    click.echo(f"baseline: {count(len(made.jobs), 'approved picture')} of {run.recipe} in {path}")


def _verdicts(recipe: str) -> dict[tuple[str, str], Judgement]:
    from engine.verdicts import Verdicts

    with _ledger() as book:
        return Verdicts(book).of(recipe)


@contextmanager
def _ledger() -> Iterator[Ledger]:
    from engine.ledger import open_ledger

    book = open_ledger(_home().path)
    assert book is not None  # created when missing
    try:
        yield book
    finally:
        book.close()


@cli.command()
@click.argument("run_target", metavar="RUN")
@click.option(
    "--approved",
    "dest",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy the approved pictures into this folder, with manifest.csv and manifest.json.",
)
@_ledger_option
@_handles_errors
def export(*, run_target: str, dest: Path) -> None:
    """Copy RUN's approved pictures to a folder, named for a DAM, with a manifest (idempotent)."""
    from engine.export import export_approved
    from engine.formatting import count
    from engine.verdicts import Verdicts

    run = _shots_of(run_target)
    with _ledger() as book:
        judgements = Verdicts(book).of(run.recipe)
    done = export_approved(run, judgements, dest)
    click.echo(
        f"exported {count(done.exported, 'approved picture')} of {run.recipe} to {dest} "
        f"({done.copied} copied, {done.unchanged} unchanged, {done.removed} no longer approved "
        f"removed); {done.pending} pending, {done.rejected} rejected"
    )


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option(
    "--keep-runs",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Keep the earlier pictures the newest N runs of each folder can still show.",
)
@_handles_errors
def gc(*, folder: Path | None, keep_runs: int) -> None:
    """Delete earlier pictures kept in FOLDER's .history/ (default: every folder under ./renders)
    that none of its newest runs shows and no verdict names."""
    from engine.formatting import count
    from engine.gc import collect

    folders = (
        [folder]
        if folder is not None
        else sorted(p for p in Path("renders").glob("*") if (p / "runs").is_dir())
    )
    with _ledger() as book:
        for each in folders:
            done = collect(each, keep_runs=keep_runs, ledger=book)
            click.echo(
                f"{each}: {count(done.removed, 'kept picture')} removed ({done.bytes_text}), {done.kept} kept"
            )


# How many runs `render ledger` lists (the newest); --json gives them all.
_RUNS_SHOWN = 20


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print spend and runs as JSON.")
@_ledger_option
@click.pass_context
@_handles_errors
def ledger(ctx: click.Context, /, *, as_json: bool) -> None:
    """Show spend by day, recipe and model, and the runs with their ids, from the ledger.

    `render ledger migrate` brings its schema up to date."""
    import json

    from engine.ledger import open_ledger
    from engine.settings import ledger_target

    if ctx.invoked_subcommand is not None:
        return
    book = open_ledger(_home().path, create=False)
    if book is None:
        path = ledger_target(_home().path)
        if as_json:
            click.echo(json.dumps({"ledger": path, "spend": [], "runs": []}, indent=2))
        else:
            click.echo(f"no runs yet (no ledger at {path})")
        return
    try:
        rows = book.spend()
        runs = book.run_rows(limit=None if as_json else _RUNS_SHOWN)
        path = book.where
    finally:
        book.close()
    if as_json:
        data = {
            "ledger": path,
            "spend": [row.__dict__ for row in rows],
            "runs": [run.__dict__ for run in runs],
        }
        click.echo(json.dumps(data, indent=2))
        return
    _print_ledger(path, rows, runs)


@ledger.command("migrate")
@_ledger_option
@_handles_errors
def ledger_migrate() -> None:
    """Bring the ledger's schema up to date (a run does it too, under the same lock)."""
    from engine.formatting import count
    from engine.ledger import MIGRATIONS, Ledger
    from engine.settings import ledger_target

    book = Ledger(ledger_target(_home().path), migrate=False)
    try:
        before = book.version
        applied = book.migrate()
        after = book.version
    finally:
        book.close()
    if applied:
        click.echo(f"ledger {book.where}: schema {before} -> {after} ({count(applied, 'migration')} applied)")  # fmt: skip
    else:
        click.echo(f"ledger {book.where}: schema {after} of {len(MIGRATIONS)}, up to date")


def _print_ledger(path: str, rows: Sequence[Spend], runs: Sequence[RunRow]) -> None:
    from engine.formatting import money

    def dollars(spent: float, unknown: float) -> tuple[str, str]:
        return money(spent), money(unknown) if unknown else ""

    click.echo(f"ledger {path}")
    _print_table(
        ("day", "recipe", "model", "backend", "jobs", "spent", "unknown"),
        [
            (r.day, r.recipe, r.model, r.backend, str(r.jobs), *dollars(r.spent_usd, r.unknown_usd))
            for r in rows
        ],
    )
    spent = sum(row.spent_usd for row in rows if row.backend == "segmind")
    unknown = sum(row.unknown_usd for row in rows if row.backend == "segmind")
    line = f"total spent on Segmind: {money(spent)}"
    click.echo(line + (f", and {money(unknown)} unknown (sent, never answered)" if unknown else ""))
    stand_ins = sorted({row.backend for row in rows if row.backend.startswith("segmind@")})
    for backend in stand_ins:
        host = backend.removeprefix("segmind@")
        total = sum(row.spent_usd for row in rows if row.backend == backend)
        click.echo(f"sent to {host} (SEGMIND_BASE_URL, not Segmind): {money(total)}")
    click.echo("")
    click.echo(f"runs (the newest {_RUNS_SHOWN}; `render report RUN` shows one):")
    _print_table(
        ("run", "recipe", "backend", "status", "jobs", "spent", "unknown", "pace", "outputs"),
        [
            (
                r.id,
                r.recipe,
                r.backend,
                r.status,
                str(r.jobs),
                *dollars(r.spent_usd, r.unknown_usd),
                f"{r.learned_rpm:g}/min ({r.rate_limited} 429s)" if r.learned_rpm else "",
                r.out_dir,
            )
            for r in runs
        ],
    )
    _print_charges(runs)


def _print_charges(runs: Sequence[RunRow]) -> None:
    from engine.formatting import money

    for r in runs:
        if r.charged_jobs:
            # What Segmind reported charging, against the estimates of the same jobs; its units are
            # not documented, so both are shown, and the spent column uses what it reported.
            drift = r.charged_usd / r.estimated_usd - 1 if r.estimated_usd else 0.0
            warn = f" (warning: {drift:+.0%})" if abs(drift) > 0.05 else ""
            click.echo(
                f"{r.id}: Segmind reported {money(r.charged_usd)} for {r.charged_jobs} jobs estimated "
                f"at {money(r.estimated_usd)}{warn}; spent uses what Segmind reported"
            )


def _print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain table, counts and money right-aligned."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(
            column, justify="right" if column in {"jobs", "spent", "unknown"} else "left"
        )
    for row in rows:
        table.add_row(*row)
    _console().print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was settled as JSON.")
@_ledger_option
@_handles_errors
def settle(*, as_json: bool) -> None:
    """Ask Segmind's request history what became of every request whose outcome is unknown."""
    import asyncio
    import json

    from engine.client import SegmindClient
    from engine.ledger import open_ledger
    from engine.settings import ledger_target
    from engine.settle import settle_all

    backend = _choose_backend("segmind")
    found = open_ledger(_home().path, create=False)
    if found is None:
        path = ledger_target(_home().path)
        click.echo(json.dumps([]) if as_json else f"nothing to settle (no ledger at {path})")
        return
    book = found

    async def main() -> list[Any]:
        client = SegmindClient(
            backend.base_url,
            backend.api_key,
            storage_url=backend.storage_url,
            history_url=backend.history_url,
        )
        try:
            return await settle_all(book, client, backend=backend.label)
        finally:
            await client.aclose()

    try:
        settled = asyncio.run(main())
    finally:
        book.close()
    _print_settled(settled, label=backend.label, as_json=as_json)


def _print_settled(settled: Sequence[tuple[Any, Any]], *, label: str, as_json: bool) -> None:
    import json

    from engine.formatting import money

    if as_json:
        rows = [
            {
                "run": row["run_id"],
                "job": row["job_id"],
                "status": outcome.status,
                "request_id": outcome.request_id,
                "charged_usd": outcome.charged_usd,
                "urls": list(outcome.urls),
                "reason": outcome.reason,
            }
            for row, outcome in settled
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not settled:
        click.echo(f"nothing to settle: no request of {label} has an unknown outcome")
        return
    for row, outcome in settled:
        what = {
            "succeeded": f"succeeded, {money(outcome.charged_usd)} charged; the next run of its "
            "recipe downloads its outputs",
            "failed": "failed, not billed: its money is released",
            "unknown": "still unknown",
        }[outcome.status]
        click.echo(f"{row['run_id']} {row['job_id']}: {what} ({outcome.reason})")


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


@specs.command("add")
@click.argument("page", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id", "spec_id", metavar="ID", help="The spec's id (default: the model's slug).")
@_handles_errors
def specs_add(page: Path, spec_id: str | None) -> None:
    """Import a Segmind API PAGE into your spec folder, so a recipe can name the model at once."""
    from engine.addspec import add_spec
    from engine.formatting import about_seconds, count, money

    added = add_spec(page, spec_id=spec_id)
    _warn(added.notes, page.name)
    spec = added.spec
    click.echo(
        f"added {spec.id} ({spec.title}) to {added.path}: POST {spec.endpoint} ({spec.protocol}, "
        f"returns {spec.response}), {money(spec.price_usd)} a call, latency "
        f"{about_seconds(spec.latency_s)}, {count(len(spec.params), 'parameter')}"
    )
    if added.replaces_shipped:
        click.echo(f"note: it replaces the spec {spec.id} shipped with render", err=True)
    doubts = f"{count(len(added.notes), 'warning')} above" if added.notes else "no warnings"
    made = "wrote an empty overlay" if added.overlay_created else "applied the overlay"
    click.echo(
        f"  {doubts}; {made} {added.overlay}: correct a field there, then add the page again"
    )
    click.echo(f"  a recipe names it as `model: {spec.id}` (`render specs show {spec.id}`)")


@specs.command("list")
@_handles_errors
def specs_list() -> None:
    """List the specs a recipe can name as its `model`, and where each comes from."""
    from rich.table import Table

    from engine.formatting import about_seconds, money
    from engine.settings import user_specs_dir
    from engine.specs import available_specs, load_spec, shipped_specs_dir

    shipped, added = shipped_specs_dir(), user_specs_dir()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "title", "protocol", "returns", "price/call", "latency", "params", "source"):  # fmt: skip
        table.add_column(column)
    for spec_id, path in available_specs().items():
        spec = load_spec(spec_id)
        table.add_row(
            spec.id,
            spec.title,
            spec.protocol,
            spec.response,
            money(spec.price_usd),
            about_seconds(spec.latency_s),
            str(len(spec.params)),
            _spec_source(path.parent, shipped=shipped, added=added),
        )
    _console().print(table)
    click.echo(f"added: in {added} (`render specs add PAGE` writes there)")


def _spec_source(folder: Path, *, shipped: Path | None, added: Path) -> str:
    if folder == shipped:
        return "shipped"
    return "added" if folder == added else str(folder)


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

    from engine.formatting import about_seconds, money, setting_value

    def wrapped(text: str, indent: str) -> str:
        # URLs in the reasons must stay whole: no breaks at their hyphens, none inside words.
        return textwrap.fill(
            text,
            width=100,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )

    lines = [
        f"{spec.id}: {spec.title}",
        f"  endpoint  POST {spec.endpoint} ({spec.protocol}, auth {spec.auth}, returns {spec.response})",
        f"  price     {money(spec.price_usd)} a call, latency {about_seconds(spec.latency_s)}",
        f"  source    {spec.source}",
    ]
    lines += [wrapped(f"corrected: {note}", "  ") for note in spec.notes]
    lines.append("")
    lines.append("parameters (required first):")
    ordered = sorted(spec.params.items(), key=lambda item: not item[1].required)
    for name, param in ordered:
        kind = param.type + (f", sent as {param.encoding}" if param.encoding else "")
        flag = "required" if param.required else f"default {setting_value(param.default)}"
        lines.append(f"  {name}  ({kind}; {flag})")
        if param.description:
            lines.append(wrapped(param.description, "      "))
        if param.enum is not None or param.minimum is not None or param.maximum is not None:
            lines.append(wrapped(f"allowed: {param.allowed()}", "      "))
        lines += [wrapped(f"corrected: {note}", "      ") for note in param.notes]
    click.echo("\n".join(lines))


# --- a team's ledger: budget pools, submitted runs and their workers ----------------------------


@cli.group()
def budget() -> None:
    """Budget pools: one cap shared by every run that names it, on any machine using the ledger."""


@budget.command("set")
@click.argument("name")
@click.argument("usd", metavar="USD", type=_Dollars())
@click.option(
    "--period",
    type=click.Choice(["day", "week", "month", "total"]),
    default="month",
    show_default=True,
    help="How long the cap lasts before it starts again (UTC; weeks from Monday).",
)
@_ledger_option
@_handles_errors
def budget_set(*, name: str, usd: float, period: str) -> None:
    """Create the pool NAME with a cap of USD, or change its cap or period."""
    import re

    from engine.errors import InputError
    from engine.formatting import money
    from engine.pools import Pools
    from engine.recipe import POOL_NAME

    if not re.match(POOL_NAME, name):
        raise InputError(
            f"'{name}' cannot name a pool: use letters, digits, '.', '_' and '-' (up to 64)"
        )
    with _ledger() as book:
        pools = Pools(book)
        use = pools.use(pools.set(name, usd, period))
        where = book.where
    click.echo(
        f"{use.pool.describe()} in {where}: {money(use.left_usd)} left since "
        f"{use.since[:10] or 'the start'}; runs draw from it with `budget_pool: {name}` or --pool {name}"
    )


@budget.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the pools as JSON.")
@_ledger_option
@_handles_errors
def budget_show(*, as_json: bool) -> None:
    """Each pool: its cap and period, what its runs spent, have in flight and hold, what is left."""
    import json

    from engine.formatting import money
    from engine.pools import Pools

    with _ledger() as book:
        pools = Pools(book)
        uses = [pools.use(pool) for pool in pools.all()]
        where = book.where
    if as_json:
        click.echo(json.dumps([
            {"name": u.pool.name, "cap_usd": u.pool.cap_usd, "period": u.pool.period,
             "since": u.since, "spent_usd": round(u.spent_usd, 6),
             "in_flight_usd": round(u.in_flight_usd, 6), "held_usd": round(u.held_usd, 6),
             "left_usd": round(u.left_usd, 6)}
            for u in uses
        ], indent=2))  # fmt: skip
        return
    if not uses:
        click.echo(f"no budget pools in {where} (`render budget set NAME USD` makes one)")
        return
    click.echo(f"budget pools in {where}")
    _print_table(
        ("pool", "cap", "period", "since", "spent", "in flight", "held", "left"),
        [
            (u.pool.name, money(u.pool.cap_usd), u.pool.period, u.since[:10] or "-",
             money(u.spent_usd), money(u.in_flight_usd), money(u.held_usd), money(u.left_usd))
            for u in uses
        ],
    )  # fmt: skip


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--backend",
    type=click.Choice(["segmind", "preview"]),
    help="Where workers render (default: segmind with SEGMIND_API_KEY, else preview).",
)
@click.option(
    "--budget",
    type=_Dollars(),
    help="Budget cap in USD for the whole run, across its workers (overrides budget_usd).",
)
@click.option(
    "--pool", metavar="NAME", help="Draw from this budget pool too (overrides budget_pool)."
)
@_only_option
@_limit_option
@_yes_option
@_ledger_option
@_handles_errors
def submit(
    *, recipe: Path, backend: str | None, budget: float | None, pool: str | None,
    only: tuple[str, ...], limit: int | None, yes: bool,
) -> None:  # fmt: skip
    """Plan RECIPE and queue its jobs in the ledger for workers (`render work`); prints the run id."""
    from engine.formatting import count, money
    from engine.ledger import new_run_id
    from engine.plan import build_plan, parse_only
    from engine.queue import Queue
    from engine.recipe import load_recipe
    from engine.results import RunOptions

    plan = build_plan(
        load_recipe(recipe), budget_usd=budget, pool=pool, only=parse_only(only), limit=limit
    )
    chosen = _choose_backend(backend)
    options = RunOptions(home=_home().path)
    outlook = _outlook(plan, _out_dir(None, plan.recipe), chosen, options)
    if plan.errors:
        _show_plans([plan], [outlook], out=None, backend=chosen.label, as_json=False, options=options)  # fmt: skip
    if chosen.charges:
        _gate(plan, outlook, yes=yes)
    _check_pool(plan, outlook, charges=chosen.charges)
    run_id = new_run_id()
    with _ledger() as book:
        Queue(book).submit(
            run_id, plan, backend=chosen.label, out_dir=str(_out_dir(None, plan.recipe).absolute()),
            pool=plan.budget_pool,
        )  # fmt: skip
    cost = money(outlook.cost_usd) if outlook.cost_usd is not None else "unpriced"
    limits = [f"budget {money(plan.budget_usd)}"] if plan.budget_usd is not None else []
    limits += [f"pool {plan.budget_pool}"] if plan.budget_pool else []
    click.echo(
        f"submitted {run_id}: {count(len(plan.jobs), 'job')} of {plan.recipe} ({plan.model}) on "
        f"{chosen.label}, about {cost}{'; ' + ', '.join(limits) if limits else ''}"
    )
    click.echo(f"  work on it: render work --run {run_id}   (on any machine with this ledger)")


@cli.command()
@click.option(
    "--run",
    "run_id",
    metavar="ID",
    help="Work on this submitted run only (default: each with jobs left, oldest first).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Jobs in flight at once in this worker.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output root (default: renders/); each recipe writes to OUT/<recipe name>/.",
)
@click.option(
    "--backend",
    type=click.Choice(["segmind", "preview"]),
    help="Must be where the run was submitted for.",
)
@click.option(
    "--rpm",
    type=click.IntRange(min=1),
    help="Requests a minute at most (the account's pace is shared in the ledger).",
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Send again jobs whose earlier request never answered (they may have been billed).",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds a claim lasts without this worker's heartbeat (then another worker takes it).",
)
@_rate_window_option
@_ledger_option
@_handles_errors
def work(
    *, run_id: str | None, concurrency: int, out: Path | None, backend: str | None,
    rpm: int | None, retry_unknown: bool, lease: float, rate_window: float,
) -> None:  # fmt: skip
    """Claim jobs of submitted runs from the ledger and render them, until none is left."""
    from engine.errors import InputError
    from engine.queue import Queue
    from engine.results import RunOptions
    from engine.worker import worker_name

    chosen = _choose_backend(backend)
    codes: list[int] = []
    name = worker_name()
    while True:
        with _ledger() as book:
            queue = Queue(book)
            target = run_id or queue.next_run(backend=chosen.label)
            if target is None:
                break
            submitted = queue.submitted(target)
            plan = queue.plan(target)
            left = queue.counts(target)
        if submitted["backend"] != chosen.label:
            raise InputError(_other_backend(target, submitted["backend"], chosen.label))
        if not left.queued and not left.claimed:
            click.echo(f"nothing to work on: every job of run {target} is done")
            break
        options = RunOptions(
            concurrency=concurrency, rpm=rpm, retry_unknown=retry_unknown, home=_home().path,
            lease_s=lease, rate_window_s=rate_window,
        )  # fmt: skip
        click.echo(f"working on {target} ({plan.recipe}) as {name}", err=True)
        summary = _work_on(target, plan, chosen, options, out_dir=_out_dir(out, plan.recipe), name=name)  # fmt: skip
        codes.append(_exit_code(summary))
        with _ledger() as book:
            Queue(book).close_if_done(target)
        if run_id is not None or summary.aborted or summary.budget_reached or summary.interrupted:
            break
    if not codes:
        click.echo(
            f"nothing to work on: no run submitted for {chosen.label} has a job left to claim"
        )
    sys.exit(max(codes, key=lambda code: (code != 0, code)) if codes else EXIT["ok"])


def _other_backend(run_id: str, submitted: str, mine: str) -> str:
    how = (
        "add --backend preview"
        if submitted == "preview"
        else f"set SEGMIND_API_KEY, and SEGMIND_BASE_URL to {submitted.removeprefix('segmind@')}'s URL"
        if submitted.startswith("segmind@")
        else "set SEGMIND_API_KEY (and no SEGMIND_BASE_URL)"
    )
    return f"run {run_id} was submitted for {submitted}; this worker renders on {mine} ({how})"


def _work_on(
    batch: str, plan: Plan, backend: Backend, options: RunOptions, *, out_dir: Path, name: str
) -> RunSummary:
    """One worker run on the submitted run ``batch``: a line per job, the closing line."""
    import dataclasses

    from engine.executor import execute
    from engine.progress import ProgressModel
    from engine.queue import Queue
    from engine.worker import QueueJobs

    model = ProgressModel(plan, label=backend.label, charges=backend.charges)

    def said(result: Result) -> None:
        model.update(result)
        click.echo(model.line(result), err=True)

    def source(ledger: Ledger) -> QueueJobs:
        return QueueJobs(Queue(ledger), batch, lease_s=options.lease_s, worker=name)

    summary = execute(
        plan,
        backend=backend,
        out_dir=out_dir,
        options=dataclasses.replace(options, on_result=said),
        source=source,
    )
    click.echo(model.closing(summary))
    return summary


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the run's progress as JSON.")
@_ledger_option
@_handles_errors
def status(*, run_id: str, as_json: bool) -> None:
    """A submitted run's progress across its workers: jobs by state, each worker, the money."""
    import json
    import time

    from engine.formatting import money, seconds_text
    from engine.pools import Pools
    from engine.queue import Queue

    with _ledger() as book:
        queue = Queue(book)
        row = queue.submitted(run_id)
        counts, outcomes, workers = (
            queue.counts(run_id),
            queue.outcomes(run_id),
            queue.workers(run_id),
        )
        pool = Pools(book).get(row["pool"]) if row.get("pool") else None
        use = Pools(book).use(pool) if pool is not None else None
    spent = sum(w["spent_usd"] for w in workers)
    unknown = sum(w["unknown_usd"] for w in workers)
    if as_json:
        click.echo(json.dumps({
            "run": run_id, "recipe": row["recipe"], "model": row["model"], "backend": row["backend"],
            "queue": counts.__dict__, "outcomes": outcomes, "workers": workers,
            "spent_usd": round(spent, 6), "unknown_usd": round(unknown, 6),
            "budget_usd": row["budget_usd"], "pool": row.get("pool"),
            "pool_left_usd": round(use.left_usd, 6) if use is not None else None,
        }, indent=2))  # fmt: skip
        return
    click.echo(f"run {run_id}: {row['recipe']} ({row['model']}) on {row['backend']}")
    lease = f" ({counts.expired} of them past their lease)" if counts.expired else ""
    click.echo(
        f"  jobs      {counts.total}: {counts.done} done, {counts.claimed} claimed{lease}, "
        f"{counts.queued} queued"
    )
    click.echo(
        "  outcomes  " + (", ".join(f"{n} {s}" for s, n in sorted(outcomes.items())) or "none yet")
    )
    money_line = f"{money(spent)} spent" + (f", {money(unknown)} unknown" if unknown else "")
    if row["budget_usd"] is not None:
        money_line += f"; budget {money(row['budget_usd'])}"
    if use is not None:
        money_line += f"; {use.pool.describe()}: {money(use.left_usd)} left"
    click.echo(f"  money     {money_line}")
    if not workers:
        click.echo("  no worker yet (`render work --run " + run_id + "`)")
        return
    now = time.time()
    _print_table(
        ("worker", "run", "status", "done", "failed", "in flight", "spent", "heard from"),
        [
            (w["worker"] or "?", w["run"], w["status"], str(w["done"]), str(w["failed"]),
             str(w["in_flight"]), money(w["spent_usd"]),
             f"{seconds_text(max(0.0, now - w['heartbeat_at']))} ago" if w["heartbeat_at"] else "-")
            for w in workers
        ],
    )  # fmt: skip


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The folder to gather the outputs in.",
)
@_ledger_option
@_handles_errors
def fetch(*, run_id: str, out: Path) -> None:
    """Gather a submitted run's outputs onto this machine from the URLs its workers recorded,
    without paying (Segmind keeps them about 7 days)."""
    import asyncio

    from engine.client import SegmindClient
    from engine.formatting import count
    from engine.gather import gather
    from engine.ratelimit import Pace
    from engine.results import RunOptions
    from engine.retrying import RetryPolicy

    backend = _choose_backend(None)
    retry = RetryPolicy(RunOptions(), Pace())

    async def main() -> Any:
        client = SegmindClient(backend.base_url, backend.api_key, storage_url=backend.storage_url, history_url=backend.history_url)  # fmt: skip
        try:
            with _ledger() as book:
                return await gather(book, run_id, out, client=client, retrying=retry.call)
        finally:
            await client.aclose()

    done = asyncio.run(main())
    click.echo(
        f"fetched {count(done.files, 'file')} into {out}"
        + (f" ({done.present} already there)" if done.present else "")
        + f": {count(done.jobs, 'job')} of the run gathered"
    )
    if done.unfetched:
        click.echo(f"  {count(done.unfetched, 'job')} not fetched (below): try again later")
    for where, number in done.elsewhere.items():
        click.echo(
            f"  {count(number, 'job')}: Segmind answered with the picture itself (no URL to fetch): "
            f"on the worker {where}"
        )
    if done.not_done:
        click.echo(f"  {count(done.not_done, 'job')} not rendered (yet)")
    for failure in done.failed:
        click.echo(f"  not fetched: {failure}", err=True)
    sys.exit(EXIT["jobs_failed"] if done.failed else EXIT["ok"])


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `render` console script."""
    cli.main(args=argv, prog_name="render")
