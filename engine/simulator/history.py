"""Request history as Segmind's ``/inference-request/request-history`` serves it (SDK 1.3.0,
``segmind/generations.py``): the query it takes, which requests match, and the row of each.

Every accepted submission is in it at any age, billed or failed or still running, including one whose
answer never reached its client: that is how a client settles an unknown outcome after the fact. A
request with several outputs has a row for each in a list, each with the full charge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from engine.simulator.state import Job

__all__ = [
    "HistoryQuery",
    "HistoryQueryError",
    "expand",
    "history_row",
    "history_status",
    "parse_query",
]

# The SDK's documented window: the last 7 days by default, 31 days at most.
DEFAULT_DAYS = 7
MAX_DAYS = 31
MAX_PER_PAGE = 100
STATUSES = ("COMPLETED", "FAILED", "PENDING")


class HistoryQueryError(ValueError):
    """A history query the simulator refuses (400), with the reason."""


@dataclass(frozen=True)
class HistoryQuery:
    page: int
    per_page: int
    first: date
    last: date
    model_name: str | None
    status: str | None

    def matches(self, job: Job, status: str, created: datetime) -> bool:
        return (
            self.first <= created.date() <= self.last
            and (self.model_name is None or self.model_name.lower() in job.slug.lower())
            and (self.status is None or self.status == status)
        )


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HistoryQueryError(f"{name} must be an integer, not '{text}'") from None
    if not low <= value <= high:
        raise HistoryQueryError(f"{name} must be from {low} to {high}, not {value}")
    return value


def _date(params: Mapping[str, str], name: str, default: date) -> date:
    text = params.get(name)
    if not text:
        return default
    # fromisoformat also takes 20261130 and week dates; Segmind documents YYYY-MM-DD only.
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise HistoryQueryError(f"{name} must be a date as YYYY-MM-DD, not '{text}'")


def parse_query(params: Mapping[str, str], *, today: date) -> HistoryQuery:
    """The query's filters, with Segmind's defaults; a bad one raises :class:`HistoryQueryError`."""
    last = _date(params, "to_date", today)
    first = _date(params, "from_date", last - timedelta(days=DEFAULT_DAYS))
    if first > last:
        raise HistoryQueryError(f"from_date {first} is after to_date {last}")
    if (last - first).days > MAX_DAYS:
        raise HistoryQueryError(f"the window from {first} to {last} is longer than {MAX_DAYS} days")
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise HistoryQueryError(f"status must be one of {', '.join(STATUSES)}, not '{status}'")
    return HistoryQuery(
        page=_integer(params, "page", 1, 1, 10**9),
        per_page=_integer(params, "per_page", 20, 1, MAX_PER_PAGE),
        first=first,
        last=last,
        model_name=params.get("model_name") or None,
        status=status,
    )


def history_status(status: str) -> str:
    """A request's state as history names it: anything not finished is PENDING."""
    return status if status in {"COMPLETED", "FAILED"} else "PENDING"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def history_row(
    job: Job,
    status: str,
    *,
    generation_url: str | None,
    created: datetime,
    updated: datetime,
) -> dict[str, Any]:
    """One row: ``status`` is the history status (COMPLETED, FAILED or PENDING)."""
    row: dict[str, Any] = {
        "request_id": job.id,
        "model_name": job.slug,
        "model_status": status,
        "status": status,
        # Only a completed request is billed, in USD.
        "credits_deduction": job.price_usd if status == "COMPLETED" else 0.0,
        "request_body": job.payload,
        "generation_url": generation_url,
        "latency_ms": round((job.done_at - job.created) * 1000)
        if status != "PENDING" and job.done_at is not None
        else None,
        "created_at": _iso(created),
        "updated_at": _iso(updated),
    }
    if status == "FAILED":
        row["error"] = job.error or "Generation failed"
    return row


def expand(entries: Iterable[tuple[Job, str]]) -> list[tuple[Job, str, int]]:
    """A list's rows: a completed request once per output (the index of that output), any other
    once."""
    return [
        (job, status, index)
        for job, status in entries
        for index in range(job.outputs if status == "COMPLETED" else 1)
    ]
