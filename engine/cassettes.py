"""vcrpy cassettes: record a run's HTTP, replay it offline byte for byte, and say what changed.

- Requests match on method, path and the JSON body with key order ignored: concurrent POSTs to one
  URL differ only by body, and vcrpy's default (which ignores the body) would mix them up.
- Credentials never reach a cassette: request and response headers are scrubbed.
- Bodies over a few KB (images, base64 inputs) live out of line in ``blobs/<sha256>`` beside the
  cassette, shared between cassettes, so a cassette is small, diffable text.
- Only a queued job's final status is recorded (QUEUED and PROCESSING answers are not), so a replay
  polls once, whatever the timing was when it was recorded.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import vcr
import yaml
from vcr.cassette import Cassette
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.persisters.filesystem import CassetteNotFoundError
from vcr.request import Request as VcrRequest
from vcr.serialize import deserialize, serialize

from engine.files import atomic_write
from engine.formatting import count
from engine.results import RecordMode

__all__ = [
    "PREVIEW_HOST",
    "CassetteMiss",
    "Recording",
    "blob_dir",
    "payload_diff",
    "recorded_against_preview",
    "use_cassette",
]

_VCR_MODES = {"once": "once", "new": "new_episodes", "all": "all", "none": "none"}
# Past this a body, or a string inside a JSON body (a base64 image), is stored as a blob; under it,
# kept inline where a diff can show it.
BLOB_THRESHOLD = 1024
_SECRET_HEADERS = ("x-api-key", "authorization", "cookie", "set-cookie", "proxy-authorization")
# What a replay needs of an answer's headers; the rest (dates, servers, lengths, the balance, which
# changes on every recording) is noise in a diff.
_KEPT_HEADERS = (
    "content-type",
    "x-cost",
    "retry-after",
    "x-rate-limit-reset-at-utc",
)
_UNFINISHED = {"QUEUED", "PROCESSING"}

CassetteMiss = CannotOverwriteExistingCassetteException


def blob_dir(cassette: Path) -> Path:
    return cassette.parent / "blobs"


PREVIEW_HOST = "preview.local"


def recorded_against_preview(path: Path) -> bool:
    """Whether every interaction of a cassette went to the bundled simulator (free to record again)."""
    text = path.read_text(encoding="utf-8")
    uris = [
        line.split("uri:", 1)[1].strip()
        for line in text.splitlines()
        if line.strip().startswith("uri:")
    ]
    return bool(uris) and all(urlsplit(uri).hostname == PREVIEW_HOST for uri in uris)


@dataclass
class Recording:
    """What one run did to its cassette: how many interactions it found, recorded and wrote."""

    path: Path
    loaded: int = 0
    appended: int = 0
    written: int | None = None
    new_blobs: int = 0

    @property
    def recorded(self) -> int:
        """Interactions this run recorded (the loaded ones are appended too, as they load)."""
        return max(0, self.appended - self.loaded)

    def summary(self) -> str | None:
        """What was written, in words; None when the cassette was not written."""
        if self.written is None:
            return None
        blobs = (
            f", {count(self.new_blobs, 'new blob')} in {blob_dir(self.path)}/"
            if self.new_blobs
            else ""
        )
        return (
            f"wrote {self.path}: {self.written} interactions, {self.recorded} of them recorded "
            f"by this run{blobs}"
        )


# The recording in progress: vcrpy's hooks and persister are functions and classes of ours it
# calls with no context; one cassette is in use at a time.
_current: Recording | None = None


def use_cassette(path: Path, record: RecordMode, *, drop_unused: bool = False) -> Any:
    """The vcrpy context manager for one run (it yields vcrpy's cassette; ``recording()`` says
    what the run did to it); ``drop_unused`` forgets recordings this run did not play (a
    re-recording after a template change leaves no stale interactions behind)."""
    global _current  # noqa: PLW0603 - see above
    _current = Recording(path)
    recorder = vcr.VCR(
        record_mode=_VCR_MODES[record],
        match_on=("render",),
        before_record_request=_bare_request,
        before_record_response=_scrub_and_skip_unfinished,
        decode_compressed_response=True,
        drop_unused_requests=drop_unused,
    )
    recorder.register_matcher("render", _same_request)
    recorder.register_persister(_BlobPersister)
    recorder.register_serializer("render-yaml", _ReadableYaml)
    return _IndexedCassette.use(
        **recorder.get_merged_config(path=str(path), serializer="render-yaml")
    )


class _IndexedCassette(Cassette):  # type: ignore[misc]
    """vcrpy's cassette, finding a request's recordings through an index.

    vcrpy compares each request with every recording (1,000 interactions: a million comparisons);
    our one matcher is equality of a key, so a dict of keys finds the same recordings, in order.
    """

    def _responses(self, request: VcrRequest) -> Any:
        request = self._before_record_request(request)
        if not request:
            return
        index = getattr(self, "_render_index", None)
        if index is None or getattr(self, "_render_indexed", -1) != len(self.data):
            index = {}
            for position, (stored, _) in enumerate(self.data):
                index.setdefault(_key(stored), []).append(position)
            self._render_index, self._render_indexed = index, len(self.data)
        for position in index.get(_key(request), ()):
            yield position, self.data[position][1]


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (JSON bodies) as ``|`` blocks: one field a line, as a diff wants them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not value.endswith((" ", "\t")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


class _ReadableYaml:
    """vcrpy's YAML serializer, with block literals and the safe loader."""

    @staticmethod
    def serialize(cassette_dict: dict[str, Any]) -> str:
        return yaml.dump(
            cassette_dict, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=120
        )

    @staticmethod
    def deserialize(cassette_string: str) -> dict[str, Any]:
        return dict(
            yaml.load(cassette_string, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        )


def _same_request(first: VcrRequest, second: VcrRequest) -> None:
    """Method, path and JSON body (key order ignored), as one key computed once a request: vcrpy
    compares every request with every recording, so the comparison must cost next to nothing."""
    if _key(first) != _key(second):
        raise AssertionError("a different request")


def _key(request: VcrRequest) -> tuple[str, str, str]:
    cached: tuple[str, str, str] | None = getattr(request, "_render_key", None)
    if cached is None:
        body = _json(request.body)
        canonical = (
            json.dumps(body, sort_keys=True, separators=(",", ":")) if body is not None else ""
        )
        cached = (request.method, request.path, canonical)
        request._render_key = cached
    return cached


def _json(body: Any) -> Any:
    if body in (None, b"", ""):
        return None
    raw = body if isinstance(body, bytes) else str(body).encode()
    try:
        return json.loads(raw)
    except ValueError:
        return hashlib.sha256(raw).hexdigest()


def _bare_request(request: VcrRequest) -> VcrRequest:
    """No request header is kept: matching never looks at them, and the key is one of them."""
    for name in list(request.headers):
        del request.headers[name]
    return request


def recording() -> Recording | None:
    """What the last cassette run found, recorded and wrote."""
    return _current


def _scrub_and_skip_unfinished(response: dict[str, Any]) -> dict[str, Any] | None:
    kept = _scrub_and_skip(response)
    if kept is not None and _current is not None:
        _current.appended += 1
    return kept


def _scrub_and_skip(response: dict[str, Any]) -> dict[str, Any] | None:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() not in _KEPT_HEADERS or name.lower() in _SECRET_HEADERS:
            del headers[name]
    body = response.get("body", {}).get("string", b"")
    if isinstance(body, bytes) and len(body) < 2048 and body.startswith(b"{"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        queued_answer = isinstance(data, dict) and any(
            k in data for k in ("status_url", "response_url", "poll_url")
        )
        if isinstance(data, dict) and data.get("status") in _UNFINISHED and not queued_answer:
            return None  # a poll that found the job unfinished: only the end is worth replaying
    return response


class _BlobPersister:
    """Saves cassettes with large bodies moved to ``blobs/<sha256>``, and puts them back on load."""

    @classmethod
    def load_cassette(cls, cassette_path: str, serializer: Any) -> Any:
        path = Path(cassette_path)
        if not path.is_file() or not path.read_text(encoding="utf-8").strip():
            raise CassetteNotFoundError()
        requests, responses = deserialize(path.read_text(encoding="utf-8"), serializer)
        if _current is not None:
            _current.loaded = len(requests)
        blobs = blob_dir(path)
        for request in requests:
            request.body = _inline(request.body, blobs)
        for response in responses:
            body = response.get("body", {})
            body["string"] = _inline(body.get("string"), blobs)
        return requests, responses

    @staticmethod
    def save_cassette(cassette_path: str, cassette_dict: dict[str, Any], serializer: Any) -> None:
        path = Path(cassette_path)
        blobs = blob_dir(path)
        blobs.mkdir(parents=True, exist_ok=True)
        for request in cassette_dict["requests"]:
            request.body = _out_of_line(request.body, blobs)
        for response in cassette_dict["responses"]:
            body = response.get("body", {})
            body["string"] = _out_of_line(body.get("string"), blobs)
        atomic_write(path, serialize(cassette_dict, serializer))
        if _current is not None:
            _current.written = len(cassette_dict["requests"])


_BLOB_PREFIX = "blob:sha256:"


def _out_of_line(body: Any, blobs: Path) -> Any:
    """A JSON body keeps its shape with long strings moved out; any other large body moves whole."""
    raw = body.encode() if isinstance(body, str) else body
    if not isinstance(raw, bytes) or len(raw) <= BLOB_THRESHOLD:
        return body
    try:
        data = json.loads(raw)
    except ValueError:
        return _BLOB_PREFIX + _store(raw, blobs)
    if not isinstance(data, dict | list):
        return _BLOB_PREFIX + _store(raw, blobs)
    return json.dumps(_values_out(data, blobs), indent=0, sort_keys=True, ensure_ascii=False)


def _values_out(value: Any, blobs: Path) -> Any:
    if isinstance(value, str) and len(value) > BLOB_THRESHOLD:
        return _BLOB_PREFIX + _store(value.encode(), blobs)
    if isinstance(value, dict):
        return {key: _values_out(item, blobs) for key, item in value.items()}
    if isinstance(value, list):
        return [_values_out(item, blobs) for item in value]
    return value


def _store(raw: bytes, blobs: Path) -> str:
    digest = hashlib.sha256(raw).hexdigest()
    target = blobs / digest
    if not target.exists():
        atomic_write(target, raw)
        if _current is not None:
            _current.new_blobs += 1
    return digest


def _inline(body: Any, blobs: Path) -> Any:
    try:
        text = body.decode() if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        return body  # small binary bodies (a tiny image) stay inline, as bytes

    if not isinstance(text, str):
        return body
    if text.startswith(_BLOB_PREFIX):
        return _load(text, blobs)
    if _BLOB_PREFIX not in text:
        return body
    return json.dumps(_values_in(json.loads(text), blobs), separators=(",", ":")).encode()


def _values_in(value: Any, blobs: Path) -> Any:
    if isinstance(value, str) and value.startswith(_BLOB_PREFIX):
        return _load(value, blobs).decode()
    if isinstance(value, dict):
        return {key: _values_in(item, blobs) for key, item in value.items()}
    if isinstance(value, list):
        return [_values_in(item, blobs) for item in value]
    return value


def _load(reference: str, blobs: Path) -> bytes:
    digest = reference[len(_BLOB_PREFIX) :]
    try:
        return (blobs / digest).read_bytes()
    except OSError as exc:
        raise CassetteNotFoundError(f"missing blob {digest} in {blobs}") from exc


def payload_diff(miss: Any) -> str:
    """What changed between the request a replay asked for and the closest one recorded."""
    wanted = miss.failed_request
    cassette = miss.cassette
    path = urlsplit(wanted.uri).path
    candidates = [
        request
        for request, _ in cassette.data
        if request.method == wanted.method and urlsplit(request.uri).path == path
    ]
    asked = _readable(_json(wanted.body))
    if not candidates:
        return f"nothing was recorded for {wanted.method} {path}"
    closest = max(
        candidates,
        key=lambda r: difflib.SequenceMatcher(None, _readable(_json(r.body)), asked).ratio(),
    )
    diff = difflib.unified_diff(
        _readable(_json(closest.body)).splitlines(),
        asked.splitlines(),
        fromfile="recorded",
        tofile="now",
        lineterm="",
        n=0,
    )
    return "\n".join(line for line in diff if not line.startswith("@@"))


def _readable(payload: Any) -> str:
    """A payload as lines a person can compare: one field a line, a long prompt one clause a line."""
    if not isinstance(payload, Mapping):
        return str(payload)
    lines = []
    for key in sorted(payload):
        value = payload[key]
        if isinstance(value, str) and len(value) > 400 and not value.count(" "):
            value = f"<{len(value)} characters, sha256 {hashlib.sha256(value.encode()).hexdigest()[:12]}>"
        if key.lower() == "prompt" and isinstance(value, str):
            clauses = [clause.strip() for clause in value.split(",")]
            lines.append(f"{key}:")
            lines += [f"    {clause}" for clause in clauses]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join(lines)
