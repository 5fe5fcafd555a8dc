"""Turn a Segmind API page into a Spec: find the endpoint, protocol, auth, price and parameters."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import ValidationError

from engine.docimport.codesample import Base64Of, CodeSample, Unreadable, read_samples
from engine.docimport.page import Note, Page
from engine.docimport.params import RawParam, read_attributes, read_parameters
from engine.docimport.values import number_value, split_run_together
from engine.errors import Location, SpecImportError, problems_of
from engine.specs import Param, ParamType, Spec

__all__ = ["ImportResult", "import_page", "import_text"]

_POST_URL = re.compile(r"^POST\s*(?P<url>https?://\S+)$")
_URL_LINE = re.compile(r"^(?P<url>https?://\S+)$")
_V2 = re.compile(r"^POST\s+/v2/(?P<slug>[\w.\-]+)")
_V2_SECTION = re.compile(r"^Asynchronous requests \(v2\)")
_PRICE = re.compile(r"^~\s*\$\s*(?P<value>\d+(?:\.\d+)?)$")
_LATENCY = re.compile(r"^~\s*(?P<value>\d+(?:\.\d+)?)\s*s$")
_RETURNS = re.compile(r"^Returns:\s*(?P<kind>.+)$")
_IMAGE_RESPONSE_COMMENT = re.compile(r"response is the generated image", re.IGNORECASE)
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
}
_GENERIC_TITLES = {"api", "api reference", "documentation"}


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
    marks = _Marks.find(page)
    sample = read_samples(page, marks.reference_start)
    if sample.cut_short is not None:
        page.warn(sample.cut_short, "the code sample's payload is cut short; read what is there")
    endpoint, protocol = _endpoint(page, sample, marks)
    params = _params(page, sample, marks)
    spec_fields: dict[str, Any] = {
        "id": _spec_id(spec_id),
        "title": _title(page, endpoint),
        "endpoint": endpoint,
        "protocol": protocol,
        "auth": "bearer" if sample.bearer else "x-api-key",
        "response": _response(page, protocol),
        "price_usd": _price(page, marks),
        "latency_s": _latency(page, marks),
        "source": name,
        "params": params,
    }
    try:
        spec = Spec.model_validate(spec_fields)
    except ValidationError as exc:
        (first, *_) = problems_of(exc)
        raise SpecImportError(
            page.where(None), f"the page gives an invalid spec: {first.field}: {first.problem}"
        ) from exc
    return ImportResult(spec, tuple(page.notes))


def _spec_id(stem: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return slug or "spec"


@dataclass(frozen=True)
class _Marks:
    """Where the page's sections begin."""

    endpoint: int | None
    parameters: int | None
    attributes: int | None

    @classmethod
    def find(cls, page: Page) -> _Marks:
        return cls(
            page.find(re.compile(r"^API Endpoint$")),
            page.find(re.compile(r"^Parameters$")),
            page.find(re.compile(r"^Attributes$")),
        )

    @property
    def reference_start(self) -> int | None:
        found = [m for m in (self.endpoint, self.parameters, self.attributes) if m is not None]
        return min(found) if found else None


def _endpoint(page: Page, sample: CodeSample, marks: _Marks) -> tuple[str, str]:
    url: str | None = None
    for number, text in page.numbered(marks.endpoint or 1):
        post = _POST_URL.match(text)
        if post:
            url = post.group("url")
            break
        if text == "POST" and (nxt := _URL_LINE.match(page.text(number + 1))):
            url = nxt.group("url")
            break
    url = url or sample.url
    try:
        path = urlparse(url).path if url else (f"/v1/{sample.slug}" if sample.slug else None)
    except ValueError as exc:
        raise SpecImportError(
            page.where(marks.endpoint or 1), f"cannot read the endpoint URL {url}: {exc}"
        ) from exc
    if path and not re.fullmatch(r"/\S+", path):
        raise SpecImportError(
            page.where(marks.endpoint or 1), f"cannot read the endpoint URL {url}"
        )
    if not path or path == "/":
        raise SpecImportError(
            page.where(marks.endpoint or 1),
            "found no API endpoint: expected a line like 'POST https://api.segmind.com/v1/<model>' "
            "or a code sample that calls one",
        )
    v2_line = page.find(_V2)
    is_v2 = v2_line is not None or page.find(_V2_SECTION) is not None
    if path.startswith("/workflows/") or "poll_url" in "\n".join(page.lines):
        return path, "workflow"
    if is_v2:
        slug = _V2.match(page.text(v2_line)).group("slug") if v2_line else path.rsplit("/", 1)[-1]  # type: ignore[union-attr]
        return f"/v2/{slug}", "async"
    if not path.startswith("/v1/"):
        page.warn(marks.endpoint, f"endpoint {path} is not under /v1/, /v2/ or /workflows/")
    return path, "sync"


def _title(page: Page, endpoint: str) -> str:
    for _, text in page.numbered():
        if text:
            title = re.sub(r"\s+Serverless API$", "", text).strip()
            if title.casefold() not in _GENERIC_TITLES:
                return title
            break
    slug = endpoint.rstrip("/").rsplit("/", 1)[-1]
    return " ".join(word.capitalize() for word in re.split(r"[-_]+", slug) if word)


def _response(page: Page, protocol: str) -> str:
    returns = page.find(_RETURNS)
    if returns is not None:
        kind = _RETURNS.match(page.text(returns)).group("kind").lower()  # type: ignore[union-attr]
        if "image" in kind:
            return "image"
        if "json" in kind or "text" in kind or "polling" in kind:
            return "json"
        page.warn(returns, f"unknown response type '{kind}'; taken as JSON")
        return "json"
    if page.find(re.compile(r".*" + _IMAGE_RESPONSE_COMMENT.pattern, re.IGNORECASE)):
        return "image"
    if protocol == "workflow":
        return "json"
    page.warn(None, "the page does not say what the response is; taken as JSON", ("response",))
    return "json"


