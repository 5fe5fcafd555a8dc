"""Segmind's three protocols over one async httpx client, with every outcome sorted by who pays.

v1 sync answers the result to the POST; v2 answers a request id, then status and result URLs; a
workflow answers a ``poll_url`` whose ``output`` is a JSON string of result URLs. Local images are
read and base64-encoded here, when the request is built, never before. This layer does not retry:
it says what happened (:class:`Retryable`, :class:`JobFailed`, :class:`Abort`, :class:`Ambiguous`)
and the runner decides.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import itertools
import json
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from engine.errors import ImageError
from engine.localimage import LocalImage, read_image
from engine.specs import Spec

__all__ = [
    "Abort",
    "Ambiguous",
    "ApiProblem",
    "Finished",
    "JobFailed",
    "Output",
    "Polled",
    "Retryable",
    "SegmindClient",
    "Submitted",
]

_ABORT = {401, 403, 404, 406}
# Connections per httpx client (see SegmindClient.__post_init__).
_SHARD = 8
_RETRY = {429, 500, 502, 503, 504}
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


class ApiProblem(Exception):
    """Something went wrong with a request; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Retryable(ApiProblem):
    """Not billed, worth trying again: 429, 5xx, or a connection that failed before the request left."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class JobFailed(ApiProblem):
    """This job cannot succeed as asked (400, 422, FAILED); not billed; other jobs go on."""


class Abort(ApiProblem):
    """The account cannot go on (401, 403, 404, 406): stop sending."""


class Ambiguous(ApiProblem):
    """The request went out and no answer came back: it may have been billed."""


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
    """A completed request: its files and what Segmind said about money and time."""

    outputs: tuple[Output, ...]
    request_id: str | None = None
    credits: float | None = None
    charged_usd: float | None = None
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
    """One client per run; ``transport`` swaps the network for an in-process app (the preview)."""

    base_url: str
    api_key: str
    transport: httpx.AsyncBaseTransport | None = None
    max_connections: int = 64
    # Replaying a cassette: the exception a request with no recording raises, and how to say what
    # changed. Empty when there is no cassette (``except ()`` catches nothing).
    cassette_misses: tuple[type[BaseException], ...] = ()
    explain_miss: Any = None
    # What to do about a miss, for the person who reads it (the CLI and pytest differ).
    miss_advice: str = "re-record with --record new to add it, or --record all to start over"
    _pool: list[httpx.AsyncClient] = field(init=False)
    # Local images as base64, read once per client (one run) however many jobs send them: not
    # longer, since a file may change between two runs of one process.
    _encodings: dict[Path, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # httpcore rescans its whole pool on every request (encode/httpx#3215): past a few dozen
        # connections that scan is most of the client's time. Several small pools avoid it.
        shards = 1 if self.transport is not None else max(1, -(-self.max_connections // _SHARD))
        size = -(-self.max_connections // shards)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        tls = httpx.create_ssl_context()  # one context for all: loading the CA bundle takes 30 ms
        self._pool = [
            httpx.AsyncClient(
                base_url=self.base_url.rstrip("/"),
                transport=self.transport,
                verify=tls,
                limits=limits,
                timeout=httpx.Timeout(30.0, connect=10.0),
                headers={"user-agent": "render-engine"},
            )
            for _ in range(shards)
        ]
        self._turn = itertools.cycle(self._pool)

    @property
    def _http(self) -> httpx.AsyncClient:
        return next(self._turn)

    async def aclose(self) -> None:
        for http in self._pool:
            await http.aclose()

    def _auth(self, spec: Spec) -> dict[str, str]:
        if spec.auth == "bearer":
            return {"authorization": f"Bearer {self.api_key}"}
        return {"x-api-key": self.api_key}

    # --- requests -----------------------------------------------------------------------------

    async def body(self, spec: Spec, payload: Mapping[str, Any]) -> bytes:
        """The JSON body: local images read and base64-encoded now; URLs fetched where the
        endpoint wants the bytes themselves (``encoding: base64``)."""
        resolved: dict[str, Any] = {}
        for name, value in payload.items():
            param = spec.params.get(name)
            if isinstance(value, LocalImage):
                if value.path not in self._encodings:
                    try:
                        data = read_image(value)
                    except ImageError as exc:
                        raise JobFailed(str(exc)) from exc
                    self._encodings[value.path] = base64.b64encode(data).decode("ascii")
                resolved[name] = self._encodings[value.path]
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
        meta = _check(response)
        if spec.protocol == "sync":
            outputs = tuple(await self._outputs_of(response))
            return Finished(outputs, credits=meta.credits, charged_usd=meta.charged)
        data = _json(response)
        request_id = str(data.get("request_id") or "")
        status_url = data.get("poll_url") if spec.protocol == "workflow" else data.get("status_url")
        result_url = (
            data.get("poll_url") if spec.protocol == "workflow" else data.get("response_url")
        )
        if not request_id or not isinstance(status_url, str) or not isinstance(result_url, str):
            raise Ambiguous(
                f"queued, but the answer lacks a request id or its URLs: {sorted(data)}",
                status=response.status_code,
            )
        return Submitted(request_id, status_url, result_url)

    async def status(self, spec: Spec, submitted: Submitted) -> Polled:
        """The job's state (QUEUED, PROCESSING, COMPLETED) and the answer that said so."""
        response, meta = await self._get(spec, submitted.status_url)
        data = _json(response)
        state = str(data.get("status", "")).upper()
        if state == "FAILED":
            raise JobFailed(str(data.get("error") or "the job FAILED"), status=response.status_code)
        return Polled(state, data, meta.credits, meta.charged)

    async def result(
        self, spec: Spec, submitted: Submitted, polled: Polled | None = None
    ) -> Finished:
        """The outputs of a COMPLETED job (a workflow's poll answer carries them already)."""
        if polled is None or spec.protocol != "workflow":
            response, meta = await self._get(spec, submitted.result_url)
            body = _json(response)
            credits, charged = meta.credits, meta.charged
        else:
            body, credits, charged = polled.body, polled.credits, polled.charged
        if str(body.get("status", "")).upper() == "FAILED":
            raise JobFailed(str(body.get("error") or "the job FAILED"))
        output = body.get("output")
        if isinstance(output, str) and spec.protocol == "workflow":
            try:
                output = json.loads(output)
            except ValueError as exc:
                raise JobFailed(f"the workflow's output is not JSON: {output[:80]}") from exc
        outputs = await self._collect(output)
        found = body.get("metrics")
        metrics: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        inference = metrics.get("inference_time")
        cost = metrics.get("cost")  # reported by some answers (SEGMIND.md): read when present
        if charged is None and isinstance(cost, int | float) and not isinstance(cost, bool):
            charged = float(cost)
        return Finished(
            tuple(outputs),
            request_id=submitted.request_id,
            credits=credits,
            charged_usd=charged,
            inference_s=float(inference) if isinstance(inference, int | float) else None,
        )

    async def download(self, url: str) -> Output:
        try:
            response = await self._http.get(url, timeout=60.0)
        except self.cassette_misses as exc:
            raise self._missed(exc) from exc
        except httpx.TransportError as exc:
            raise Retryable(f"could not download {url}: {self._describe(exc)}") from exc
        _check(response)
        return Output(response.content, _extension(response, url))

    def _trusted(self, url: str) -> bool:
        """Whether ``url`` is on the configured Segmind host: the only one the key is sent to."""
        target = urlsplit(url)
        if not target.scheme and not target.netloc:
            return True  # relative to the base URL
        base = urlsplit(self.base_url)
        return (target.scheme, target.netloc) == (base.scheme, base.netloc)

    async def _get(self, spec: Spec, url: str) -> tuple[httpx.Response, _Meta]:
        # An answer may name any URL: the key goes only to Segmind's own host, never elsewhere.
        headers = self._auth(spec) if self._trusted(url) else {}
        try:
            response = await self._http.get(url, headers=headers)
        except self.cassette_misses as exc:
            raise self._missed(exc) from exc
        except httpx.TransportError as exc:
            # A GET changes nothing: asking again is always safe.
            raise Retryable(f"could not poll: {self._describe(exc)}") from exc
        if response.status_code == 422:
            data = _json(response)
            raise JobFailed(str(data.get("error") or "the job FAILED"), status=422)
        if response.status_code == 404:
            raise Ambiguous(
                "the request is unknown or expired (404): it may have been billed", status=404
            )
        return response, _check(response)

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

    async def _outputs_of(self, response: httpx.Response) -> list[Output]:
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        if content_type.startswith("image/"):
            return [Output(response.content, _EXTENSIONS.get(content_type, ".bin"))]
        return await self._collect(_json(response))

    async def _collect(self, output: Any) -> list[Output]:
        """Every image in an output: URLs are downloaded, base64 strings decoded, nested lists walked."""
        found: list[Output] = []
        for item in _leaves(output):
            if item.startswith(("http://", "https://")):
                found.append(await self.download(item))
            elif len(item) > 64:
                try:
                    data = base64.b64decode(item.split(",", 1)[-1], validate=True)
                except ValueError:
                    continue
                found.append(Output(data, _sniff(data)))
        if not found:
            raise JobFailed(f"the answer holds no image: {str(output)[:120]}")
        return found


