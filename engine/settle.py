"""Settling unknown outcomes through Segmind's request history.

A request whose answer never came back, or whose v2 id has expired (Segmind keeps queued requests an
hour), may have been billed. Request history knows: by id for a request whose id is on record, and,
for a submit whose answer never arrived, by listing the account's requests of that model since it
was sent and matching the one whose ``request_body`` is exactly what was sent (its sha256 is in the
ledger). A settled job is succeeded (its outputs' URLs and what it cost are recorded, to be
fetched), or failed (its money released); otherwise it stays unknown, with the reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import tenacity

from engine.client import SegmindClient
from engine.errors import ApiProblem, InputError, Retryable
from engine.ledger import FAILED, UNFETCHED, UNKNOWN, Ledger

__all__ = ["Settled", "body_sha256", "model_slug", "patiently", "settle_all", "settle_row"]

# Pages of 100 requests read to find a submit whose answer never arrived.
_PAGES = 10
# The longest window request history lists at once.
_WINDOW_DAYS = 30


def body_sha256(body: bytes | Mapping[str, Any]) -> str:
    """A request body's identity, whatever its key order or spacing: what history is matched on."""
    data = json.loads(body) if isinstance(body, bytes) else body
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def model_slug(endpoint: str) -> str:
    """How request history names a model: the last part of its endpoint."""
    return endpoint.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Settled:
    """What request history says became of a request."""

    status: Literal["succeeded", "failed", "unknown"]
    reason: str
    request_id: str | None = None
    urls: tuple[str, ...] = ()
    charged_usd: float | None = None


Retrying = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


Pages = dict[tuple[str, dt.date, dt.date], list[Mapping[str, Any]]]


async def settle_row(
    row: Mapping[str, Any],
    *,
    client: SegmindClient,
    ledger: Ledger,
    model: str,
    retrying: Retrying,
    pages: Pages | None = None,
) -> Settled:
    """Ask request history about one ledger row in flight, and record the answer on that row.
    ``pages`` keeps the history listings read, so that many rows of one run read them once."""
    try:
        settled = await _look_up(
            row, client=client, ledger=ledger, model=model, retrying=retrying, pages=pages
        )
    except ApiProblem as problem:
        settled = Settled("unknown", f"request history could not be read: {problem.message}")
    _record(ledger, row, settled)
    return settled


async def _look_up(
    row: Mapping[str, Any],
    *,
    client: SegmindClient,
    ledger: Ledger,
    model: str,
    retrying: Retrying,
    pages: Pages | None,
) -> Settled:
    request_id = row.get("request_id")
    sent = _when(row.get("submitted_at")) or dt.datetime.now(dt.UTC)
    rows: list[Mapping[str, Any]] = []
    if request_id:
        found = await retrying(functools.partial(client.history, str(request_id)))
        if found is None:
            return Settled("unknown", f"request history knows no request {request_id}")
        listed = await _listed(client, model, sent, retrying, pages)
        rows = [found, *(r for r in listed if str(r.get("request_id")) == str(request_id))]
    else:
        wanted = row.get("body_sha256")
        if not wanted:
            return Settled("unknown", "what was sent is not on record, so history cannot match it")
        candidates = [
            r
            for r in await _listed(client, model, sent, retrying, pages)
            if isinstance(r.get("request_body"), Mapping)
            and body_sha256(r["request_body"]) == wanted
            and (_when(r.get("created_at")) or sent) >= sent - dt.timedelta(minutes=5)
        ]
        claimed = ledger.known_requests([str(r.get("request_id")) for r in candidates])
        free = [r for r in candidates if str(r.get("request_id")) not in claimed]
        if not free:
            return Settled("unknown", "no request in history matches what was sent")
        request_id = str(free[-1].get("request_id"))  # the earliest: rows come newest first
        rows = [r for r in free if str(r.get("request_id")) == request_id]
    return _outcome(rows, str(request_id))