def _header_value(page: Page, marks: _Marks, pattern: re.Pattern[str]) -> tuple[int, float] | None:
    stop = marks.reference_start
    number = page.find(pattern, 1, stop)
    if number is None:
        return None
    return number, float(pattern.match(page.text(number)).group("value"))  # type: ignore[union-attr]


def _price(page: Page, marks: _Marks) -> float | None:
    found = _header_value(page, marks, _PRICE)
    if found is None:
        page.warn(
            None,
            "the page shows no price (a '~$' line); the spec is unpriced until an overlay sets price_usd",
            ("price_usd",),
        )
        return None
    return found[1]


def _latency(page: Page, marks: _Marks) -> float | None:
    found = _header_value(page, marks, _LATENCY)
    if found is None:
        page.warn(None, "the page shows no latency (a '~12.3s' line)", ("latency_s",))
        return None
    line, value = found
    if value == 0:
        page.warn(
            line,
            "the page gives a latency of ~0.00s, which is no measurement; latency left unknown",
            ("latency_s",),
        )
        return None
    return value


def _params(page: Page, sample: CodeSample, marks: _Marks) -> dict[str, Param]:
    if marks.parameters is not None:
        raws, end = read_parameters(page, marks.parameters)
        if end is None:
            page.warn(
                len(page.lines), "the page ends inside the parameter list; read what is there"
            )
        inferred = False
    else:
        names = list(sample.payload)
        if marks.attributes is not None:
            raws, _ = read_attributes(page, marks.attributes, names)
            if len(raws) < len(names):
                page.warn(
                    marks.attributes,
                    f"the Attributes list describes {len(raws)} of the {len(names)} parameters "
                    "the code sample sends",
                )
            raws += [RawParam(n, sample.payload_lines[n]) for n in names[len(raws) :]]
        else:
            raws = [RawParam(n, sample.payload_lines[n]) for n in names]
            page.warn(None, "the page has no parameter list; parameters read from the code sample")
        inferred = True
        if names:
            page.warn(
                marks.attributes,
                "this page's parameter list names no types: types are inferred from the code "
                "sample's values, and every parameter is required unless the page calls it optional",
            )
    params: dict[str, Param] = {}
    for raw in raws:
        if raw.name in params:
            page.warn(raw.line, f"parameter '{raw.name}' appears twice; the first is kept")
            continue
        params[raw.name] = _param(page, sample, raw, inferred=inferred)
    if not inferred:
        for key, line in sample.payload_lines.items():
            if key not in params:
                page.warn(
                    line, f"the code sample sends '{key}', which the parameter list does not name"
                )
    return params


def _param(page: Page, sample: CodeSample, raw: RawParam, *, inferred: bool) -> Param:
    examples = sample.examples.get(raw.name, [])
    evidence = ([raw.default] if raw.has_default else []) + examples
    kind, encoding = _type(page, raw, examples, inferred=inferred)
    fields: dict[str, Any] = {
        "type": kind,
        "required": _required(page, raw) if inferred else bool(raw.required),
        "description": " ".join(raw.description).strip(),
    }
    if encoding:
        fields["encoding"] = encoding
    if raw.has_default and raw.default is not None:
        fields["default"] = raw.default
    if raw.minimum is not None:
        fields["minimum"] = raw.minimum
    if raw.maximum is not None:
        fields["maximum"] = raw.maximum
    if raw.type_line is None and not inferred:
        page.warn(
            raw.line,
            f"parameter '{raw.name}' has no type line; taken as a string",
            (raw.name, "type"),
        )
    fields.update(_enum(page, raw, kind, evidence))
    return Param.model_validate(fields)


def _type(
    page: Page, raw: RawParam, examples: list[object], *, inferred: bool
) -> tuple[ParamType, str | None]:
    if any(isinstance(e, Base64Of) for e in examples):
        return "image", "base64"
    if inferred or raw.type_text is None:
        return _type_from_examples(page, raw, examples), None
    kind = _TYPES.get(raw.type_text)
    if kind is None:
        raise SpecImportError(
            page.where(raw.type_line),
            f"parameter '{raw.name}' has type '{raw.type_text}'; expected one of "
            + ", ".join(sorted(set(_TYPES.values()))),
        )
    if kind == "string" and raw.fmt in {"uri", "url", "binary"} and _is_image(raw, examples):
        return "image", "uri"
    return kind, None


def _is_image(raw: RawParam, examples: Iterable[object]) -> bool:
    values = [raw.default, *examples]
    if any(isinstance(v, str) and _IMAGE_EXT.search(v) for v in values):
        return True
    return bool(_IMAGE_WORDS.search(raw.name.replace("_", " ") + " " + " ".join(raw.description)))


def _type_from_examples(page: Page, raw: RawParam, examples: list[object]) -> ParamType:
    known = [e for e in examples if not isinstance(e, Unreadable) and e is not None]
    if not known:
        page.warn(
            raw.line,
            f"cannot tell the type of '{raw.name}' from the page; taken as a string",
            (raw.name, "type"),
        )
        return "string"
    value = known[0]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if (
        isinstance(value, str)
        and value.startswith(("http://", "https://"))
        and _is_image(raw, examples)
    ):
        return "image"
    return "string"


def _required(page: Page, raw: RawParam) -> bool:
    optional = re.compile(rf"^-?\s*{re.escape(raw.name)}\s*\(optional\)", re.IGNORECASE)
    return page.find(optional) is None


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
