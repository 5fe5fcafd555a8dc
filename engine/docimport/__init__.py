"""Read Segmind API pages into specs (``render specs import``), with overlays for what pages get wrong."""

from __future__ import annotations

from pathlib import Path

from engine.docimport.importer import ImportResult, import_page, import_text
from engine.docimport.overlay import Correction, Overlay, apply_overlay, load_overlay
from engine.docimport.page import Note
from engine.specs import spec_to_yaml

__all__ = [
    "Correction",
    "ImportResult",
    "Note",
    "Overlay",
    "apply_overlay",
    "generate_spec",
    "import_page",
    "import_text",
    "load_overlay",
]


def generate_spec(page: str | Path, *, overlay: str | Path | None = None) -> tuple[str, list[Note]]:
    """The spec file's text for ``page`` corrected by ``overlay``, and the notes to show the user.

    This is what `render specs import` writes and what the drift check compares byte for byte.
    """
    result = import_page(page)
    notes = list(result.notes)
    spec = result.spec
    if overlay is not None:
        corrections, doc = load_overlay(overlay)
        spec, overlay_notes = apply_overlay(spec, corrections, doc)
        notes += overlay_notes
        answered = {
            (key,) if c.param is None else (c.param, key)
            for c in corrections.corrections
            for key in c.set
        }
        notes = [n for n in notes if n.topic not in answered]
    return spec_to_yaml(spec, overlay=Path(overlay).name if overlay else None), notes
