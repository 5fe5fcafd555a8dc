"""``render specs add PAGE``: a Segmind API page imported into the user's spec folder, so a recipe
can name the model at once; an overlay beside it, empty until the user corrects what the page got
wrong, and applied every time the page is added again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.docimport import Note, apply_overlay, import_page, load_overlay
from engine.errors import SpecError
from engine.files import atomic_write
from engine.settings import user_specs_dir
from engine.specs import Spec, shipped_specs_dir, spec_to_yaml

__all__ = ["Added", "add_spec"]

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

EMPTY_OVERLAY = """\
# Corrections to what render read from {page} into {id}.yaml. Each correction sets fields of the
# spec, or of one parameter, and says why; then add the page again to apply them:
#   render specs add {page} --id {id}
#
# corrections:
#   - param: steps            # a parameter (leave out `param:` to correct the spec itself)
#     set: {{maximum: 50, default: 25}}
#     reason: The page's table says 1-100, but Segmind answers 400 above 50.
#   - set: {{price_usd: 0.02}}
#     reason: The page shows no price; the billing page says $0.02 a generation.
corrections: []
"""


@dataclass(frozen=True)
class Added:
    """What ``add_spec`` wrote: the spec, where, its overlay, what was read with doubt, and
    whether it replaces a shipped spec of the same id."""

    spec: Spec
    path: Path
    overlay: Path
    overlay_created: bool
    notes: tuple[Note, ...]
    replaces_shipped: bool


def add_spec(page: Path, *, spec_id: str | None = None) -> Added:
    """Import ``page`` into the user's spec folder as ``spec_id`` (default: the model's slug),
    applying the overlay beside it when there is one, else writing an empty one."""
    result = import_page(page)
    chosen = spec_id or result.spec.id
    if not _ID.match(chosen):
        raise SpecError(
            f"'{chosen}' cannot be a spec id: use lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    folder = user_specs_dir()
    spec = result.spec.model_copy(update={"id": chosen})
    notes = list(result.notes)
    overlay = folder / "overlays" / f"{chosen}.yaml"
    created = not overlay.exists()
    if created:
        atomic_write(overlay, EMPTY_OVERLAY.format(page=page, id=chosen))
    else:
        corrections, doc = load_overlay(overlay)
        spec, more = apply_overlay(spec, corrections, doc)
        answered = {
            (key,) if c.param is None else (c.param, key)
            for c in corrections.corrections
            for key in c.set
        }
        notes = [note for note in notes if note.topic not in answered] + more
    path = folder / f"{chosen}.yaml"
    atomic_write(path, spec_to_yaml(spec, overlay=f"overlays/{chosen}.yaml"))
    shipped = shipped_specs_dir()
    return Added(
        spec=spec,
        path=path,
        overlay=overlay,
        overlay_created=created,
        notes=tuple(notes),
        replaces_shipped=shipped is not None and (shipped / f"{chosen}.yaml").exists(),
    )
