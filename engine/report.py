"""The contact sheet of a recipe's output folder: a self-contained ``index.html`` beside the outputs.

It shows the recipe's current state, not only what the last run rendered: every job of the recipe
with its newest record in the folder's manifest, whichever run wrote it (after a ``--limit`` run the
other jobs still show their pictures). One row per value of the first axis, one column per value of
the second, a section per combination of the others; each cell a thumbnail linked to the full image
with the job id, seed, cost and the rendered prompt, or the job's error. Thumbnails are made once
(Pillow) into ``.thumbs/``; an image too large to decode safely gets none, and says so. The page
needs no server, no script and no network, and escapes every string it shows.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import warnings
from collections.abc import Mapping, Sequence
from itertools import product
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from engine.errors import InputError
from engine.files import atomic_write
from engine.outputs import OutputStore
from engine.settings import ledger_path

__all__ = ["REPORT", "RUNS", "find_run_dir", "write_report"]

REPORT = "index.html"
RUNS = "runs"
THUMBS = ".thumbs"
_THUMB = 360
_NONE = "(none)"


# Past this many pixels an image is not decoded for a thumbnail (a 48 KB PNG can claim 20000×20000).
_MAX_PIXELS = 40_000_000


def find_run_dir(target: Path, *, home: Path) -> tuple[Path, str | None]:
    """``render report RUN``: a run's output folder (its latest run), or a run id from the ledger."""
    if target.is_dir():
        return target, None
    ledger_file = ledger_path(home)
    if ledger_file.exists():
        from engine.ledger import Ledger  # noqa: PLC0415 - only when a run id is given

        book = Ledger(ledger_file)
        try:
            for run in book.runs():
                if run["id"] == str(target):
                    return Path(run["out_dir"]), run["id"]
        finally:
            book.close()
    raise InputError(
        f"{target}: no such run folder or run id (a run's folder is renders/<recipe>/)"
    )


def write_report(out_dir: Path, run_id: str | None = None) -> Path:
    """Write (or rewrite) the report of a run's folder as that run left it; returns the page's path."""
    run = _run(out_dir, run_id)
    entries, folder_spent = _current(out_dir, run)
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


def _run(out_dir: Path, run_id: str | None) -> dict[str, Any]:
    runs = sorted((out_dir / RUNS).glob("*.json"))
    if not runs:
        raise InputError(f"{out_dir}: no run recorded here yet (render a recipe first)")
    if run_id is not None:
        chosen = out_dir / RUNS / f"{run_id}.json"
        if not chosen.exists():
            raise InputError(
                f"{out_dir}: no run {run_id} here (runs: {', '.join(p.stem for p in runs)})"
            )
    else:
        chosen = runs[-1]  # run ids sort by time
    data: dict[str, Any] = json.loads(chosen.read_text(encoding="utf-8"))
    return data


def _thumbnail(out_dir: Path, output: str) -> str | None:
    """Make the thumbnail of one output, once; a note when it cannot be made."""
    source = out_dir / output
    target = out_dir / THUMBS / Path(output).with_suffix(".jpg")
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
                image.draft("RGB", (_THUMB, _THUMB))
                image.thumbnail((_THUMB, _THUMB))
                target.parent.mkdir(parents=True, exist_ok=True)
                image.convert("RGB").save(target, "JPEG", quality=82)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Decoding it would take gigabytes (a decompression bomb, or just huge).
        return "no thumbnail: the image is too large to decode here"
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return f"no thumbnail: {type(exc).__name__}"
    return None


