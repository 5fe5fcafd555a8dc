"""What a page says about the endpoint as a whole: where it is, how it is called, what it returns,
what it costs and how long it takes, and its title."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

from engine.docimport.codesample import CodeSample
from engine.docimport.page import Page
from engine.errors import SpecImportError

__all__ = ["Marks", "endpoint", "latency", "price", "response", "title"]

# "POSThttps://api.segmind.com/v1/x", "POST https://…", "POST/v1/<slug>" (older pages).
_POST = re.compile(r"^POST\s*(?P<target>https?://\S+|/(?:v\d+|workflows)/\S+)$")
# A URL alone, or followed by more of a page stored on one line.
_URL_LINE = re.compile(r"^(?P<url>https?://\S+)(?P<more>\s.*)?$")
_V2 = re.compile(r"^POST\s*/v2/(?P<slug>[\w.\-]+)")
_V2_SECTION = re.compile(r"^Asynchronous requests \(v2\)")
_PRICE = re.compile(
    r"^~?\s*\$\s*(?P<value>\d+(?:\.\d+)?)(?:\s*(?:per\b|/)\s*(?P<unit>[A-Za-z][\w\s-]*?))?\s*$"
)
# What "per <unit>" means one call of the model.
_PER_CALL = re.compile(
    r"^(?:generation|image|call|request|run|output|prediction|inference|video|clip|song|"
    r"track|audio|sample|result)s?$",
    re.IGNORECASE,
)
_LATENCY = re.compile(r"^~\s*(?P<value>\d+(?:\.\d+)?)\s*s$")
_RETURNS = re.compile(r"^Returns:\s*(?P<kind>.+)$")
# "RESPONSE" then "image/jpeg" on older pages.
_CONTENT_TYPE = re.compile(
    r"^(?P<kind>image|video|audio|application)/(?P<sub>[\w.+-]+)$", re.IGNORECASE
)
_KINDS = {"image": "image", "video": "video", "audio": "audio"}
_JSON_WORDS = ("json", "text", "polling", "object", "string")
_IMAGE_RESPONSE_COMMENT = re.compile(r".*response is the generated image", re.IGNORECASE)
_GENERIC_TITLES = {"api", "api reference", "documentation"}
# A first line that is code, an endpoint or a URL, not the model's name.
_NOT_A_TITLE = re.compile(
    r"^\d{1,3}\s*(?:import|from|const|let|var|#|//)|^(?:import|from)\s|[={};]|^POST\b|https?://|^~"
)
_TITLE_LENGTH = 80
_TITLE_WORDS = 10
_WORKFLOW_ID = re.compile(r"^[0-9a-f]{16,}(?:-v\d+)?$")


@dataclass(frozen=True)
class Marks:
    """Where the page's sections begin."""

    endpoint: int | None
    parameters: int | None
    attributes: int | None

    @classmethod
    def find(cls, page: Page) -> Marks:
        return cls(
            page.find(re.compile(r"^API Endpoint$")),
            page.find(re.compile(r"^Parameters$")),
            page.find(re.compile(r"^Attributes$")),
        )

    @property
    def reference_start(self) -> int | None:
        found = [m for m in (self.endpoint, self.parameters, self.attributes) if m is not None]
        return min(found) if found else None


def endpoint(page: Page, sample: CodeSample, marks: Marks) -> tuple[str, str]:
    """The endpoint's path and protocol: from the page's POST line, else the code sample's URL,
    else the model the SDK sample names (the SDK sends it through /v2)."""
    url = _posted(page, marks) or sample.url
    where = page.where(marks.endpoint or 1)
    try:
        path = urlparse(url).path if url else (f"/v2/{sample.slug}" if sample.slug else None)
    except ValueError as exc:
        raise SpecImportError(where, f"cannot read the endpoint URL {url}: {exc}") from exc
    if path and not re.fullmatch(r"/\S+", path):
        raise SpecImportError(where, f"cannot read the endpoint URL {url}")
    if not path or path == "/":
        raise SpecImportError(
            where,
            "found no API endpoint: expected a line like 'POST https://api.segmind.com/v1/<model>' "
            "or a code sample that calls one",
        )
    if path.startswith("/workflows/") or "poll_url" in "\n".join(page.lines):
        return path, "workflow"
    v2 = _v2_slug(page)
    if v2 is not None or page.find(_V2_SECTION) is not None or path.startswith("/v2/"):
        return f"/v2/{v2 or path.rstrip('/').rsplit('/', 1)[-1]}", "async"
    if not path.startswith("/v1/"):
        page.warn(marks.endpoint, f"endpoint {path} is not under /v1/, /v2/ or /workflows/")
    return path, "sync"


def _posted(page: Page, marks: Marks) -> str | None:
    """The URL (or path) of the page's POST line: "POSThttps://…", "POST" then the URL, or the bare
    URL under "API Endpoint". A line where the page was cut may hold half a URL: not read."""
    under = _next_line(page, marks.endpoint)
    for number, text in page.numbered(marks.endpoint or 1):
        post = _POST.match(text)
        if post:
            target, found = number, post.group("target")
        elif text == "POST" or number == under:
            target = number + 1 if text == "POST" else number
            url = _URL_LINE.match(page.text(target))
            found = url.group("url") if url else None
            if url and url.group("more"):
                return found
        else:
            continue
        if found and not page.is_cut(target):
            return found
    return None


