"""Overlays: small, reasoned corrections applied to what a page says (full enums, prices, protocols)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.docimport.page import Note
from engine.errors import Location, OverlayError, problems_of
from engine.specs import Param, Spec
from engine.suggest import did_you_mean
from engine.yamlfile import LocatedYaml, load_yaml

__all__ = ["Correction", "Overlay", "apply_overlay", "load_overlay"]

_SPEC_FIELDS = frozenset(Spec.model_fields) - {"params", "notes", "source"}
_PARAM_FIELDS = frozenset(Param.model_fields) - {"notes"}


class Correction(BaseModel):
    """One correction: what to set, on the spec or on one parameter, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    param: str | None = None
    set: dict[str, Any] = Field(min_length=1)
    reason: str = Field(min_length=10)


class Overlay(BaseModel):
    """An overlay file: a list of corrections."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    corrections: tuple[Correction, ...] = ()


def load_overlay(path: str | Path) -> tuple[Overlay, LocatedYaml]:
    """Read and check an overlay file; a problem names the file, line and field."""
    try:
        doc = load_yaml(path)
    except OverlayError:
        raise
    except Exception as exc:
        raise OverlayError(str(exc)) from exc
    if not isinstance(doc.data, dict):
        raise OverlayError(f"{doc.location()}: an overlay is a mapping with a `corrections` list")
    try:
        return Overlay.model_validate(doc.data), doc
    except ValidationError as exc:
        raise OverlayError(problems=problems_of(exc, doc)[:1]) from exc


def apply_overlay(spec: Spec, overlay: Overlay, doc: LocatedYaml) -> tuple[Spec, list[Note]]:
    """The spec with every correction applied; notes for corrections that change nothing."""
    data = spec.model_dump()
    notes: list[Note] = []
    spec_notes: list[str] = list(spec.notes)
    for index, correction in enumerate(overlay.corrections):
        where = ("corrections", index)
        target, allowed, kind = _target(data, correction, doc.location((*where, "param")))
        unchanged = []
        for key, value in correction.set.items():
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                raise OverlayError(
                    f"{doc.location((*where, 'set', key))}: cannot set '{key}' on a {kind.split()[0]}"
                    f"{hint} (settable: {', '.join(sorted(allowed))})"
                )
            if target.get(key) == value and type(target.get(key)) is type(value):
                unchanged.append(key)
            target[key] = value
        if correction.param is not None:
            if "enum" in correction.set and "enum_complete" not in correction.set:
                target["enum_complete"] = True
            target["notes"] = (*target.get("notes", ()), correction.reason.strip())
        else:
            spec_notes.append(correction.reason.strip())
        if unchanged and len(unchanged) == len(correction.set):
            notes.append(
                Note(
                    doc.line(where),
                    f"{doc.path}: the correction of {kind} sets {', '.join(unchanged)} to what the "
                    "page already says; remove it",
                )
            )
    data["notes"] = tuple(spec_notes)
    return _validated(data, overlay, doc), notes


def _target(
    data: dict[str, Any], correction: Correction, where: Location
) -> tuple[dict[str, Any], frozenset[str], str]:
    """What a correction changes (the spec, or one parameter), the fields it may set there, and
    what to call it in a message. A parameter the page lacks is added only with its `type`."""
    if correction.param is None:
        return data, _SPEC_FIELDS, "spec"
    params = data["params"]
    if correction.param not in params and "type" not in correction.set:
        hint = did_you_mean(correction.param, params)
        raise OverlayError(
            f"{where}: the page has no parameter '{correction.param}'{hint} (to add one, give its `type`)"
        )
    target = params.setdefault(correction.param, {"type": correction.set.get("type")})
    return target, _PARAM_FIELDS, f"parameter '{correction.param}'"


def _validated(data: dict[str, Any], overlay: Overlay, doc: LocatedYaml) -> Spec:
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:

        def culprit(loc: Sequence[Any]) -> Location:
            # The spec's field is not in the overlay: blame the correction that set it.
            index = _blame(overlay, [str(p) for p in loc])
            return doc.location(("corrections", index)) if index is not None else doc.location()

        raise OverlayError(problems=problems_of(exc, locate=culprit)[:1]) from exc


def _blame(overlay: Overlay, loc: list[str]) -> int | None:
    """The last correction that touched the field a validation error points at."""
    param = loc[1] if len(loc) > 2 and loc[0] == "params" else None
    key = loc[2] if param else loc[0]
    for index in range(len(overlay.corrections) - 1, -1, -1):
        correction = overlay.corrections[index]
        if correction.param == param and key in correction.set:
            return index
    return None