def _page(
    run: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    notes: Mapping[str, str],
    folder_spent: float,
) -> str:
    axes: list[str] = list(run.get("axes") or [])
    order: Mapping[str, list[str]] = run.get("values") or {}
    row_axis = axes[0] if axes else None
    column_axis = axes[1] if len(axes) > 1 else None
    section_axes = axes[2:]
    by_values: dict[tuple[str, ...], Mapping[str, Any]] = {}
    for entry in entries:
        values = entry.get("values") or {}
        by_values[tuple(values.get(axis, _NONE) for axis in axes)] = entry
    sections = []
    section_values = [_values(order, axis, entries) for axis in section_axes]
    for combination in product(*section_values) if section_axes else [()]:
        title = " · ".join(
            f"{axis} {value}" for axis, value in zip(section_axes, combination, strict=True)
        )
        rows = _values(order, row_axis, entries) if row_axis else [_NONE]
        columns = _values(order, column_axis, entries) if column_axis else [_NONE]
        cells = []
        for row in rows:
            cells.append(f'<div class="label row">{_e(row)}</div>')
            for column in columns:
                key = tuple(
                    value
                    for value in (
                        row if row_axis else None,
                        column if column_axis else None,
                        *combination,
                    )
                    if value is not None
                )
                cells.append(_cell(by_values.get(key), run, notes))
        if not any(key[len(axes) - len(section_axes) :] == combination for key in by_values):
            continue  # a combination no job has (an exclude)
        head = '<div class="label corner"></div>' + "".join(
            f'<div class="label column">{_e(column)}</div>' for column in columns
        )
        sections.append(
            f"<section>{f'<h2>{_e(title)}</h2>' if title else ''}"
            f'<div class="grid" style="--columns: {len(columns)}">{head}{"".join(cells)}</div></section>'
        )
    return _TEMPLATE.format(
        title=_e(f"{run.get('recipe', '')} · {run.get('id', '')}"),
        header=_header(run, entries, folder_spent),
        axes=_e(
            f"rows: {row_axis or '-'} · columns: {column_axis or '-'}"
            + (f" · sections: {', '.join(section_axes)}" if section_axes else "")
        ),
        sections="".join(sections),
    )


def _values(
    order: Mapping[str, list[str]], axis: str | None, entries: Sequence[Mapping[str, Any]]
) -> list[str]:
    known = list(order.get(axis or "", []))
    for entry in entries:
        value = (entry.get("values") or {}).get(axis, _NONE)
        if value not in known:
            known.append(value)
    return known


# What the newest record of a job says when its request has not ended.
_IN_FLIGHT = {
    "sending": "sent, no answer yet",
    "submitted": "queued on the server",
    "unfetched": "paid, output not fetched yet",
}


def _cell(entry: Mapping[str, Any] | None, run: Mapping[str, Any], notes: Mapping[str, str]) -> str:
    if entry is None:
        return '<div class="cell empty"></div>'
    status = str(entry.get("status", ""))
    outputs = entry.get("outputs") or []
    facts = [f'<span class="job">{_e(entry.get("job"))}</span>']
    if entry.get("run") != run.get("id"):
        facts.append(f"from run {_e(entry.get('run'))}")
    if entry.get("seed") is not None:
        facts.append(f"seed {_e(entry.get('seed'))}")
    facts.append(_e(f"${float(entry.get('cost_usd') or 0):.4f}".rstrip("0").rstrip(".")))
    picture = ""
    if outputs and outputs[0] in notes:
        picture = f'<a href="{_e(outputs[0])}">{_e(outputs[0])}</a><p class="note">{_e(notes[outputs[0]])}</p>'
    elif outputs:
        thumb = (Path(THUMBS) / Path(outputs[0]).with_suffix(".jpg")).as_posix()
        picture = (
            f'<a href="{_e(outputs[0])}"><img src="{_e(thumb)}" alt="{_e(entry.get("job"))}" '
            'loading="lazy"></a>'
        )
        if len(outputs) > 1:
            picture += (
                '<div class="more">'
                + " ".join(
                    f'<a href="{_e(o)}">{index + 2}</a>' for index, o in enumerate(outputs[1:])
                )
                + "</div>"
            )
    error = (
        f'<p class="error">{_e(entry.get("error"))}</p>'
        if entry.get("error") and status != "skipped"
        else ""
    )
    prompt = entry.get("prompt")
    details = f"<details><summary>prompt</summary><p>{_e(prompt)}</p></details>" if prompt else ""
    return (
        f'<div class="cell {_e(status)}">{picture}<div class="facts">{" · ".join(facts)}</div>'
        f'<div class="status">{_e(_IN_FLIGHT.get(status, status))}</div>{error}{details}</div>'
    )


