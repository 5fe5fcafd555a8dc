"""What `render RECIPE --dry-run` shows: the jobs (or a summary by axis), cost against budget, time, errors.

It builds text; ``cli.py`` prints it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from engine.plan import Plan, PlanError

__all__ = ["TABLE_LIMIT", "describe_plan", "money", "seconds_text"]

# Past this many jobs a table stops being read; the plan is summarised by axis instead.
TABLE_LIMIT = 40
_JOBS_NAMED = 3


def money(value: float | None) -> str:
    """Dollars with cents, and with up to four decimals where a price has them: $3.39, $0.0647."""
    if value is None:
        return "unpriced"
    whole, _, fraction = f"{value:,.4f}".partition(".")
    return f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def describe_plan(plan: Plan, *, concurrency: int, rpm: int | None) -> str:
    """The dry-run report of one plan, as plain text lines."""
    lines = [f"{plan.recipe} ({plan.recipe_path}) · {plan.model} · {_count(len(plan.jobs), 'job')}"]
    if plan.jobs:
        lines.append("")
        lines += _table(plan) if len(plan.jobs) <= TABLE_LIMIT else _summary(plan)
    lines.append("")
    lines.append(f"cost    {_cost_line(plan)}")
    seconds = plan.estimated_seconds(concurrency=concurrency, rpm=rpm)
    limits = f"concurrency {concurrency}" + (f", {rpm} requests a minute" if rpm else "")
    if seconds is None:
        lines.append(f"time    unknown ({plan.model} gives no latency)")
    else:
        latency = f"~{plan.spec.latency_s:g} s a job"
        lines.append(f"time    ~{seconds_text(seconds)} at {limits} ({latency})")
    if plan.errors:
        lines.append("")
        lines += _errors(plan.errors)
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _table(plan: Plan) -> list[str]:
    rows = [(job.id, money(job.cost_usd), job.output) for job in plan.jobs]
    widths = [max(len(row[i]) for row in [("job", "cost", "output"), *rows]) for i in range(3)]
    header = ("job", "cost", "output")
    return [
        "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]


def _summary(plan: Plan) -> list[str]:
    lines = [
        f"  {_count(len(plan.jobs), 'job')} by axis (--only or --limit lists them one by one):"
    ]
    for axis in plan.axes:
        counts: dict[str, list[float | None]] = defaultdict(list)
        for job in plan.jobs:
            counts[job.values.get(axis, "(none)")].append(job.cost_usd)
        parts = []
        for value, costs in counts.items():
            cost = None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)
            parts.append(f"{value} {len(costs)} ({money(cost)})")
        lines.append(f"  {axis}: " + " · ".join(parts))
    first = ", ".join(job.id for job in plan.jobs[:_JOBS_NAMED])
    lines.append(f"  first jobs: {first}, …")
    return lines


def _cost_line(plan: Plan) -> str:
    cost = plan.estimated_cost_usd
    if cost is None:
        priced = [job.cost_usd for job in plan.jobs if job.cost_usd is not None]
        known = f"; {money(sum(priced))} for the {len(priced)} priced" if priced else ""
        return (
            f"unpriced ({plan.model} has no price: set `price_usd` in the recipe to run it){known}"
        )
    if plan.budget_usd is None:
        return f"{money(cost)} (no budget set: give `budget_usd` or --budget)"
    verdict = "within budget" if plan.within_budget else "OVER BUDGET"
    return f"{money(cost)} of a {money(plan.budget_usd)} budget ({verdict})"


def _errors(errors: Sequence[PlanError]) -> list[str]:
    grouped: dict[tuple[str, str | None, str], list[str | None]] = defaultdict(list)
    for error in errors:
        grouped[(error.location, error.param, error.message)].append(error.job)
    lines = [f"{_count(len(errors), 'error')}:"]
    for (location, param, message), jobs in grouped.items():
        field = f"params.{param}: " if param else ""
        named = [job for job in jobs if job is not None]
        which = ""
        if named:
            shown = ", ".join(named[:_JOBS_NAMED]) + (", …" if len(named) > _JOBS_NAMED else "")
            which = f" [{_count(len(named), 'job')}: {shown}]"
        lines.append(f"  {location}: {field}{message}{which}")
    return lines
