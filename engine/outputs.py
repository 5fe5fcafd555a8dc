"""Output files written whole or not at all (temp file, fsync, rename), and the run's manifest."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from engine.files import TEMP_SUFFIX, atomic_write

__all__ = ["OutputStore", "file_sha256"]

MANIFEST = "manifest.jsonl"


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class OutputStore:
    """The output folder of a recipe: images under their plan paths, one manifest line per job."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest = root / MANIFEST
        self._cut_line = False

    def prepare(self) -> None:
        """Before a run writes here: clear what a killed run may have left half-done."""
        # A kill between writing a temp file and renaming it leaves the temp file.
        for stale in self.root.rglob(f".*{TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
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
        """Write one file atomically; returns its sha256."""
        atomic_write(self.root / relative, data, sync=True)
        return hashlib.sha256(data).hexdigest()

    def place(self, source: str, target: str) -> str:
        """A file an earlier job wrote, under this job's path (copied if the path differs); its hash."""
        if source == target:
            return file_sha256(self.root / source) or ""
        return self.write(target, (self.root / source).read_bytes())

    def intact(self, paths: Sequence[str], hashes: Sequence[str]) -> bool:
        """Whether every file a job wrote is still there, byte for byte."""
        if not paths or len(paths) != len(hashes):
            return False
        return all(file_sha256(self.root / p) == h for p, h in zip(paths, hashes, strict=True))

    def record(self, entry: Mapping[str, Any]) -> None:
        """Append one manifest line and push it to disk before going on."""
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
        if self._cut_line:
            line = "\n" + line
            self._cut_line = False
        with self.manifest.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def write_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """A run's summary, beside the manifest, for its report."""
        self.write(f"runs/{run_id}.json", json.dumps(summary, indent=2, sort_keys=True).encode())

    def entries(self, run_id: str | None = None) -> list[dict[str, Any]]:
        if not self.manifest.exists():
            return []
        found = []
        for line in self.manifest.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill is not evidence of anything
            if run_id is None or entry.get("run") == run_id:
                found.append(entry)
        return found