def _header(
    run: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], folder_spent: float
) -> str:
    counts: dict[str, int] = {}
    for entry in entries:
        status = _IN_FLIGHT.get(str(entry.get("status")), str(entry.get("status")))
        counts[status] = counts.get(status, 0) + 1
    total = len(run.get("recipe_jobs") or run.get("jobs") or entries)
    missing = total - len(entries)
    backend = str(run.get("backend", ""))
    spent = float(run.get("spent_usd") or 0)
    budget = run.get("budget_usd")
    money = f"this run ${spent:.2f} spent" + (
        f" of a ${float(budget):.2f} budget" if budget is not None else ""
    )
    if run.get("unknown_usd"):
        money += f", ${float(run['unknown_usd']):.2f} unknown"
    started = run.get("started")
    when = ""
    if started:
        when = dt.datetime.fromisoformat(str(started)).strftime("%Y-%m-%d %H:%M UTC") + " · "
    where = backend
    if backend.startswith("segmind@"):
        where = backend.removeprefix("segmind@")
        badge = f'<span class="preview-badge">STAND-IN: rendered by {_e(where)}, not Segmind</span>'
    elif backend == "replay":
        badge = '<span class="preview-badge">REPLAY: from a cassette</span>'
    elif backend != "segmind":
        badge = '<span class="preview-badge">PREVIEW: local renders, not Segmind\'s</span>'
    else:
        badge = ""
    tally = " · ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    if missing > 0:
        tally += f" · {missing} not rendered yet"
    took = f"{float(run.get('seconds') or 0):.0f} s"
    return (
        f"<h1>{_e(run.get('recipe'))} {badge}</h1>"
        f'<p class="meta">{_e(total)} jobs: {_e(tally)} · every run into this folder spent ${folder_spent:.2f}</p>'
        f'<p class="meta">{_e(run.get("model"))} on {_e(where)} · {_e(money)} · {_e(when)}'
        f"{_e(took)} · run {_e(run.get('id'))}</p>"
    )


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
:root {{ font-family: system-ui, sans-serif; color: #222; background: #fafaf8; }}
body {{ margin: 0 auto; padding: 1rem; max-width: 1600px; }}
h1 {{ font-size: 1.4rem; margin: 0 0 .3rem; }}
h2 {{ font-size: 1.05rem; margin: 1.5rem 0 .5rem; }}
.meta, .axes {{ color: #555; font-size: .9rem; margin: .2rem 0; }}
.preview-badge {{ background: #d6403a; color: #fff; font-size: .75rem; padding: .15rem .45rem; border-radius: .25rem; vertical-align: middle; }}
section {{ overflow-x: auto; }}
.grid {{ display: grid; grid-template-columns: max-content repeat(var(--columns), minmax(9rem, 15rem)); justify-content: start; gap: .5rem; align-items: start; }}
.label {{ font-weight: 600; font-size: .85rem; padding: .25rem; }}
.label.row {{ align-self: center; }}
.cell {{ background: #fff; border: 1px solid #e3e1dc; border-radius: .4rem; padding: .35rem; font-size: .75rem; min-width: 0; }}
.cell img {{ display: block; width: 100%; height: auto; border-radius: .2rem; background: #eee; }}
.cell.failed, .cell.unknown, .cell.unfetched {{ border-color: #d6403a; background: #fff4f3; }}
.cell.skipped .status {{ color: #777; }}
.cell.empty {{ background: transparent; border: 1px dashed #ddd; min-height: 3rem; }}
.facts {{ margin-top: .25rem; color: #444; overflow-wrap: anywhere; }}
.job {{ font-weight: 600; }}
.status {{ color: #2a7a3b; }}
.cell.failed .status, .cell.unknown .status {{ color: #b3261e; }}
.note {{ color: #777; margin: .25rem 0 0; }}
.error {{ color: #b3261e; margin: .25rem 0 0; overflow-wrap: anywhere; }}
details summary {{ cursor: pointer; color: #555; }}
details p {{ margin: .25rem 0 0; overflow-wrap: anywhere; }}
.more a {{ margin-right: .3rem; }}
@media (max-width: 640px) {{ body {{ padding: .5rem; }} .grid {{ grid-template-columns: max-content repeat(var(--columns), minmax(7rem, 1fr)); }} }}
</style></head>
<body>
<header>{header}<p class="axes">{axes}</p></header>
<main>{sections}</main>
</body></html>
"""
