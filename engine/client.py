"""Segmind's protocols over one async httpx client, with every outcome sorted by who pays.

v1 sync answers the result to the POST; v2 answers a request id, then status and result URLs; a
workflow answers a ``poll_url`` whose ``output`` is a JSON string of results. Local images are
uploaded to Segmind Storage (``upload-asset``) and sent as URLs, except where a spec wants the
bytes (``encoding: base64``). Request history (``request-history``) tells what became of a request
after the fact. Segmind's three hosts are the only ones the key is sent to. This layer does not
retry: it says what happened (engine.errors' ``Retryable``, ``JobFailed``, ``Abort``,
``Ambiguous``) and the runner decides.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import itertools
import json
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from engine.errors import Abort, Ambiguous, ImageError, JobFailed, Retryable
from engine.localimage import LocalImage, image_kind, read_image
from engine.media import sniff_extension
from engine.specs import Spec

__all__ = [
    "MAX_RATE_WAIT_S",
    "Finished",
    "Output",
    "Polled",
    "SegmindClient",
    "Submitted",
    "reset_wait",
]

# Connections per httpx client (see SegmindClient.__post_init__).
_SHARD = 8
_RETRY = {429, 500, 502, 503, 504}
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/mp4": ".m4a",
}
# The longest any rate limit's reset time is believed: a wrong clock or format must not stall a run.
MAX_RATE_WAIT_S = 120.0
# A 406 about money stops the run; any other 406 (a refused parameter, a content type) fails its job.
_MONEY = re.compile(r"credit|balance|spend|cap\b|limit|insufficient|billing|payment|quota", re.I)
_FINISHED = {"COMPLETED", "SUCCEEDED", "SUCCESS"}


@dataclass(frozen=True)
class Output:
    """One result file."""

    data: bytes
    extension: str


@dataclass(frozen=True)
class Submitted:
    """A queued request: what to poll."""

    request_id: str
    status_url: str
    result_url: str


@dataclass(frozen=True)
class Finished:
    """A completed request: the files it answered, the URLs of those still to download, and what
    Segmind said about money (``charge_source`` names where ``charged_usd`` came from) and time."""

    outputs: tuple[Output, ...]
    urls: tuple[str, ...] = ()
    request_id: str | None = None
    credits: float | None = None
    charged_usd: float | None = None
    charge_source: str | None = None
    inference_s: float | None = None


@dataclass(frozen=True)
class Polled:
    """One status poll's answer: the state, its body, and what the headers said about money."""

    state: str
    body: Mapping[str, Any]
    credits: float | None = None
    charged: float | None = None


@dataclass
class _Meta:
    credits: float | None = None
    charged: float | None = None


