"""Test helpers: write small file trees from dedented text, and find the shared Segmind pages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DOCS = ROOT.parent / "shared" / "segmind-docs"
SPEC_IDS = (
    "scenecraft",
    "ai-product-photography",
    "consistent-character",
    "sd1.5-scifi",
    "furniture-staging",
)


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative path → text, dedented, or bytes) under ``root``; returns ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def shared_page(spec_id: str) -> Path:
    """The seed API page for ``spec_id``; skips the test where ../shared/segmind-docs is absent."""
    path = SHARED_DOCS / f"{spec_id}.txt"
    if not path.is_file():
        pytest.skip(f"{SHARED_DOCS} is absent: the seed API pages are not beside the project")
    return path
