"""The budget cap: a job's price is reserved before it is sent and settled on its outcome.

A 200 spends what was reserved (or what Segmind says it charged); an answer saying nothing was billed
releases it; an outcome nobody can know (the request went out, no answer came back) stays counted.
So the cap holds under any concurrency and any fault: reserved + spent + unknown never exceeds it.
When Segmind charges more than a job's estimate, every later job is reserved at that higher rate,
so the estimate's error cannot carry the run past its cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.plan import Plan
    from engine.triage import Outlook

__all__ = ["CONFIRM_ABOVE_USD", "Budget", "check_spend"]

_EPSILON = 1e-9


@dataclass
class Budget:
    """Dollars for one run. Not thread-safe: one event loop owns it."""

    cap_usd: float | None
    reserved_usd: float = 0.0
    spent_usd: float = 0.0
    unknown_usd: float = 0.0
    # The highest charged-to-estimated ratio seen so far: later reservations are scaled by it.
    rate: float = 1.0

    @property
    def committed_usd(self) -> float:
        """Everything that may have been, or will be, billed."""
        return self.reserved_usd + self.spent_usd + self.unknown_usd

    def remaining_usd(self) -> float | None:
        return None if self.cap_usd is None else max(0.0, self.cap_usd - self.committed_usd)

    def reserve(self, price: float) -> float | None:
        """Hold a job's price (at the highest rate seen) before it is sent; returns what was held,
        or None (and nothing held) if the cap forbids it."""
        held = price * self.rate
        if self.cap_usd is not None and self.committed_usd + held > self.cap_usd + _EPSILON:
            return None
        self.reserved_usd += held
        return held

    def hold(self, price: float) -> None:
        """Count a job the cap cannot stop (one an earlier run already sent, being collected)."""
        self.reserved_usd += price

    def spend(self, held: float, *, charged: float | None = None, estimate: float = 0.0) -> None:
        """The job was billed: ``charged`` when Segmind said how much, else what was held."""
        self.reserved_usd -= held
        self.spent_usd += held if charged is None else charged
        if charged is not None and estimate > 0 and charged > estimate:
            self.rate = max(self.rate, charged / estimate)

    def release(self, held: float) -> None:
        """The job was not billed (refused, failed, never sent)."""
        self.reserved_usd -= held

    def mark_unknown(self, held: float) -> None:
        """Nobody can tell whether the job was billed: it stays counted."""
        self.reserved_usd -= held
        self.unknown_usd += held


# A run estimated above this asks first (DESIGN.md, CLI).
CONFIRM_ABOVE_USD = 5.0


def check_spend(
    plan: Plan, outlook: Outlook, *, confirmed: bool = False, can_ask: bool = True
) -> str | None:
    """What must hold before money is spent on what a run will send: a price, a budget it fits,
    and above $5 a yes (``confirmed``, or the question returned, to ask on a terminal; without
    one, ``can_ask`` False, the run is refused). Raises the refusal."""
    from engine.errors import BudgetError, InputError  # noqa: PLC0415 - the runner needs none of it
    from engine.formatting import money  # noqa: PLC0415

    where, cost, budget_usd, sending = (
        plan.recipe_path,
        outlook.cost_usd,
        plan.budget_usd,
        outlook.send,
    )
    if not sending:
        return None
    if cost is None:
        raise InputError(
            f"{where}: {plan.model} has no price: set `price_usd` in the recipe "
            "(or use --backend preview) to run it"
        )
    if budget_usd is None:
        raise InputError(
            f"{where}: no budget: set `budget_usd` in the recipe or pass --budget "
            f"(the run would send {sending} jobs for {money(cost)})"
        )
    if cost > budget_usd:
        raise BudgetError(
            f"{where}: the {sending} jobs to send cost {money(cost)}, more than the "
            f"{money(budget_usd)} budget: raise the budget, or narrow the run with --only or --limit"
        )
    if cost <= CONFIRM_ABOVE_USD or confirmed:
        return None
    if not can_ask:
        raise InputError(
            f"{where}: the run costs {money(cost)} (over {money(CONFIRM_ABOVE_USD)}): pass --yes "
            "to run it without a terminal to confirm on"
        )
    return f"{sending} jobs to send, about {money(cost)} of a {money(budget_usd)} budget. Run it?"
