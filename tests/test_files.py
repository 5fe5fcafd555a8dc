"""Atomic writes: a file is replaced whole, with no temp file left and the umask's mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.files import atomic_write
from tests.helpers import write_tree


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    write_tree(tmp_path, {"x.txt": "old"})
    atomic_write(tmp_path / "x.txt", "new")
    assert (tmp_path / "x.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_bytes_folders_and_modes(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a" / "b.bin", b"\x00\x01", sync=True)
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a" / "b.bin").stat().st_mode) == 0o666 & ~umask
