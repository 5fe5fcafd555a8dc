"""Progress of a run as numbers and words: counts by outcome, dollars, an ETA, one line per job,
and the closing summary. ``cli.py`` shows it (a live bar on a terminal, these lines otherwise).
"""

from __future__ import annotations

import time
from collections import Counter

from engine.dryrun import money, seconds_text
from engine.plan import Plan
from engine.runner import Result, RunSummary, Status

__all__ = ["ProgressModel"]


class ProgressModel:
    """What a progress display needs to know, updated as each job ends."""

    def __init__(self, plan: Plan, *, backend: str) -> None:
        self.plan = plan
        self.backend = backend
        self.total = len(plan.jobs)
        self.counts: Counter[str] = Counter()
        self.spent_usd = 0.0
        self.started = time.monotonic()

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def update(self, result: Result) -> None:
        self.counts[result.status] += 1
        self.spent_usd += result.cost_usd

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (skipped jobs are instant, so they are left out)."""
        worked = self.finished - self.counts["skipped"]
        if worked <= 0:
            return None
        left = self.total - self.finished
        return (time.monotonic() - self.started) / worked * left

    def status_text(self) -> str:
        parts = [f"{self.counts['succeeded']} done"]
        for status, word in (
            ("failed", "failed"),
            ("unknown", "unknown"),
            ("skipped", "skipped"),
            ("not-sent", "not sent"),
        ):
            if self.counts[status]:
                parts.append(f"{self.counts[status]} {word}")
        money_part = money(self.spent_usd) if self.backend == "segmind" else "$0 (preview)"
        return " · ".join(parts) + f" · {money_part}"

    def line(self, result: Result) -> str:
        """One plain line per finished job, for logs and pipes."""
        detail = result.error or ", ".join(result.outputs)
        cost = f" {money(result.cost_usd)}" if result.cost_usd else ""
        return f"[{self.finished}/{self.total}] {result.job} {result.status}{cost}: {detail}"

    def closing(self, summary: RunSummary) -> str:
        labels: tuple[tuple[Status, str], ...] = (
            ("succeeded", "succeeded"),
            ("skipped", "skipped (already rendered)"),
            ("failed", "failed"),
            ("unknown", "unknown"),
            ("not-sent", "not sent"),
        )
        counts = ", ".join(
            f"{summary.count(status)} {word}"
            for status, word in labels
            if summary.count(status) or status == "succeeded"
        )
        if self.backend == "segmind":
            spent = f"{money(summary.spent_usd)} spent"
            if summary.unknown_usd:
                spent += f", {money(summary.unknown_usd)} unknown (sent, never answered)"
        elif self.backend == "replay":
            spent = "$0 spent (replayed from the cassette)"
        else:
            spent = "$0 spent (local preview)"

        lines = [f"{self.plan.recipe}: {counts}; {spent}; {seconds_text(summary.seconds)}"]
        lines.append(f"  outputs  {summary.out_dir}/ (manifest.jsonl; run {summary.run_id})")
        if summary.aborted:
            lines.append(f"  stopped  {summary.aborted}: nothing more was sent")
        if summary.budget_reached:
            lines.append("  stopped  the budget is reached: the jobs left were not sent")
        failures = [r for r in summary.results if r.status in {"failed", "unknown"}]
        for result in failures[:5]:
            lines.append(f"  {result.status:<8} {result.job}: {result.error}")
        if len(failures) > 5:
            lines.append(f"  … and {len(failures) - 5} more (see manifest.jsonl)")
        return "\n".join(lines)
