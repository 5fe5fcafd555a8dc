"""Output files written whole or not at all (temp file, fsync, rename), and the run's manifest.

No run destroys what an earlier run made: when a job's file is replaced by a different picture,
the earlier one is kept in ``.history/`` under its sha256, so any two runs stay comparable
(``render gc`` bounds that folder).

Everything a run writes stays inside its output folder: a symbolic link inside it (which would send
images, manifest lines or thumbnails elsewhere) is refused before anything is written. The manifest
gets a line when a job's request is about to leave, when it is queued, and when it ends, each with
the payload's hash: it is the second record, after the ledger, that keeps a run from paying twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from engine.errors import OutputError
from engine.files import TEMP_SUFFIX, atomic_write

__all__ = ["HISTORY", "MANIFEST", "OutputStore", "file_sha256"]

MANIFEST = "manifest.jsonl"
HISTORY = ".history"


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class OutputStore:
    """The output folder of a recipe: images under their plan paths, one manifest line per event."""

    def __init__(self, root: Path) -> None:
        # Absolute, so that runs from other working folders find the same files.
        self.root = root.absolute()
        self.manifest = self.root / MANIFEST
        self._cut_line = False

    def prepare(self) -> None:
        """Before a run writes here: refuse links out of the folder, clear what a killed run left."""
        self.root.mkdir(parents=True, exist_ok=True)
        links, stale = [], []
        for path in _walk(self.root):
            if path.is_symlink():
                links.append(path)
            elif path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX):
                stale.append(path)  # a kill between writing a temp file and renaming it
        if links:
            shown = ", ".join(str(path.relative_to(self.root)) for path in links[:3])
            more = f" and {len(links) - 3} more" if len(links) > 3 else ""
            raise OutputError(
                f"{self.root}: the output folder holds symbolic links ({shown}{more}); render "
                "writes only inside its output folder: remove them, or choose another --out"
            )
        for path in stale:
            path.unlink(missing_ok=True)
        # A kill mid-append leaves a line without its newline: end it before adding the next.
        if self.manifest.exists() and self.manifest.stat().st_size:
            with self.manifest.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                self._cut_line = handle.read(1) != b"\n"

    def paths_for(self, planned: str, extensions: Sequence[str]) -> list[str]:
        """The plan's path for the first output, ``-2``, ``-3``… beside it for more (``samples``);
        the extension is the one the bytes have (a PNG is saved as .png), else the plan's."""
        path = PurePosixPath(planned)
        stem = str(path.with_suffix(""))
        paths = []
        for index, found in enumerate(extensions):
            extension = found if found != ".bin" else path.suffix
            paths.append(f"{stem}{extension}" if index == 0 else f"{stem}-{index + 1}{extension}")
        return paths

    def write(self, relative: str, data: bytes) -> str:
        """Write one output file atomically, keeping the picture it replaces; returns its sha256."""
        target = self._inside(relative)
        digest = hashlib.sha256(data).hexdigest()
        earlier = file_sha256(target) if target.is_file() else None
        if earlier is not None and earlier != digest:
            self._keep(target, earlier)
        atomic_write(target, data, sync=True)
        return digest

    def kept(self, relative: str, sha256: str) -> Path | None:
        """The file that held ``sha256`` under ``relative``: the file itself while it still does,
        else the copy kept when a later run replaced it; None when neither is there."""
        current = self.root / relative
        if file_sha256(current) == sha256:
            return current
        kept = self.root / HISTORY / f"{sha256}{PurePosixPath(relative).suffix}"
        return kept if kept.is_file() else None

    def _keep(self, target: Path, sha256: str) -> None:
        kept = self.root / HISTORY / f"{sha256}{target.suffix}"
        if not kept.exists():
            kept.parent.mkdir(exist_ok=True)
            # A hard link costs no space and no copy; the rename that replaces ``target`` then
            # leaves the link holding the earlier bytes.
            try:
                os.link(target, kept)
            except OSError:
                atomic_write(kept, target.read_bytes(), sync=True)

    def _inside(self, relative: str) -> Path:
        target = self.root / relative
        # A link made after the run started could still lead out: the folder is checked again.
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(self.root.resolve()):
            raise OutputError(f"{target}: this path leads out of the output folder {self.root}")
        return target

    def copy_in(self, source: Path, target: str) -> str:
        """A file an earlier job wrote (here or in another folder), under this job's path; its hash."""
        if source == self.root / target:
            return file_sha256(source) or ""
        return self.write(target, source.read_bytes())

    def intact(
        self, paths: Sequence[str], hashes: Sequence[str], *, root: Path | None = None
    ) -> bool:
        """Whether every file a job wrote is still there under ``root`` (this folder), byte for byte."""
        if not paths or len(paths) != len(hashes):
            return False
        base = root if root is not None else self.root
        return all(file_sha256(base / p) == h for p, h in zip(paths, hashes, strict=True))

    def record(self, entry: Mapping[str, Any], *, sync: bool = True) -> None:
        """Append one manifest line; ``sync`` also pushes it to disk before going on (a line that
        says a request is about to leave need only survive a kill, which a write does)."""
        if self.manifest.is_symlink():
            raise OutputError(f"{self.manifest}: the manifest is a symbolic link; remove it")
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
        if self._cut_line:
            line = "\n" + line
            self._cut_line = False
        with self.manifest.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())

    def sync(self) -> None:
        """Push the manifest's written lines to disk."""
        with self.manifest.open("rb") as handle:
            os.fsync(handle.fileno())

    def write_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """A run's summary, beside the manifest, for its report."""
        target = self._inside(f"runs/{run_id}.json")
        atomic_write(target, json.dumps(summary, indent=2, sort_keys=True).encode(), sync=True)

    def entries(self, run_id: str | None = None) -> list[dict[str, Any]]:
        if not self.manifest.exists():
            return []
        found = []
        for line in self.manifest.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill is not evidence of anything
            if isinstance(entry, dict) and (run_id is None or entry.get("run") == run_id):
                found.append(entry)
        return found

    def history(self) -> dict[str, list[dict[str, Any]]]:
        """Each job's manifest lines, newest first."""
        by_job: dict[str, list[dict[str, Any]]] = {}
        for entry in reversed(self.entries()):
            by_job.setdefault(str(entry.get("job")), []).append(entry)
        return by_job


def _walk(root: Path) -> Iterable[Path]:
    """Every path under ``root``, links reported but never followed."""
    for folder, names, files in os.walk(root, followlinks=False):
        for name in (*names, *files):
            yield Path(folder) / name