def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return []


def _post_timeout(spec: Spec) -> httpx.Timeout:
    """A sync call runs the whole model before answering: wait well past its latency."""
    if spec.protocol == "sync":
        return httpx.Timeout(max(60.0, 3 * (spec.latency_s or 60.0)), connect=10.0)
    return httpx.Timeout(60.0, connect=10.0)


def _check(response: httpx.Response) -> _Meta:
    """Sort a non-2xx answer into the outcome classes; return what the headers say about money."""
    meta = _Meta(
        _float(response.headers.get("x-remaining-credits")), _float(response.headers.get("x-cost"))
    )
    status = response.status_code
    if 200 <= status < 300:
        return meta
    detail = _error_text(response)
    if status in _RETRY:
        raise Retryable(f"{status}: {detail}", status=status, retry_after=_retry_after(response))
    if status in _ABORT:
        raise Abort(f"{status}: {detail}", status=status)
    if status >= 500:
        raise Retryable(f"{status}: {detail}", status=status)
    raise JobFailed(f"{status}: {detail}", status=status)


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, Mapping):
        for key in ("error", "detail", "message"):
            if data.get(key):
                return str(data[key])
    return str(data)[:200]


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or an HTTP date), or ``x-rate-limit-reset-at-utc``."""
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    reset = response.headers.get("x-rate-limit-reset-at-utc")
    if reset:
        try:
            moment = dt.datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds())
    return None


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


def _extension(response: httpx.Response, url: str) -> str:
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if content_type in _EXTENSIONS:
        return _EXTENSIONS[content_type]
    guessed = mimetypes.guess_extension(content_type) if content_type else None
    return guessed or (Path(url.split("?", maxsplit=1)[0]).suffix or _sniff(response.content))


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[8:12] == b"WEBP":
        return ".webp"
    return ".bin"
