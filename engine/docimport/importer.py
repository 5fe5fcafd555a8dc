"""Turn a Segmind API page into a Spec: find the endpoint, protocol, auth, price and parameters."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from engine.docimport import header
from engine.docimport.attributes import read_attributes
from engine.docimport.codesample import Base64Of, CodeSample, Unreadable, read_samples
from engine.docimport.defaults import checked_default
from engine.docimport.page import Note, Page
from engine.docimport.params import RawParam, read_parameters
from engine.docimport.values import number_value, split_run_together
from engine.errors import Location, SpecImportError, problems_of
from engine.specs import Param, ParamType, Spec

__all__ = ["ImportResult", "import_page", "import_text"]

_IMAGE_EXT = re.compile(r"\.(png|jpe?g|webp|gif|bmp|tiff?)(\?.*)?$", re.IGNORECASE)
_IMAGE_WORDS = re.compile(r"\b(image|photo|picture|mask)\b", re.IGNORECASE)
_TYPES: dict[str, ParamType] = {
    "string": "string",
    "str": "string",
    "text": "string",
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "object": "object",
    "dict": "object",
    "image": "image",
}
_TYPE_NAMES = {"integer": "an integer", "number": "a number"}

# Where a parameter's description comes from: the page's list ("page"), an older page's unnamed
# Attributes matched to the sample's keys ("inferred"), or the code sample alone ("sample").
Source = Literal["page", "inferred", "sample"]


@dataclass(frozen=True)
class ImportResult:
    """The spec read from a page, and the warnings about what was read with doubt."""

    spec: Spec
    notes: tuple[Note, ...]


def import_page(path: str | Path, *, spec_id: str | None = None) -> ImportResult:
    """Read the page at ``path``; the spec id defaults to the file's stem."""
    page_path = Path(path)
    try:
        text = page_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecImportError(page_path_location(page_path), "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecImportError(
            page_path_location(page_path), f"cannot read the page: {exc}"
        ) from exc
    return import_text(text, name=page_path.name, spec_id=spec_id or page_path.stem)


def page_path_location(path: Path) -> Location:
    return Location(str(path))


def import_text(text: str, *, name: str, spec_id: str) -> ImportResult:
    """Read a page given as text; ``name`` is how messages and the spec's ``source`` call it."""
    page = Page.from_text(text, name)
    marks = header.Marks.find(page)
    sample = read_samples(page, marks.reference_start)
    if sample.cut_short is not None:
        page.warn(sample.cut_short, "the code sample's payload is cut short; read what is there")
    endpoint, protocol = header.endpoint(page, sample, marks)
    clean_id = _spec_id(spec_id)
    spec_fields: dict[str, Any] = {
        "id": clean_id,
        "title": header.title(page, endpoint, clean_id, marks.reference_start),
        "endpoint": endpoint,
        "protocol": protocol,
        "auth": "bearer" if sample.bearer else "x-api-key",
        "response": header.response(page, protocol),
        "price_usd": header.price(page, marks),
        "latency_s": header.latency(page, marks),
        "source": name,
        "params": _params(page, sample, marks),
    }
    try:
        spec = Spec.model_validate(spec_fields)
    except ValidationError as exc:
        (first, *_) = problems_of(exc)
        raise SpecImportError(
            page.where(None), f"the page gives an invalid spec: {first.field}: {first.problem}"
        ) from exc
    # In the page's order, as a user reads them; notes about the page as a whole come last.
    notes = sorted(page.notes, key=lambda note: (note.line is None, note.line or 0))
    return ImportResult(spec, tuple(notes))


