"""The contact sheet of a recipe's output folder: a self-contained ``index.html`` beside the outputs.

It shows the recipe's current state, not only what the last run rendered: every job of the recipe
with its newest record in the folder's manifest, whichever run wrote it (after a ``--limit`` run the
other jobs still show their pictures). One row per value of the first axis, one column per value of
the second, a section per combination of the others; each cell a thumbnail linked to the full image
with the job id, seed, cost and every text parameter as the templates rendered it, or the job's
error. A combination the recipe does not have says "excluded"; a section where fewer than half the
combinations are jobs of the recipe (an ``include``'s extra format) shows only its jobs, each
captioned, instead of a mostly empty grid. Thumbnails are made once (Pillow) into ``.thumbs/``; an
image too large to decode safely gets none, and says so. The page needs no server, no script and no
network, and escapes every string it shows. Python prepares plain data; the templates in
``engine/templates/`` (``report.html.j2`` on ``base.html.j2``, its style in ``report.css``) draw it.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image, UnidentifiedImageError

from engine.errors import InputError
from engine.files import atomic_write
from engine.formatting import count, money, seconds_text
from engine.media import media_kind
from engine.outputs import OutputStore
from engine.pages import render_page
from engine.shots import RUNS, run_record

if TYPE_CHECKING:
    from engine.verdicts import Judgement

__all__ = ["REPORT", "RUNS", "find_run_dir", "write_report"]

REPORT = "index.html"
THUMBS = ".thumbs"
_THUMB = 480  # a thumbnail's width: as wide as a column of the grid grows (report.css: 30rem)
_NONE = "(none)"


# Past this many pixels an image is not decoded for a thumbnail (a 48 KB PNG can claim 20000×20000).
_MAX_PIXELS = 40_000_000


def find_run_dir(target: Path, *, home: Path) -> tuple[Path, str | None]:
    """``render report RUN``: a run's output folder (its latest run), or a run id from the ledger."""
    if target.is_dir():
        return target, None
    from engine.ledger import open_ledger  # noqa: PLC0415 - only when a run id is given

    book = open_ledger(home, create=False)
    if book is not None:
        try:
            for run in book.runs():
                if run["id"] == str(target):
                    return Path(run["out_dir"]), run["id"]
        finally:
            book.close()
    raise InputError(
        f"{target}: no such run folder or run id (a run's folder is renders/<recipe>/)"
    )


def write_report(
    out_dir: Path,
    run_id: str | None = None,
    *,
    verdicts: Mapping[tuple[str, str], Judgement] | None = None,
) -> Path:
    """Write (or rewrite) the report of a run's folder as that run left it; returns the page's path.
    ``verdicts`` (by job id and picture sha256) put each picture's verdict on its cell."""
    run = run_record(out_dir, run_id)
    entries, folder_spent = _current(out_dir, run)
    for entry in entries:
        judged = (verdicts or {}).get((str(entry.get("job")), (entry.get("sha256") or [""])[0]))
        if judged is not None:
            entry["verdict"], entry["verdict_note"] = judged.verdict, judged.note
    notes: dict[str, str] = {}
    for entry in entries:
        for output in entry.get("outputs") or []:
            note = _thumbnail(out_dir, output)
            if note:
                notes[output] = note
    page = out_dir / REPORT
    atomic_write(page, _page(run, entries, notes, folder_spent))
    return page


