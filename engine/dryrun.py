"""What `render RECIPE --dry-run` shows: the jobs (or a summary by axis), what each needs (send it,
or reuse what is already rendered), the cost of what will be sent against the budget, the time, and
every error. It builds text and JSON; ``cli.py`` prints them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.formatting import count, money, seconds_text
from engine.plan import Plan, PlanProblem
from engine.triage import Decision, Outlook

if TYPE_CHECKING:
    from engine.pools import PoolUse

__all__ = ["TABLE_LIMIT", "describe_plan", "money", "plan_json", "seconds_text"]

# Past this many jobs a table stops being read; the plan is summarised by axis instead.
TABLE_LIMIT = 40
_JOBS_NAMED = 3
# What the cost column says of a job that will not be sent.
_NOT_SENT = {"reuse": "free", "collect": "paid", "fetch": "paid", "unknown": "unknown"}


def within_budget(plan: Plan, outlook: Outlook) -> bool | None:
    """Whether what will be sent fits the budget; None when that cannot be said."""
    if plan.errors or outlook.cost_usd is None or plan.budget_usd is None:
        return None
    return outlook.cost_usd <= plan.budget_usd


def plan_json(plan: Plan, outlook: Outlook, *, out_dir: Path, backend: str) -> dict[str, Any]:
    """The dry-run object of DESIGN.md (CLI), with what each job needs and what sending costs."""
    data = plan.to_json()
    for job in data["jobs"]:
        job["action"] = outlook.decisions[job["id"]].action
    data.update(outlook.to_json())
    data["estimated_cost_usd"] = None if plan.errors else outlook.cost_usd
    data["within_budget"] = within_budget(plan, outlook)
    data["jobs_with_errors"] = plan.failed_jobs
    data["out_dir"] = str(out_dir)
    data["backend"] = backend
    return data


def describe_plan(
    plan: Plan,
    outlook: Outlook,
    *,
    out_dir: Path,
    backend: str,
    concurrency: int,
    rpm: int | None,
    pool: PoolUse | str | None = None,
) -> str:
    """The dry-run report of one plan, as plain text lines; ``backend`` is the ledger's label of
    the backend the run would use (what is "already rendered" depends on it); ``pool``: the
    budget pool the plan names, as the ledger has it (a string: why it has none)."""
    lines = [f"{plan.recipe} ({plan.recipe_path}) · {plan.model} · {_jobs(plan)}"]
    lines.append(f"outputs → {out_dir}/ · backend {_backend(backend)}")
    if plan.jobs:
        lines.append("")
        lines += _table(plan, outlook) if len(plan.jobs) <= TABLE_LIMIT else _summary(plan)
    lines.append("")
    if plan.jobs:
        lines.append(f"jobs    {_actions(outlook)}")
    if outlook.uploads:
        lines.append(
            f"uploads {count(outlook.uploads, 'local image')} to Segmind Storage (once; sent as URLs)"
        )
    lines.append(f"cost    {_cost_line(plan, outlook)}")
    if pool is not None:
        lines.append(f"pool    {_pool_line(pool, outlook)}")
    seconds = plan.estimated_seconds(concurrency=concurrency, rpm=rpm, jobs=outlook.send)
    limits = f"concurrency {concurrency}" + (f", {rpm} requests a minute" if rpm else "")
    if seconds is None:
        lines.append(f"time    unknown ({plan.model} gives no latency)")
    else:
        latency = f"~{plan.spec.latency_s:g} s a job" if plan.spec.latency_s else "nothing to send"
        lines.append(f"time    ~{seconds_text(seconds)} at {limits} ({latency})")
    if plan.errors:
        lines.append("")
        lines += _errors(plan.errors)
    return "\n".join(lines)


def _pool_line(pool: PoolUse | str, outlook: Outlook) -> str:
    if isinstance(pool, str):
        return pool
    line = f"{pool.pool.describe()}: {money(pool.left_usd)} left"
    if outlook.cost_usd is not None and outlook.cost_usd > pool.left_usd:
        line += " (less than this run's cost: jobs stop when it runs out)"
    return line


def _backend(label: str) -> str:
    if label == "preview":
        return "preview (free local renders; the costs are Segmind's prices)"
    if label.startswith("segmind@"):
        return f"{label.removeprefix('segmind@')} (SEGMIND_BASE_URL, not Segmind)"
    return label


def _jobs(plan: Plan) -> str:
    if not plan.errors:
        return count(len(plan.jobs), "job")
    return f"{count(plan.job_total, 'job')}, {plan.failed_jobs:,} with errors"


def _actions(outlook: Outlook) -> str:
    parts = [f"{outlook.send:,} to send ({money(outlook.cost_usd)})"]
    if outlook.reuse:
        parts.append(f"{outlook.reuse:,} already rendered (free)")
    if outlook.collect:
        parts.append(f"{outlook.collect:,} to collect (sent before; paid then)")
    if outlook.fetch:
        parts.append(f"{outlook.fetch:,} to fetch (paid before; outputs not downloaded yet)")
    if outlook.unknown:
        parts.append(
            f"{outlook.unknown:,} unknown (sent before, never answered; --retry-unknown sends them)"
        )
    return ", ".join(parts)


def _cell(decision: Decision, cost: float | None) -> str:
    return money(cost) if decision.action == "send" else _NOT_SENT[decision.action]


def _table(plan: Plan, outlook: Outlook) -> list[str]:
    rows = [
        (job.id, _cell(outlook.decisions[job.id], job.cost_usd), job.output) for job in plan.jobs
    ]
    widths = [max(len(row[i]) for row in [("job", "cost", "output"), *rows]) for i in range(3)]
    header = ("job", "cost", "output")
    return [
        "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]


def _summary(plan: Plan) -> list[str]:
    lines = [f"  {count(len(plan.jobs), 'job')} by axis (--only or --limit lists them one by one):"]
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


def _cost_line(plan: Plan, outlook: Outlook) -> str:
    cost = outlook.cost_usd
    if plan.errors:
        return f"not estimated: {count(plan.failed_jobs, 'job')} cannot run until the errors below are fixed"
    if cost is None:
        priced = [job.cost_usd for job in plan.jobs if job.cost_usd is not None]
        known = f"; {money(sum(priced))} for the {len(priced)} priced" if priced else ""
        return (
            f"unpriced ({plan.model} has no price: set `price_usd` in the recipe to run it){known}"
        )
    if plan.budget_usd is None:
        return f"{money(cost)} (no budget set: give `budget_usd` or --budget)"
    verdict = "within budget" if within_budget(plan, outlook) else "OVER BUDGET"
    return f"{money(cost)} of a {money(plan.budget_usd)} budget ({verdict})"


def _errors(errors: Sequence[PlanProblem]) -> list[str]:
    grouped: dict[tuple[str, str | None, str], list[str | None]] = defaultdict(list)
    for error in errors:
        grouped[(error.location, error.param, error.message)].append(error.job)
    lines = [f"{count(len(errors), 'error')}:"]
    for (location, param, message), jobs in grouped.items():
        field = f"params.{param}: " if param else ""
        named = [job for job in jobs if job is not None]
        which = ""
        if named:
            shown = ", ".join(named[:_JOBS_NAMED]) + (", …" if len(named) > _JOBS_NAMED else "")
            which = f" [{count(len(named), 'job')}: {shown}]"
        lines.append(f"  {location}: {field}{message}{which}")
    return lines
