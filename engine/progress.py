"""Progress of a run as numbers and words: counts by outcome, dollars, the time left from the
completions seen so far, one line per job, and the closing summary. ``cli.py`` shows it (a live bar
on a terminal, these lines otherwise).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from engine.formatting import count, money, seconds_text
from engine.plan import Plan
from engine.results import Result, RunSummary, Status

__all__ = ["ProgressModel"]


class ProgressModel:
    """What a progress display needs to know, updated as each job ends.

    ``label`` is the ledger's name of the backend (``segmind``, ``segmind@host:port``, ``preview``,
    ``replay``); money sent to a stand-in for Segmind is labelled with its host.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        label: str,
        charges: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.label = label
        self.charges = charges
        self.clock = clock
        self.total = len(plan.jobs)
        self.counts: Counter[str] = Counter()
        self.spent_usd = 0.0
        self.started = clock()

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def update(self, result: Result) -> None:
        self.counts[result.status] += 1
        self.spent_usd += result.cost_usd

    def eta_s(self) -> float | None:
        """Seconds left at the pace of the completions seen so far (skipped jobs take no time, so
        they are left out); None until a job has been rendered."""
        left = self.total - self.finished
        if left <= 0:
            return 0.0
        worked = self.finished - self.counts["skipped"]
        if worked <= 0:
            return None
        return (self.clock() - self.started) / worked * left

    def eta_text(self) -> str:
        eta = self.eta_s()
        return "time left unknown" if eta is None else f"~{seconds_text(eta)} left"

    def _where(self) -> str:
        """Whose money: Segmind's, or a stand-in's at SEGMIND_BASE_URL."""
        host = self.label.removeprefix("segmind@")
        return "" if self.label == "segmind" else f" on {host} (SEGMIND_BASE_URL, not Segmind)"

    def status_text(self) -> str:
        parts = [f"{self.counts['succeeded']} done"]
        for status, word in (
            ("failed", "failed"),
            ("unknown", "unknown"),
            ("unfetched", "not fetched"),
            ("skipped", "skipped"),
            ("not-sent", "not sent"),
        ):
            if self.counts[status]:
                parts.append(f"{self.counts[status]} {word}")
        money_part = money(self.spent_usd) if self.charges else f"$0 ({self.label})"
        return " · ".join(parts) + f" · {money_part}"

    def line(self, result: Result) -> str:
        """One plain line per finished job, for logs and pipes."""
        detail = _first_line(result.error) or ", ".join(result.outputs)
        # "not-sent: not sent: the budget…" says it twice.
        detail = detail.removeprefix("not sent: ") if result.status == "not-sent" else detail
        cost = f" {money(result.cost_usd)}" if result.cost_usd else ""
        return f"[{self.finished}/{self.total}] {result.job} {result.status}{cost}: {detail}"

    def closing(self, summary: RunSummary) -> str:
        labels: tuple[tuple[Status, str], ...] = (
            ("succeeded", "succeeded"),
            ("skipped", "skipped (already rendered)"),
            ("failed", "failed"),
            ("unknown", "unknown"),
            ("unfetched", "paid, output not fetched"),
            ("not-sent", "not sent"),
        )
        counts = ", ".join(
            f"{summary.count(status)} {word}"
            for status, word in labels
            if summary.count(status) or status == "succeeded"
        )
        if self.charges:
            spent = f"{money(summary.spent_usd)} spent{self._where()}"
            if summary.unknown_usd:
                spent += f", {money(summary.unknown_usd)} unknown (sent, never answered)"
        elif self.label == "replay":
            spent = "$0 spent (replayed from the cassette)"
        else:
            spent = "$0 spent (local preview)"

        lines = [f"{self.plan.recipe}: {counts}; {spent}; {seconds_text(summary.seconds)}"]
        lines.append(f"  outputs  {summary.out_dir}/ (manifest.jsonl; run {summary.run_id})")
        if summary.cassette:
            lines.append(f"  cassette {summary.cassette}")
        if summary.uploads and self.charges:
            lines.append(f"  uploads  {count(summary.uploads, 'local image')} to Segmind Storage")
        if summary.rate_limited:
            rate = f"about {summary.learned_rpm:g}" if summary.learned_rpm else "fewer"
            lines.append(
                f"  pace     the account allowed {rate} requests a minute; "
                f"{summary.rate_limited} answered 429, none failed for it"
            )
        lines += _reconciled(summary)
        if summary.aborted:
            lines.append(f"  stopped  {summary.aborted}: nothing more was sent")
        if summary.budget_reached:
            reason = summary.budget_reason or "the budget is reached: the jobs left were not sent"
            lines.append(f"  stopped  {reason}")
        failures = [r for r in summary.results if r.status in {"failed", "unknown", "unfetched"}]
        for result in failures[:5]:
            lines.append(f"  {result.status:<8} {result.job}: {_first_line(result.error)}")
            lines += [f"           {line}" for line in _more_lines(result.error)]
        if len(failures) > 5:
            lines.append(f"  … and {len(failures) - 5} more (see manifest.jsonl)")
        return "\n".join(lines)


# Charged and estimated differing by more than this is worth a warning.
_DRIFT = 0.05


def _reconciled(summary: RunSummary) -> list[str]:
    """What Segmind said it charged against the estimates of the same jobs (its units are not
    documented: both figures are shown, and the totals say which they use)."""
    if not summary.charged_jobs:
        return []
    charged, estimate = summary.charged_usd, summary.charged_estimate_usd
    line = (
        f"  charged  {money(charged)} as Segmind reported it for {summary.charged_jobs} jobs, "
        f"against {money(estimate)} estimated (the totals use what Segmind reported)"
    )
    if estimate and abs(charged - estimate) > _DRIFT * estimate:
        line += f"\n  warning  that is {charged / estimate - 1:+.0%} against the estimate"
    return [line]


def _first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0]


def _more_lines(text: str | None) -> list[str]:
    """A long error (a cassette's diff) indented under its job, once."""
    return (text or "").split("\n")[1:]
