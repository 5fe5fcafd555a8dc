"""A reference to an image file on disk, kept as a path until a request is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalImage"]


@dataclass(frozen=True, slots=True)
class LocalImage:
    """An image parameter's value that names a local file; it is base64-encoded only when sent."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)