@dataclass
class SegmindClient:
    """One client per run; ``transport`` swaps the network for an in-process app (the preview).

    ``storage_url`` and ``history_url`` default to ``base_url`` (a stand-in serves all three)."""

    base_url: str
    api_key: str
    transport: httpx.AsyncBaseTransport | None = None
    max_connections: int = 64
    storage_url: str | None = None
    history_url: str | None = None
    # Replaying a cassette: the exception a request with no recording raises, and how to say what
    # changed. Empty when there is no cassette (``except ()`` catches nothing).
    cassette_misses: tuple[type[BaseException], ...] = ()
    explain_miss: Any = None
    # What to do about a miss, for the person who reads it (the CLI and pytest differ).
    miss_advice: str = "re-record with --record new to add it, or --record all to start over"
    # The clock rate-limit reset times are read against (tests inject one).
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    _pool: list[httpx.AsyncClient] = field(init=False)
    # Local images as base64, read once per client (one run) however many jobs send them: not
    # longer, since a file may change between two runs of one process.
    _encodings: dict[Path, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.storage_url = (self.storage_url or self.base_url).rstrip("/")
        self.history_url = (self.history_url or self.base_url).rstrip("/")
        # httpcore rescans its whole pool on every request (encode/httpx#3215): past a few dozen
        # connections that scan is most of the client's time. Several small pools avoid it.
        shards = 1 if self.transport is not None else max(1, -(-self.max_connections // _SHARD))
        size = -(-self.max_connections // shards)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        tls = httpx.create_ssl_context()  # one context for all: loading the CA bundle takes 30 ms
        self._pool = [
            httpx.AsyncClient(
                base_url=self.base_url,
                transport=self.transport,
                verify=tls,
                limits=limits,
                timeout=httpx.Timeout(30.0, connect=10.0),
                headers={"user-agent": "render-engine"},
            )
            for _ in range(shards)
        ]
        self._turn = itertools.cycle(self._pool)
        self._origins = {
            _origin(url) for url in (self.base_url, self.storage_url, self.history_url)
        }

    @property
    def _http(self) -> httpx.AsyncClient:
        return next(self._turn)

    async def aclose(self) -> None:
        for http in self._pool:
            await http.aclose()

    def _auth(self, spec: Spec | None = None) -> dict[str, str]:
        if spec is not None and spec.auth == "bearer":
            return {"authorization": f"Bearer {self.api_key}"}
        return {"x-api-key": self.api_key}

    def _trusted(self, url: str) -> bool:
        """Whether ``url`` is on one of Segmind's hosts: the only ones the key is sent to."""
        target = urlsplit(url)
        if not target.scheme and not target.netloc:
            return True  # relative to the base URL
        return (target.scheme, target.netloc) in self._origins

    # --- requests -----------------------------------------------------------------------------

    async def upload(self, data: bytes, *, name: str = "image") -> str:
        """Upload one image to Segmind Storage as the official SDK does; its persistent URL."""
        kind = image_kind(data) or "png"
        body = {"data_urls": [f"data:image/{kind};base64,{base64.b64encode(data).decode()}"]}
        response = await self._request(
            "POST", f"{self.storage_url}/upload-asset", json=body, headers=self._auth()
        )
        _check(response, self.now)
        answer = _json(response)
        # The SDK reads `file_urls`; Segmind's docs page says `urls`: either will do.
        urls = answer.get("file_urls") or answer.get("urls")
        if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
            raise Ambiguous(
                f"uploaded {name}, but the answer names no URL for it: {sorted(answer)}",
                status=response.status_code,
            )
        return urls[0]

    async def body(
        self, spec: Spec, payload: Mapping[str, Any], *, urls: Mapping[Path, str] | None = None
    ) -> bytes:
        """The JSON body. A local image goes as its uploaded URL (``urls``) where the parameter
        takes a URL, and as base64 where the spec wants the bytes (or where no upload was made);
        a URL is fetched and encoded where the endpoint wants the bytes themselves."""
        resolved: dict[str, Any] = {}
        uploaded = urls or {}
        for name, value in payload.items():
            param = spec.params.get(name)
            if isinstance(value, LocalImage):
                if value.path in uploaded and (param is None or param.encoding != "base64"):
                    resolved[name] = uploaded[value.path]
                    continue
                resolved[name] = self._encoded(value)
            elif (
                param is not None
                and param.encoding == "base64"
                and isinstance(value, str)
                and value.startswith(("http://", "https://"))
            ):
                fetched = await self.download(value)
                resolved[name] = base64.b64encode(fetched.data).decode("ascii")
            else:
                resolved[name] = value
        return json.dumps(resolved, separators=(",", ":")).encode()

    def _encoded(self, image: LocalImage) -> str:
        if image.path not in self._encodings:
            try:
                data = read_image(image)
            except ImageError as exc:
                raise JobFailed(str(exc)) from exc
            self._encodings[image.path] = base64.b64encode(data).decode("ascii")
        return self._encodings[image.path]

    async def send(self, spec: Spec, body: bytes) -> Finished | Submitted:
        """POST the job; v1 answers its result, v2 and workflows a request to poll."""
        timeout = _post_timeout(spec)
        headers = {**self._auth(spec), "content-type": "application/json"}
        try:
            response = await self._http.post(
                spec.endpoint, content=body, headers=headers, timeout=timeout
            )
        except self.cassette_misses as exc:
            raise self._missed(exc) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Retryable(f"could not connect: {self._describe(exc)}") from exc
        except httpx.TransportError as exc:
            raise Ambiguous(
                f"sent, but no answer came back ({self._describe(exc)}); it may have been billed"
            ) from exc
        meta = _check(response, self.now)
        if spec.protocol == "sync":
            return self._sync_result(response, meta)
        data = _json(response)
        request_id = str(data.get("request_id") or "")
        if spec.protocol == "workflow":
            status_url = result_url = data.get("poll_url")
        else:
            status_url = data.get("status_url") or data.get("poll_url")
            result_url = data.get("response_url") or data.get("poll_url")
        if not request_id or not isinstance(status_url, str) or not isinstance(result_url, str):
            raise Ambiguous(
                f"queued, but the answer lacks a request id or its URLs: {sorted(data)}",
                status=response.status_code,
            )
        return Submitted(request_id, status_url, result_url)

    def _sync_result(self, response: httpx.Response, meta: _Meta) -> Finished:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type.startswith(("image/", "video/", "audio/")) or (
            not content_type.endswith("json") and sniff_extension(response.content)
        ):
            # A picture's (a video's, a sound's) bytes, whatever the content type says (a
            # generic binary type happens).
            output = Output(response.content, _extension(response, ""))
            return Finished(
                (output,),
                credits=meta.credits,
                charged_usd=meta.charged,
                charge_source=_source(meta),
            )
        data = _json(response)
        urls, inline = _found(data)
        return Finished(
            inline,
            urls,
            credits=meta.credits,
            charged_usd=meta.charged,
            charge_source=_source(meta),
        )

    async def status(self, spec: Spec, submitted: Submitted) -> Polled:
        """The job's state (QUEUED, PROCESSING, COMPLETED, or one render does not know)."""
        response, meta = await self._get(spec, submitted.status_url)
        data = _json(response)
        state = str(data.get("status", "")).upper()
        if state == "FAILED":
            raise JobFailed(_failure(data), status=response.status_code)
        if state in _FINISHED:
            state = "COMPLETED"
        return Polled(state, data, meta.credits, meta.charged)

    async def result(
        self, spec: Spec, submitted: Submitted, polled: Polled | None = None
    ) -> Finished:
        """What a COMPLETED job answered: its images (URLs to download, or inline base64), and
        what it said about money and time (a workflow's poll answer carries them already)."""
        if polled is None or spec.protocol != "workflow":
            response, meta = await self._get(spec, submitted.result_url)
            body = _json(response)
            credits, charged = meta.credits, meta.charged
        else:
            body, credits, charged = polled.body, polled.credits, polled.charged
        if str(body.get("status", "")).upper() == "FAILED":
            raise JobFailed(_failure(body))
        found: list[Any] = []
        for key in ("output", "images", "image", "outputs"):
            value = body.get(key)
            if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
                try:
                    value = json.loads(value)  # a workflow's output is a JSON string
                except ValueError as exc:
                    raise JobFailed(f"the answer's {key} is not JSON: {value[:80]}") from exc
            found.append(value)
        urls, inline = _found(found)
        if not urls and not inline:
            raise JobFailed(f"the answer holds no image: {str(body)[:160]}")
        found_metrics = body.get("metrics")
        metrics: Mapping[str, Any] = found_metrics if isinstance(found_metrics, Mapping) else {}
        inference = metrics.get("inference_time")
        source = "x-cost" if charged is not None else None
        cost = metrics.get("cost")  # reported by some answers (SEGMIND.md): read when present
        if charged is None and isinstance(cost, int | float) and not isinstance(cost, bool):
            charged, source = float(cost), "metrics.cost"
        return Finished(
            inline,
            urls,
            request_id=submitted.request_id,
            credits=credits,
            charged_usd=charged,
            charge_source=source,
            inference_s=float(inference) if isinstance(inference, int | float) else None,
        )

    async def download(self, url: str) -> Output:
        """One output file. Every failure of the file host is worth trying again: Segmind's files
        are public for days, and a 403 or 404 there is often a file not yet (or briefly not) served."""
        headers = self._auth() if self._trusted(url) else {}
        try:
            response = await self._http.get(url, headers=headers, timeout=60.0)
        except self.cassette_misses as exc:
            raise self._missed(exc) from exc
        except httpx.TransportError as exc:
            raise Retryable(f"could not download {url}: {self._describe(exc)}") from exc
        if response.status_code >= 400:
            raise Retryable(
                f"could not download {url}: {response.status_code} {_error_text(response)}",
                status=response.status_code,
            )
        return Output(response.content, _extension(response, url))

    async def history(self, request_id: str) -> Mapping[str, Any] | None:
        """Request history's record of one request of this account, at any age; None when it
        knows no such request."""
        url = f"{self.history_url}/inference-request/request-history/{request_id}"
        response = await self._request("GET", url, headers=self._auth())
        if response.status_code == 404:
            return None
        _check(response, self.now)
        data = _json(response)
        nested = data.get("data")
        return nested if isinstance(nested, Mapping) else data

    async def history_rows(
        self, *, model: str, since: dt.date, until: dt.date, page: int = 1
    ) -> list[Mapping[str, Any]]:
        """One page (100 rows) of the account's requests of ``model`` in a window of days."""
        params: dict[str, Any] = {
            "page": page,
            "per_page": 100,
            "from_date": since.isoformat(),
            "to_date": until.isoformat(),
            "model_name": model,
        }
        url = f"{self.history_url}/inference-request/request-history"
        response = await self._request("GET", url, headers=self._auth(), params=params)
        _check(response, self.now)
        data = response.json() if response.content else {}
        rows = (
            data
            if isinstance(data, list)
            else next(
                (
                    data[k]
                    for k in ("data", "items", "results", "rows", "requests")
                    if isinstance(data.get(k), list)
                ),
                [],
            )
        )
        return [row for row in rows if isinstance(row, Mapping)]

    async def _request(self, method: str, url: str, **options: Any) -> httpx.Response:
        """A request that changes nothing billable (uploads, history): transport errors retry."""
        try:
            return await self._http.request(method, url, **options)
        except self.cassette_misses as exc:
            raise self._missed(exc) from exc
        except httpx.TransportError as exc:
            raise Retryable(f"could not reach {_origin(url)}: {self._describe(exc)}") from exc

    async def _get(self, spec: Spec, url: str) -> tuple[httpx.Response, _Meta]:
        # An answer may name any URL: the key goes only to Segmind's own hosts, never elsewhere.
        headers = self._auth(spec) if self._trusted(url) else {}
        try:
            response = await self._http.get(url, headers=headers)
        except self.cassette_misses as exc:
            raise self._missed(exc) from exc
        except httpx.TransportError as exc:
            # A GET changes nothing: asking again is always safe.
            raise Retryable(f"could not poll: {self._describe(exc)}") from exc
        if response.status_code == 422:
            raise JobFailed(_failure(_json(response)), status=422)
        if response.status_code == 404:
            raise Ambiguous(
                "the request is unknown or expired (404): it may have been billed", status=404
            )
        return response, _check(response, self.now)

    def _describe(self, exc: Exception) -> str:
        """An error in words, with the key cut out of it (some transport errors quote headers)."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.api_key:
            text = text.replace(self.api_key, "[the API key]")
            text = text.replace(repr(self.api_key.encode())[2:-1], "[the API key]")
        return text

    def _missed(self, miss: BaseException) -> JobFailed:
        """A replay asked for something the cassette never recorded: fail the job, never send it."""
        changed = self.explain_miss(miss) if self.explain_miss else ""
        detail = f"; what changed since it was recorded:\n{changed}" if changed else ""
        return JobFailed(
            f"the cassette has no recording of this request ({self.miss_advice}){detail}"
        )


def _found(value: Any) -> tuple[tuple[str, ...], tuple[Output, ...]]:
    """Every image an answer names, once: URLs to download, and base64 strings decoded."""
    urls: dict[str, None] = {}
    inline: list[Output] = []
    for item in _leaves(value):
        if item.startswith(("http://", "https://")):
            urls[item] = None
        elif len(item) > 64:
            try:
                data = base64.b64decode(item.split(",", 1)[-1], validate=True)
            except ValueError:
                continue
            if sniff_extension(data):
                inline.append(Output(data, _sniff(data)))
    return tuple(urls), tuple(inline)


def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return []


def _failure(data: Mapping[str, Any]) -> str:
    """Why Segmind says a job failed (v2 says `error`, a workflow `error_message`)."""
    for key in ("error", "error_message", "message", "detail"):
        if data.get(key):
            return str(data[key])
    return "the job FAILED"


def _post_timeout(spec: Spec) -> httpx.Timeout:
    """A sync call runs the whole model before answering: wait well past its latency."""
    if spec.protocol == "sync":
        return httpx.Timeout(max(60.0, 3 * (spec.latency_s or 60.0)), connect=10.0)
    return httpx.Timeout(60.0, connect=10.0)


def _check(response: httpx.Response, now: Callable[[], dt.datetime]) -> _Meta:
    """Sort a non-2xx answer into the outcome classes; return what the headers say about money."""
    meta = _Meta(
        _float(response.headers.get("x-remaining-credits")), _float(response.headers.get("x-cost"))
    )
    status = response.status_code
    if 200 <= status < 300:
        return meta
    detail = _error_text(response)
    if status == 429:
        raise Retryable(
            f"429: {detail}",
            status=429,
            retry_after=reset_wait(response.headers, now()),
            rate_limited=True,
        )
    if status in _RETRY:
        raise Retryable(
            f"{status}: {detail}", status=status, retry_after=reset_wait(response.headers, now())
        )
    if status == 406 and not _MONEY.search(detail):
        raise JobFailed(f"406: {detail} (Segmind refused this request; not billed)", status=406)
    if status in {401, 403, 404, 406}:
        raise Abort(f"{status}: {detail}", status=status)
    if status == 405:
        raise JobFailed(
            f"405: {detail} (the endpoint does not take this request; not billed)", status=405
        )
    if status == 410:
        raise JobFailed(f"410: {detail} (Segmind has retired this model; not billed)", status=410)
    if status >= 500:
        raise Retryable(f"{status}: {detail}", status=status)
    raise JobFailed(f"{status}: {detail}", status=status)


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        text = response.text
        if "<html" in text[:200].lower():
            return response.reason_phrase or "an HTML page"  # Segmind's 405 answers HTML
        return text[:200] or response.reason_phrase
    if isinstance(data, Mapping):
        for key in ("error", "error_message", "detail", "message"):
            if data.get(key):
                return str(data[key])
    return str(data)[:200]


def reset_wait(headers: Mapping[str, str], now: dt.datetime) -> float | None:
    """Seconds to wait before asking again, at most MAX_RATE_WAIT_S: ``Retry-After`` (seconds or an
    HTTP date), else ``x-rate-limit-reset-at-utc``, whose format nobody documents: ISO 8601, epoch
    seconds (or milliseconds) and HTTP-date are all read."""
    for name in ("retry-after", "x-rate-limit-reset-at-utc"):
        value = (headers.get(name) or "").strip()
        if not value:
            continue
        moment = _moment(value, relative=name == "retry-after", now=now)
        if moment is not None:
            return min(MAX_RATE_WAIT_S, max(0.0, (moment - now).total_seconds()))
    return None


def _moment(value: str, *, relative: bool, now: dt.datetime) -> dt.datetime | None:
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if relative:
            return now + dt.timedelta(seconds=number)
        seconds = number / 1000 if number > 1e11 else number  # epoch milliseconds
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise Ambiguous(
            f"the answer is not JSON ({response.status_code})", status=response.status_code
        ) from exc
    if not isinstance(data, Mapping):
        raise Ambiguous("the answer is not a JSON object", status=response.status_code)
    return data


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _source(meta: _Meta) -> str | None:
    return "x-cost" if meta.charged is not None else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _extension(response: httpx.Response, url: str) -> str:
    sniffed = _sniff(response.content)
    if sniffed != ".bin":
        return sniffed  # the bytes, not a generic content type, say what the file is
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if content_type in _EXTENSIONS:
        return _EXTENSIONS[content_type]
    guessed = mimetypes.guess_extension(content_type) if content_type else None
    return guessed or Path(url.split("?", maxsplit=1)[0]).suffix or ".bin"


def _sniff(data: bytes) -> str:
    return sniff_extension(data) or ".bin"
