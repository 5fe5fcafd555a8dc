"""Files written whole or not at all: a temp file beside the target, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["TEMP_SUFFIX", "atomic_write"]

TEMP_SUFFIX = ".part"
# A written file gets the mode the user's umask gives any new file, not the temp file's 0600.
# Read once, at import, before any thread starts.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, data: bytes | str, *, sync: bool = False) -> None:
    """Write ``data`` to ``path`` through ``.NAME.XXXX.part`` and a rename, so no reader (and no
    kill) ever sees half of it; ``sync`` also pushes it to disk before the rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_UMASK)
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
