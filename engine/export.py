"""``render export RUN --approved DEST``: the approved pictures of a run, copied under names a DAM
accepts, with a manifest (CSV and JSON) saying what made each one.

A name is ``<recipe>-<job id>[-<n>].<ext>`` in lowercase letters, digits and dashes. Exporting again
is idempotent: a file already there with the same bytes is left alone, and one an earlier export
wrote for a picture no longer approved is removed (the manifest says which files export owns).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import OutputError
from engine.files import atomic_write
from engine.outputs import file_sha256
from engine.shots import RunShots, Shot
from engine.verdicts import Judgement, state_of

__all__ = ["Exported", "export_approved"]

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"


@dataclass(frozen=True)
class Exported:
    """What one export did."""

    exported: int
    copied: int
    unchanged: int
    removed: int
    pending: int
    rejected: int


def export_approved(
    run: RunShots, judgements: dict[tuple[str, str], Judgement], dest: Path
) -> Exported:
    """Copy ``run``'s approved pictures into ``dest`` and write its manifest."""
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest}: not a folder; --approved names the folder to export into")
    states = state_of(run, judgements)
    rows: list[dict[str, Any]] = []
    copied = unchanged = 0
    for job, shot in run.shots.items():
        if states[job] != "approved":
            continue
        for index, digest in enumerate(shot.sha256):
            name = _name(run.recipe, shot, index)
            target = dest / name
            if file_sha256(target) == digest:
                unchanged += 1
            else:
                source = run.file(shot, index)
                if source is None:
                    raise OutputError(
                        f"{run.out_dir / shot.outputs[index]}: the approved picture of {job} is "
                        "gone from the run's folder (and was not kept); render it again"
                    )
                atomic_write(target, source.read_bytes(), sync=True)
                copied += 1
            rows.append(_row(run, shot, index, name, judgements[(job, shot.digest)]))
    removed = _remove_stale(dest, {row["file"] for row in rows})
    _write_manifest(dest, rows, axes=run.axes)
    values = list(states.values())
    return Exported(
        exported=len(rows),
        copied=copied,
        unchanged=unchanged,
        removed=removed,
        pending=values.count("pending"),
        rejected=values.count("rejected"),
    )


def _name(recipe: str, shot: Shot, index: int) -> str:
    stem = _slug(f"{recipe}-{shot.job}") + (f"-{index + 1}" if index else "")
    return stem + Path(shot.outputs[index]).suffix.lower()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "shot"


def _row(run: RunShots, shot: Shot, index: int, name: str, judgement: Judgement) -> dict[str, Any]:
    return {
        "file": name,
        "job": shot.job,
        "values": shot.values,
        "model": run.model,
        "prompt": shot.texts.get("prompt") or shot.texts.get("Prompt") or "",
        "texts": shot.texts,
        "seed": shot.seed,
        "cost_usd": shot.cost_usd,
        "sha256": shot.sha256[index],
        "run": shot.run,
        "note": judgement.note or "",
    }


def _remove_stale(dest: Path, keep: set[str]) -> int:
    """Files an earlier export wrote (its manifest names them) that are no longer approved."""
    try:
        earlier = json.loads((dest / MANIFEST_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    removed = 0
    for row in earlier.get("images", []) if isinstance(earlier, dict) else []:
        name = str(row.get("file", "")) if isinstance(row, dict) else ""
        # Only plain names: a manifest someone edited must not point export at other files.
        plain = name and "/" not in name and not name.startswith(".")
        if plain and name not in keep and (dest / name).is_file():
            (dest / name).unlink()
            removed += 1
    return removed


def _write_manifest(dest: Path, rows: list[dict[str, Any]], *, axes: tuple[str, ...]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write(
        dest / MANIFEST_JSON, json.dumps({"images": rows}, indent=2, sort_keys=True) + "\n"
    )
    texts = sorted({name for row in rows for name in row["texts"]})
    columns = ["file", "job", *axes, "model", *texts, "seed", "cost_usd", "sha256", "run", "note"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = {key: value for key, value in row.items() if key in columns}
        flat.update({axis: row["values"].get(axis, "") for axis in axes})
        flat.update({name: row["texts"].get(name, "") for name in texts})
        writer.writerow({key: _cell(value) for key, value in flat.items()})
    atomic_write(dest / MANIFEST_CSV, buffer.getvalue())


def _cell(value: Any) -> Any:
    """A text a spreadsheet would run as a formula (``=…``, ``+…``, ``-…``, ``@…``) kept as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