async def _listed(
    client: SegmindClient,
    model: str,
    sent: dt.datetime,
    retrying: Retrying,
    pages: Pages | None,
) -> list[Mapping[str, Any]]:
    """The account's requests of ``model`` from the day before ``sent`` on (one per output)."""
    since = sent.date() - dt.timedelta(days=1)
    until = min(dt.datetime.now(dt.UTC).date(), since + dt.timedelta(days=_WINDOW_DAYS))
    key = (model, since, until)
    if pages is not None and key in pages:
        return pages[key]
    found: list[Mapping[str, Any]] = []
    for page in range(1, _PAGES + 1):
        ask = functools.partial(
            client.history_rows, model=model, since=since, until=until, page=page
        )
        rows: Sequence[Mapping[str, Any]] = await retrying(ask)
        found += rows
        if len(rows) < 100:
            break
    if pages is not None:
        pages[key] = found
    return found


def _outcome(rows: Sequence[Mapping[str, Any]], request_id: str) -> Settled:
    first = rows[0]
    status = str(first.get("model_status") or first.get("status") or "").upper()
    if status in {"COMPLETED", "SUCCEEDED", "SUCCESS"}:
        urls = tuple(
            dict.fromkeys(str(r["generation_url"]) for r in rows if r.get("generation_url"))
        )
        cost = first.get("credits_deduction")
        charged = (
            float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
        )
        if not urls:
            return Settled(
                "unknown",
                f"request {request_id} completed, but history names no output",
                request_id,
            )
        return Settled("succeeded", f"request {request_id} completed", request_id, urls, charged)
    if status == "FAILED":
        error = first.get("error") or "it failed"
        return Settled("failed", f"request {request_id} failed: {error} (not billed)", request_id)
    return Settled(
        "unknown", f"request {request_id} is still {status or 'unknown'} at Segmind", request_id
    )


def _record(ledger: Ledger, row: Mapping[str, Any], settled: Settled) -> None:
    run_id, job_id = str(row["run_id"]), str(row["job_id"])
    if settled.status == "succeeded":
        estimate = row.get("estimated_usd") or row.get("reserved_usd") or 0.0
        cost = settled.charged_usd if settled.charged_usd is not None else estimate
        ledger.settle_request(
            run_id, job_id, UNFETCHED,
            cost_usd=cost, charged_usd=settled.charged_usd,
            charge_source="history" if settled.charged_usd is not None else None,
            request_id=settled.request_id, output_urls=list(settled.urls),
            error=f"settled through request history: {settled.reason}; outputs not fetched yet",
        )  # fmt: skip
    elif settled.status == "failed":
        ledger.settle_request(
            run_id, job_id, FAILED, cost_usd=None, reserved_usd=0.0,
            request_id=settled.request_id, error=f"settled through request history: {settled.reason}",
        )  # fmt: skip
    else:
        # A submit matched in history but still running keeps its id: the next look asks by id.
        found = {"request_id": settled.request_id} if settled.request_id else {}
        ledger.update(
            run_id,
            job_id,
            status=UNKNOWN if row.get("status") != "submitted" else row["status"],
            error=f"{_first_error(row)}; not settled: {settled.reason}",
            **found,
        )


async def patiently(call: Callable[[], Awaitable[Any]]) -> Any:
    """``call()``, asked again (a few times, with backoff) when Segmind says to try later."""
    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(Retryable),
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(multiplier=0.5, max=10) + tenacity.wait_random(0, 0.5),
        reraise=True,
    )
    return await retrying(call)


async def settle_all(
    ledger: Ledger, client: SegmindClient, *, backend: str
) -> list[tuple[Mapping[str, Any], Settled]]:
    """Every row of ``backend`` whose outcome is unknown, asked of request history, oldest first."""
    from engine.specs import load_spec  # noqa: PLC0415 - the spec only for rows that need one

    settled: list[tuple[Mapping[str, Any], Settled]] = []
    pages: Pages = {}
    for row in ledger.unsettled(backend=backend):
        try:
            model = model_slug(load_spec(str(row["model"])).endpoint)
        except InputError:
            model = str(row["model"])
        outcome = await settle_row(
            row, client=client, ledger=ledger, model=model, retrying=patiently, pages=pages
        )
        settled.append((row, outcome))
    return settled


def _first_error(row: Mapping[str, Any]) -> str:
    """The row's own error, without what earlier attempts to settle it added."""
    return str(row.get("error") or "unknown").split("; not settled: ", 1)[0]


def _when(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