def _spec_id(stem: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return slug or "spec"


def _params(page: Page, sample: CodeSample, marks: header.Marks) -> dict[str, Param]:
    raws, source, cut = _listed(page, sample, marks)
    params: dict[str, Param] = {}
    for raw in raws:
        if raw.name in params:
            page.warn(raw.line, f"parameter '{raw.name}' appears twice; the first is kept")
            continue
        params[raw.name] = _param(page, sample, raw, source)
    if source == "page":
        _sent_but_not_listed(page, sample, params, cut=cut)
    return params


def _listed(
    page: Page, sample: CodeSample, marks: header.Marks
) -> tuple[list[RawParam], Source, bool]:
    """The parameters the page lists, where their facts come from, and whether the page ends
    inside the list."""
    if marks.parameters is not None:
        raws, end = read_parameters(page, marks.parameters, set(sample.payload))
        if end is None:
            page.warn(
                page.last_line(), "the page ends inside the parameter list; read what is there"
            )
        return raws, "page", end is None
    names = list(sample.payload)
    if marks.attributes is not None:
        raws, end, named = read_attributes(page, marks.attributes, names)
        if named:
            if end is None:
                page.warn(
                    page.last_line(), "the page ends inside the Attributes list; read what is there"
                )
            return raws, "page", end is None
        return _unnamed(page, sample, marks.attributes, raws), "inferred", False
    if names:
        page.warn(
            None,
            "the page shows no parameter list (it may be cut before it): parameters read from "
            "the code sample, typed by its values, all taken as optional and without defaults",
        )
    return [RawParam(n, sample.payload_lines[n]) for n in names], "sample", False


def _unnamed(page: Page, sample: CodeSample, line: int, raws: list[RawParam]) -> list[RawParam]:
    """An older page's Attributes that name nothing: descriptions in the sample's order."""
    names = list(sample.payload)
    if len(raws) < len(names):
        page.warn(
            line,
            f"the Attributes list describes {len(raws)} of the {len(names)} parameters "
            "the code sample sends",
        )
    raws += [RawParam(n, sample.payload_lines[n]) for n in names[len(raws) :]]
    if names:
        page.warn(
            line,
            "this page's parameter list names no types: types are inferred from the code "
            "sample's values, and every parameter is required unless the page calls it optional",
        )
    return raws


def _sent_but_not_listed(
    page: Page, sample: CodeSample, params: dict[str, Param], *, cut: bool
) -> None:
    """Keys the sample sends that the list does not describe. Where the page was cut, they are
    parameters the page would have listed after the cut: kept, from the sample. Where the list is
    whole, the page leaves them out: pointed out, not kept."""
    for key, line in sample.payload_lines.items():
        if key in params:
            continue
        if not cut:
            page.warn(
                line, f"the code sample sends '{key}', which the parameter list does not name"
            )
            continue
        params[key] = _param(page, sample, RawParam(key, line), "sample")
        page.warn(
            line,
            f"the page is cut (at line {page.stored_line(page.last_line())}) before it lists "
            f"'{key}', which the code sample sends here: read from the sample as "
            f"{params[key].type}, optional, with no default",
            (key,),
        )


def _param(page: Page, sample: CodeSample, raw: RawParam, source: Source) -> Param:
    examples = sample.examples.get(raw.name, [])
    kind, encoding = _type(page, raw, examples, source)
    fields: dict[str, Any] = {
        "type": kind,
        "required": _required(page, raw, source),
        "description": " ".join(raw.description).strip(),
    }
    if encoding:
        fields["encoding"] = encoding
    if raw.minimum is not None:
        fields["minimum"] = raw.minimum
    if raw.maximum is not None:
        fields["maximum"] = raw.maximum
    evidence = ([raw.default] if raw.has_default else []) + examples
    fields.update(_enum(page, raw, kind, evidence))
    default = checked_default(page, raw, kind, fields)
    if default is not None:
        fields["default"] = default
    if source == "page":
        _check_examples(page, sample, raw.name, kind)
    return Param.model_validate(fields)


def _required(page: Page, raw: RawParam, source: Source) -> bool:
    if source == "page":
        return bool(raw.required)
    if source == "sample":
        return False
    optional = re.compile(rf"^-?\s*{re.escape(raw.name)}\s*\(optional\)", re.IGNORECASE)
    return page.find(optional) is None


def _type(
    page: Page, raw: RawParam, examples: list[object], source: Source
) -> tuple[ParamType, str | None]:
    if any(isinstance(e, Base64Of) for e in examples):
        return "image", "base64"
    if source != "page" or raw.type_text is None:
        if source == "page":
            page.warn(
                raw.line,
                f"parameter '{raw.name}' has no type line; "
                + ("type read from the code sample" if examples else "taken as a string"),
                (raw.name, "type"),
            )
        return _type_from_examples(page, raw, examples, warn=source != "page")
    kind = _TYPES.get(raw.type_text)
    if kind is None and page.is_cut(raw.type_line):
        page.warn(
            raw.type_line,
            f"the page is cut inside the type of '{raw.name}' ('{raw.type_text}'); "
            + ("type read from the code sample" if examples else "taken as a string"),
            (raw.name, "type"),
        )
        return _type_from_examples(page, raw, examples, warn=False)
    if kind is None:
        raise SpecImportError(
            page.where(raw.type_line),
            f"parameter '{raw.name}' has type '{raw.type_text}'; expected one of "
            + ", ".join(sorted(set(_TYPES.values()))),
        )
    if kind == "image" or (
        kind == "string" and raw.fmt in {"uri", "url", "binary"} and _is_image(raw, examples)
    ):
        return "image", "uri"
    return kind, None


def _is_image(raw: RawParam, examples: Iterable[object]) -> bool:
    values = [raw.default, *examples]
    if any(isinstance(v, str) and _IMAGE_EXT.search(v) for v in values):
        return True
    return bool(_IMAGE_WORDS.search(raw.name.replace("_", " ") + " " + " ".join(raw.description)))


def _type_from_examples(
    page: Page, raw: RawParam, examples: list[object], *, warn: bool
) -> tuple[ParamType, str | None]:
    known = [e for e in examples if not isinstance(e, Unreadable) and e is not None]
    if not known:
        if warn:
            page.warn(
                raw.line,
                f"cannot tell the type of '{raw.name}' from the page; taken as a string",
                (raw.name, "type"),
            )
        return "string", None
    value = known[0]
    if isinstance(value, bool):
        return "boolean", None
    if isinstance(value, int):
        return "integer", None
    if isinstance(value, float):
        return "number", None
    if isinstance(value, list):
        return "array", None
    if isinstance(value, dict):
        return "object", None
    if (
        isinstance(value, str)
        and value.startswith(("http://", "https://"))
        and _is_image(raw, examples)
    ):
        return "image", "uri"
    return "string", None


def _check_examples(page: Page, sample: CodeSample, name: str, kind: ParamType) -> None:
    """Say where the sample sends a value the page's type would refuse: 3.5 for an integer, or a
    number spelt as a string ("2"), which Segmind's own samples do."""
    if kind not in _TYPE_NAMES or name not in sample.payload_lines:
        return
    for value in sample.examples.get(name, []):
        if isinstance(value, str) and number_value(value.strip()) is not None:
            # Only a number parameter can take both spellings (`numeric_string`).
            advice = (
                "set numeric_string in an overlay to accept both spellings"
                if kind == "number"
                else "a payload must send it as a number"
            )
            page.warn(
                sample.payload_lines[name],
                f"the code sample sends '{name}' as the string \"{value}\", though the page types "
                f"it {kind}: {advice}",
                (name, "numeric_string" if kind == "number" else "type"),
            )
            return
        if kind == "integer" and isinstance(value, float) and not value.is_integer():
            page.warn(
                sample.payload_lines[name],
                f"the code sample sends '{name}' as {value}, which is not {_TYPE_NAMES[kind]} "
                "as the page types it; the page's type is kept",
                (name, "type"),
            )
            return


def _enum(page: Page, raw: RawParam, kind: ParamType, evidence: list[object]) -> dict[str, Any]:
    allowed = raw.allowed
    if allowed is None:
        return {}
    values: list[Any] | None
    if allowed.runs:
        values = _split_runs(page, raw, evidence)
    elif allowed.quoted:
        values = _typed(allowed.quoted, kind)
    else:
        if not allowed.cut:
            page.warn(
                allowed.line,
                f"'{raw.name}': 'Allowed values' is empty; no list kept",
                (raw.name, "enum"),
            )
        values = None
    if values is None:
        return {}
    result: dict[str, Any] = {"enum": values}
    if allowed.more:
        total = allowed.total or len(values) + allowed.more
        page.warn(
            allowed.line,
            f"'{raw.name}': the page shows {len(values)} of {total} allowed values "
            f"('+{allowed.more} more'); marked incomplete until an overlay completes it",
            (raw.name, "enum"),
        )
        result["enum_complete"] = False
    elif allowed.cut:
        page.warn(
            allowed.line,
            f"'{raw.name}': the page is cut inside its allowed values; the {len(values)} it "
            "shows are marked incomplete until an overlay completes them",
            (raw.name, "enum"),
        )
        result["enum_complete"] = False
    elif allowed.total is not None and allowed.total != len(values):
        page.warn(
            allowed.line,
            f"'{raw.name}': the page says {allowed.total} values but lists {len(values)}",
        )
    return result


def _split_runs(page: Page, raw: RawParam, evidence: list[object]) -> list[Any] | None:
    """Allowed values the page ran together ('1:12:3'), split the one way the default and the
    examples support; None (and a warning) when no reading stands out."""
    assert raw.allowed is not None
    allowed = raw.allowed
    split = split_run_together(allowed.runs, evidence)
    runs = " / ".join(allowed.runs)
    readings = "; ".join(", ".join(map(str, r)) for r in split.others)
    if split.values is None:
        also = f" (it could be read as: {readings})" if readings else ""
        page.warn(
            allowed.line,
            f"'{raw.name}': cannot decide how to split the allowed values '{runs}'{also}; "
            "no list kept: set `enum` in an overlay",
            (raw.name, "enum"),
        )
        return None
    if split.others:
        page.warn(
            allowed.line,
            f"'{raw.name}': read the run-together values '{runs}' as "
            f"{', '.join(map(str, split.values))}, the most regular reading that holds the default "
            f"and the examples (others that fit: {readings})",
            (raw.name, "enum"),
        )
    return list(split.values)


def _typed(values: list[str], kind: ParamType) -> list[Any]:
    if kind in {"integer", "number"}:
        numbers = [number_value(v) for v in values]
        if all(n is not None for n in numbers):
            return numbers
    return list(values)
