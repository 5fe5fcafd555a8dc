"""Readable, path-safe slugs: ``"16:9 (Panorama)"`` → ``16x9``, ``"Brass Arc Lamp"`` → ``brass-arc-lamp``."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["slug"]

_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\b")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slug(value: object) -> str:
    """A slug of ``value``; an aspect ratio keeps only its numbers, as ``WxH``."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    ratio = _RATIO.match(text)
    if ratio:
        return f"{ratio.group(1)}x{ratio.group(2)}"
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NOT_WORD.sub("-", folded.lower()).strip("-") or "_"