def _current(out_dir: Path, run: Mapping[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """Each job of the recipe with its newest record up to this run, whichever run wrote it; and
    what every run into this folder up to this one spent."""
    jobs = run.get("recipe_jobs") or run.get("jobs")
    wanted = set(jobs) if jobs else None
    newest: dict[str, dict[str, Any]] = {}
    spent = 0.0
    for entry in OutputStore(out_dir).entries():
        job = str(entry.get("job"))
        if str(entry.get("run", "")) > str(run["id"]):
            continue  # a later run's
        spent += float(entry.get("cost_usd") or 0)
        if wanted is None or job in wanted:
            newest[job] = entry
    return list(newest.values()), spent


def _thumbnail(out_dir: Path, output: str) -> str | None:
    """Make the thumbnail of one output, once; a note when it cannot be made."""
    source = out_dir / output
    target = out_dir / THUMBS / Path(output).with_suffix(".jpg")
    if media_kind(source.suffix) in {"video", "audio"}:
        return None  # the sheet plays it
    if not source.exists() or (
        target.exists() and target.stat().st_mtime >= source.stat().st_mtime
    ):
        return None
    try:
        with warnings.catch_warnings():
            # Pillow warns (then refuses) past its own limit: either way, no thumbnail.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > _MAX_PIXELS:
                    return f"no thumbnail: {width}×{height} pixels is too large to decode here"
                # As wide as a column, a tall format (9:16) included; height up to twice that.
                image.draft("RGB", (_THUMB, 2 * _THUMB))
                image.thumbnail((_THUMB, 2 * _THUMB))
                target.parent.mkdir(parents=True, exist_ok=True)
                image.convert("RGB").save(target, "JPEG", quality=82)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Decoding it would take gigabytes (a decompression bomb, or just huge).
        return "no thumbnail: the image is too large to decode here"
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return f"no thumbnail: {type(exc).__name__}"
    return None


# --- what the templates show ------------------------------------------------------------------

# What the newest record of a job says when its request has not ended.
_IN_FLIGHT = {
    "waiting": "not sent yet (a try was refused; it waits for the next)",
    "sending": "sent, no answer yet",
    "submitted": "queued on the server",
    "unfetched": "paid, output not fetched yet",
}


@dataclass(frozen=True)
class _Layout:
    """Which axis runs down the rows, which across the columns, and which split the sections."""

    rows: str | None
    columns: str | None
    sections: list[str]


@dataclass(frozen=True)
class _Header:
    """The run at a glance: the recipe, where it rendered, what it cost, how its jobs stand."""

    recipe: str
    badge: str | None  # "stand-in", "replay" or "preview": pictures that are not Segmind's own
    where: str
    model: str
    run_id: str
    jobs: str
    tally: list[str]
    folder_spent: str
    spent: str
    budget: str | None
    unknown: str | None
    when: str | None
    took: str


# What an empty cell says: a job of the recipe with no record yet, or a combination it lacks.
_NOT_YET = "not rendered yet"
_EXCLUDED = "excluded"


@dataclass(frozen=True)
class _Cell:
    """One job: its picture (or the note saying why there is none), facts, state and texts."""

    empty: ClassVar[bool] = False
    job: str
    status: str
    state: str
    from_run: str | None  # set when an earlier run rendered it
    seed: str | None
    cost: str
    href: str | None
    thumb: str | None
    note: str | None
    media: str | None  # image, video or audio: how the sheet shows the first output
    more: list[str]
    error: str | None
    texts: list[tuple[str, str]]  # each text parameter and its rendered value, the prompt first
    where: str | None = None  # its row and column values, in a section shown without its grid
    verdict: str | None = None  # approved or rejected (None: pending), for the picture shown
    verdict_note: str | None = None


@dataclass(frozen=True)
class _Empty:
    """A combination with no record: ``_NOT_YET`` for a job of the recipe, ``_EXCLUDED`` for one
    the recipe lacks (an ``exclude``), ``None`` where the run's record cannot tell (older runs)."""

    empty: ClassVar[bool] = True
    reason: str | None
    where: str | None = None


@dataclass(frozen=True)
class _Row:
    """A value of the row axis and its cells, one per column."""

    label: str
    cells: list[_Cell | _Empty]


@dataclass(frozen=True)
class _Section:
    """One grid: ``title`` pairs each section axis with its value (empty with no section axes).
    A ``compact`` one holds only its jobs, captioned, in rows as wide as the grid's; ``note`` says
    what it leaves out."""

    title: list[tuple[str, str]]
    columns: list[str]
    rows: list[_Row]
    compact: bool
    note: str | None


def _page(
    run: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    notes: Mapping[str, str],
    folder_spent: float,
) -> str:
    """The whole page, from the run's record, its jobs' newest records and the thumbnail notes."""
    axes: list[str] = list(run.get("axes") or [])
    layout = _Layout(
        rows=axes[0] if axes else None,
        columns=axes[1] if len(axes) > 1 else None,
        sections=axes[2:],
    )
    return render_page(
        "report.html.j2",
        title=f"{run.get('recipe', '')} · {run.get('id', '')}",
        header=_header(run, entries, folder_spent),
        layout=layout,
        sections=_sections(run, entries, notes, layout),
    )


def _sections(
    run: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    notes: Mapping[str, str],
    layout: _Layout,
) -> list[_Section]:
    """A section per combination of the section axes that has a job of the recipe (an exclude can
    leave none): a grid, or, where fewer than half its cells would hold a job (an include's extra
    format), only those jobs, captioned."""
    axes: list[str] = list(run.get("axes") or [])
    order: Mapping[str, list[str]] = run.get("values") or {}
    listed = run.get("recipe_jobs")
    recipe = set(listed) if listed else None  # older runs' records do not list the recipe's jobs
    by_values: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for entry in entries:
        values = entry.get("values") or {}
        by_values[tuple(values.get(axis, _NONE) for axis in axes)] = entry
    rows = _values(order, layout.rows, entries) if layout.rows else [_NONE]
    columns = _values(order, layout.columns, entries) if layout.columns else [_NONE]
    sections = []
    # With no section axes, product() yields the one empty combination: a single section.
    for combination in product(*(_values(order, axis, entries) for axis in layout.sections)):
        grid = []
        jobs: list[_Cell | _Empty] = []
        for row in rows:
            cells = []
            for column in columns:
                key = _key(layout, row, column, combination)
                cell = _slot(key, by_values.get(key), recipe, run, notes)
                cells.append(cell)
                if isinstance(cell, _Cell) or cell.reason == _NOT_YET:
                    jobs.append(replace(cell, where=_where(layout, row, column)))
            grid.append(_Row(_text(row), cells))
        if jobs:  # else a combination no job has (an exclude)
            title = [
                (axis, str(value)) for axis, value in zip(layout.sections, combination, strict=True)
            ]
            labels = [_text(column) for column in columns]
            sections.append(_section(title, labels, grid, jobs, layout, known=recipe is not None))
    return sections


def _slot(
    key: tuple[Any, ...],
    entry: Mapping[str, Any] | None,
    recipe: set[str] | None,
    run: Mapping[str, Any],
    notes: Mapping[str, str],
) -> _Cell | _Empty:
    """A combination's cell: its job's newest record, or why there is none."""
    if entry is not None:
        return _cell(entry, run, notes)
    if recipe is None:
        return _Empty(None)
    return _Empty(_NOT_YET if _job_id(key) in recipe else _EXCLUDED)


def _section(
    title: list[tuple[str, str]],
    labels: list[str],
    grid: list[_Row],
    jobs: list[_Cell | _Empty],
    layout: _Layout,
    *,
    known: bool,
) -> _Section:
    """A section as its grid, or, when fewer than half its cells hold a job of the recipe, only
    those jobs, captioned, in rows as wide as the grid's (the columns line up with the others)."""
    cells = len(grid) * len(labels)
    if 2 * len(jobs) >= cells:
        return _Section(title, labels, grid, compact=False, note=None)
    lines = [
        _Row("", jobs[start : start + len(labels)]) for start in range(0, len(jobs), len(labels))
    ]
    note = _compact_note(layout, len(jobs), cells, known=known)
    return _Section(title, labels, lines, compact=True, note=note)


def _compact_note(layout: _Layout, jobs: int, cells: int, *, known: bool) -> str:
    """What a section shown without its grid leaves out."""
    grid = " × ".join(axis for axis in (layout.rows, layout.columns) if axis)
    kind = "combinations" if layout.columns else "values"
    others = "are not in the recipe" if known else "have no record here"
    return f"only {count(jobs, 'job')} shown: the other {cells - jobs} {grid} {kind} {others}"


def _where(layout: _Layout, row: Any, column: Any) -> str:
    """A cell's caption outside its grid: its row and column values."""
    shown = (row if layout.rows else None, column if layout.columns else None)
    return " · ".join(_text(value) for value in shown if value is not None)


def _job_id(key: tuple[Any, ...]) -> str:
    """The id the recipe gives the job of a combination (engine/matrix.py): its values' ids joined,
    an axis an include left out omitted."""
    return "/".join(_text(value) for value in key if value != _NONE) or "job"


def _key(layout: _Layout, row: Any, column: Any, combination: tuple[Any, ...]) -> tuple[Any, ...]:
    """Where a cell's job is filed: its axes' values, leaving out an axis the layout lacks."""
    return tuple(
        value
        for value in (
            row if layout.rows else None,
            column if layout.columns else None,
            *combination,
        )
        if value is not None
    )


def _values(
    order: Mapping[str, list[str]], axis: str | None, entries: Sequence[Mapping[str, Any]]
) -> list[str]:
    """An axis's values in the recipe's order, then any only the records know (older recipes)."""
    known = list(order.get(axis or "", []))
    for entry in entries:
        value = (entry.get("values") or {}).get(axis, _NONE)
        if value not in known:
            known.append(value)
    return known


def _cell(entry: Mapping[str, Any], run: Mapping[str, Any], notes: Mapping[str, str]) -> _Cell:
    """A job's cell from its newest record; ``notes`` says which outputs have no thumbnail."""
    status = str(entry.get("status", ""))
    outputs = [_text(output) for output in entry.get("outputs") or []]
    first = outputs[0] if outputs else None
    seed = entry.get("seed")
    # A skipped job's error is the reason it was skipped, not a failure to show in red.
    error = entry.get("error") if status != "skipped" else None
    return _Cell(
        job=_text(entry.get("job")),
        status=status,
        state=_IN_FLIGHT.get(status, status),
        from_run=_text(entry.get("run")) if entry.get("run") != run.get("id") else None,
        seed=None if seed is None else _text(seed),
        cost=money(float(entry.get("cost_usd") or 0)),
        href=first,
        thumb=(Path(THUMBS) / Path(first).with_suffix(".jpg")).as_posix() if first else None,
        note=notes.get(first) if first else None,
        media=media_kind(Path(first).suffix) if first else None,
        more=outputs[1:],
        error=_text(error) if error else None,
        texts=_texts(entry),
        verdict=_text(entry.get("verdict")) or None,
        verdict_note=_text(entry.get("verdict_note")) or None,
    )


def _texts(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each text parameter (prompt, negative_prompt, lighting_prompt…) as the job's templates
    rendered it, the prompt first; a record older than ``texts`` has only its prompt."""
    texts = entry.get("texts")
    if not isinstance(texts, Mapping):
        texts = {"prompt": entry.get("prompt")}
    shown = [
        (str(name), value) for name, value in texts.items() if isinstance(value, str) and value
    ]
    return sorted(shown, key=lambda pair: pair[0].lower() != "prompt")


def _header(
    run: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], folder_spent: float
) -> _Header:
    """The header: jobs counted by state (and those not rendered yet), money, backend and time."""
    counts: dict[str, int] = {}
    for entry in entries:
        status = str(entry.get("status"))
        state = _IN_FLIGHT.get(status, status)
        counts[state] = counts.get(state, 0) + 1
    tally = [f"{number} {state}" for state, number in sorted(counts.items())]
    total = len(run.get("recipe_jobs") or run.get("jobs") or entries)
    if total > len(entries):
        tally.append(f"{total - len(entries)} not rendered yet")
    backend = str(run.get("backend", ""))
    started = run.get("started")
    budget = run.get("budget_usd")
    return _Header(
        recipe=_text(run.get("recipe")),
        badge=_badge(backend),
        where=backend.removeprefix("segmind@"),
        model=_text(run.get("model")),
        run_id=_text(run.get("id")),
        jobs=count(total, "job"),
        tally=tally,
        folder_spent=money(folder_spent),
        spent=money(float(run.get("spent_usd") or 0)),
        budget=None if budget is None else money(float(budget)),
        unknown=money(float(run["unknown_usd"])) if run.get("unknown_usd") else None,
        when=_minute(str(started)) if started else None,
        took=seconds_text(float(run.get("seconds") or 0)),
    )


def _minute(timestamp: str) -> str:
    """When the run started, to the minute, in UTC as the run recorded it."""
    return dt.datetime.fromisoformat(timestamp).strftime("%Y-%m-%d %H:%M UTC")


def _badge(backend: str) -> str | None:
    """Which warning the header wears: money sent to a stand-in or pictures made here are never
    passed off as Segmind's."""
    if backend.startswith("segmind@"):
        return "stand-in"
    if backend == "replay":
        return "replay"
    if backend != "segmind":
        return "preview"
    return None


def _text(value: object) -> str:
    """A record's value as the page shows it: nothing for a missing one."""
    return "" if value is None else str(value)