def _next_line(page: Page, mark: int | None) -> int | None:
    """The first non-blank line after ``mark``."""
    if mark is None:
        return None
    return next((n for n, text in page.numbered(mark + 1) if text), None)


def _v2_slug(page: Page) -> str | None:
    """The model of a "POST /v2/<slug> · submit + poll" line, unless the page stops inside it."""
    line = page.find(_V2)
    if line is None or page.is_cut(line):
        return None
    match = _V2.match(page.text(line))
    return match.group("slug") if match else None


def title(page: Page, endpoint_path: str, spec_id: str, stop: int | None) -> str:
    """The page's heading; if its first line is no heading (code, an endpoint, a sentence, a
    generic "API"), the model's slug, or for a workflow (whose slug is an id) the file's name."""
    first = next(((n, t) for n, t in page.numbered(1, stop) if t), None)
    heading = re.sub(r"\s+Serverless API$", "", first[1]).strip() if first else ""
    problem = _not_a_heading(heading) if first else "the page has no text before its reference"
    if problem is None:
        return heading
    slug = endpoint_path.rstrip("/").rsplit("/", 1)[-1]
    source = "the model's slug"
    if endpoint_path.startswith("/workflows/") or _WORKFLOW_ID.match(slug):
        slug, source = spec_id, "the page's file name"
    name = " ".join(word.capitalize() for word in re.split(r"[-_]+", slug) if word) or "Untitled"
    page.warn(first[0] if first else None, f"{problem}; took '{name}' from {source}", ("title",))
    return name


def _not_a_heading(text: str) -> str | None:
    """Why the first line of a page is not its heading; None when it is one."""
    if text.casefold() in _GENERIC_TITLES:
        return f"the page's heading '{text}' names no model"
    if _NOT_A_TITLE.search(text):
        return "the page shows no title (its first line is code or an endpoint)"
    if len(text) > _TITLE_LENGTH or len(text.split()) > _TITLE_WORDS or text.endswith((".", ",")):
        return "the page shows no title (its first line is prose)"
    return None


def response(page: Page, protocol: str) -> str:
    """What a call returns: "Returns: Image/Video/Audio/JSON", or an older page's content type."""
    returns = page.find(_RETURNS)
    if returns is not None:
        kind = _RETURNS.match(page.text(returns)).group("kind")  # type: ignore[union-attr]
        return _returned(page, returns, kind)
    for number, text in page.numbered():
        content = _CONTENT_TYPE.match(text)
        if content and not page.is_cut(number):
            return _KINDS.get(content.group("kind").lower(), "json")
    if page.find(_IMAGE_RESPONSE_COMMENT):
        return "image"
    if protocol == "workflow":
        return "json"
    page.warn(None, "the page does not say what the response is; taken as JSON", ("response",))
    return "json"


def _returned(page: Page, number: int, kind: str) -> str:
    word = kind.split(maxsplit=1)[0].lower() if kind.strip() else ""
    if word in _KINDS:
        return _KINDS[word]
    if any(json_word in word for json_word in _JSON_WORDS):
        return "json"
    page.warn(number, f"unknown response type '{kind.lower()}'; taken as JSON", ("response",))
    return "json"


def _header_line(page: Page, marks: Marks, pattern: re.Pattern[str]) -> int | None:
    """The first line above the reference (and its code sample) that matches ``pattern``."""
    return page.find(pattern, 1, marks.reference_start)


def price(page: Page, marks: Marks) -> float | None:
    """The price of one call: "~$0.02", "$0.05 per generation". A price per second (or per
    anything but a call) is not a price per call: the spec stays unpriced."""
    line = _header_line(page, marks, _PRICE)
    match = _PRICE.match(page.text(line)) if line is not None else None
    if line is None or match is None:
        page.warn(
            None,
            "the page shows no price (a line like '~$0.05' or '$0.05 per generation'); the spec "
            "is unpriced until an overlay sets price_usd",
            ("price_usd",),
        )
        return None
    if page.is_cut(line):
        page.warn(line, "the page is cut inside its price; the spec is unpriced", ("price_usd",))
        return None
    unit = match.group("unit")
    if unit and not _PER_CALL.match(unit.strip()):
        page.warn(
            line,
            f"the page prices the model at {page.text(line)}, not per call; the spec is unpriced "
            "until an overlay sets price_usd",
            ("price_usd",),
        )
        return None
    return float(match.group("value"))


def latency(page: Page, marks: Marks) -> float | None:
    line = _header_line(page, marks, _LATENCY)
    if line is None or page.is_cut(line):
        page.warn(None, "the page shows no latency (a '~12.3s' line)", ("latency_s",))
        return None
    match = _LATENCY.match(page.text(line))
    assert match is not None
    value = float(match.group("value"))
    if value == 0:
        page.warn(
            line,
            "the page gives a latency of ~0.00s, which is no measurement; latency left unknown",
            ("latency_s",),
        )
        return None
    return value
