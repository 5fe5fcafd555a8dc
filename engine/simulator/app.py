"""A Segmind-compatible ASGI app: Segmind's paths, auth, status codes and JSON shapes, for our specs.

v1 sync (``POST /v1/{slug}``) answers with the result; v2 (``POST /v2/{slug}``) queues it behind
``/v2/requests/{id}/status``, ``/v2/requests/{id}`` and ``/v1/requests/{id}``; a workflow
(``POST /workflows/{id}``) answers a ``poll_url`` (``/workflows/request/{id}``). Images come from the
preview compositor and are served under ``/files/``. Storage (``/upload-asset``, ``/assets/``) and
request history (``/inference-request/request-history``) are in :mod:`engine.simulator.records`.
``/_simulator/charges`` is ours, not Segmind's: the charge log, for tests that prove nothing was paid
twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.simulator.compositor import Rendered, render_preview
from engine.simulator.config import SimulatorConfig
from engine.simulator.media import preview_audio, preview_video
from engine.simulator.ratewindow import RESET_HEADER, format_reset
from engine.simulator.records import Records
from engine.simulator.state import Job, SimState, Submission
from engine.simulator.storage import inline_in_uri_params, resolve_assets
from engine.simulator.transport import BodyLimit, Dropped
from engine.specs import Spec

__all__ = ["Simulator", "create_app"]

_TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)
_ERRORS = {
    400: "Invalid parameters or request format",
    401: "Missing or invalid API key",
    403: "Access denied",
    404: "Model or endpoint not found",
    406: "Not enough credits to process request",
    429: "Too many requests",
    500: "Internal server error",
    502: "Service temporarily unavailable",
    504: "Request timed out",
}
# A payload value this long is an inline image: history keeps every payload, so equal ones (the same
# product sent to many jobs) are held once.
_INTERN_CHARS = 1024


@dataclass(frozen=True)
class _Admitted:
    """A submission that passed every check, with the fault drawn for it."""

    key: str
    slug: str
    spec: Spec
    payload: dict[str, Any]
    body: bytes
    fault: str | None


class Simulator:
    """The app's behaviour and state, reachable from tests as ``app.state.simulator``."""

    def __init__(
        self, config: SimulatorConfig, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.config = config
        self.state = SimState(
            balance_usd=config.balance_usd,
            retention_s=config.retention(),
            file_retention_s=config.file_retention(),
            lost_for_s=config.lost_for_s,
            **({"clock": clock} if clock is not None else {}),
        )
        self.records = Records(self)
        self.by_v1: dict[str, Spec] = {}
        self.by_v2: dict[str, Spec] = {}
        self.by_workflow: dict[str, Spec] = {}
        self._interned: dict[str, str] = {}
        for spec in config.specs:
            slug = spec.endpoint.strip("/").partition("/")[2]
            if spec.protocol == "workflow":
                self.by_workflow[slug] = spec
            else:
                # Segmind serves every model on v1; the v2 queue serves it too (the SDK's default).
                self.by_v1[slug] = spec
                self.by_v2[slug] = spec

    # --- helpers ------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        self.state.settle()
        return {"x-remaining-credits": f"{self.state.balance_usd:.4f}"}

    def error(self, status: int, detail: str | None = None, **headers: str) -> JSONResponse:
        return JSONResponse(
            {"error": detail or _ERRORS[status]}, status, headers={**self.headers(), **headers}
        )

    def key_of(self, request: Request) -> str | None:
        """The caller's API key (``x-api-key``, or ``Authorization: Bearer``), if accepted."""
        key = request.headers.get("x-api-key", "")
        authorization = request.headers.get("authorization", "")
        if not key and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not key or (self.config.key is not None and key != self.config.key):
            return None
        return key

    def _rate_limited(self, reset_at: float) -> JSONResponse:
        """A 429 as Segmind sends it: no Retry-After, the moment to come back in its own header."""
        moment = self.state.utc(reset_at).timestamp()
        return self.error(429, **{RESET_HEADER: format_reset(moment, self.config.reset_format)})

    @staticmethod
    def samples(payload: Mapping[str, Any]) -> int:
        samples = payload.get("samples", 1)
        valid = isinstance(samples, int) and not isinstance(samples, bool) and samples > 0
        return samples if valid else 1

    def price(self, spec: Spec, payload: Mapping[str, Any]) -> float:
        base = spec.price_usd if spec.price_usd is not None else self.config.unpriced_usd
        return base * self.config.charge_factor * self.samples(payload)

    async def render(self, spec: Spec, payload: Mapping[str, Any]) -> list[Rendered]:
        count = self.samples(payload)
        # A model that answers a sound or a video gets a placeholder of that kind (media.py).
        if spec.response == "audio":
            return [Rendered(preview_audio(payload), "audio/wav", ".wav")] * count
        if spec.response == "video":
            return [Rendered(preview_video(), "video/webm", ".webm")] * count
        if self.config.images == "tiny":
            return [Rendered(_TINY_PNG, "image/png", ".png")] * count

        def asset(name: str) -> bytes | None:
            found = self.state.assets.get(name)
            return found[0] if found else None

        # An uploaded image is read as the bytes it stands for; any other URL stays a placeholder.
        resolved = resolve_assets(spec, payload, asset)
        return await anyio.to_thread.run_sync(lambda: render_preview(spec, resolved, samples=count))

    def keep(self, job: Job, images: list[Rendered]) -> None:
        """Store a job's images under /files/."""
        denied = self.config.lost_status(job.body_sha256)
        for index, image in enumerate(images):
            name = f"{job.id}/{index}{image.extension}"
            self.state.keep_file(job, name, image.data, image.media_type, denied=denied)

    async def outputs(self, request: Request, job: Job) -> list[str]:
        """The URLs of a completed job's images, rendered on first need."""
        if not job.files:
            images = await self.render(job.spec, job.payload)
            if not job.files:  # a concurrent poll may have rendered them meanwhile
                self.keep(job, images)
        return [str(request.url_for("file", name=name)) for name in job.files]

    def _intern(self, payload: dict[str, Any]) -> dict[str, Any]:
        for name, value in payload.items():
            if isinstance(value, str) and len(value) > _INTERN_CHARS:
                payload[name] = self._interned.setdefault(value, value)
        return payload

    async def admit(self, request: Request, table: Mapping[str, Spec]) -> _Admitted | Response:
        """The checks every submission passes, in Segmind's order: auth, rate limit, model, body,
        faults, credits. A submission refused for the rate is not counted against it."""
        key = self.key_of(request)
        if key is None:
            return self.error(401)
        if self.config.rpm is not None:
            reset = self.state.take_slot(
                key, limit=self.config.rpm, window_s=self.config.rate_window_s
            )
            if reset is not None:
                return self._rate_limited(reset)
        slug = request.path_params["slug"]
        spec = table.get(slug)
        if spec is None:
            return self.error(404)
        body = await request.body()
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return self.error(400, "Invalid JSON body")
        if not isinstance(payload, dict):
            return self.error(400, "The body must be a JSON object of parameters")
        violations = spec.validator.violations(payload)
        if violations:
            return self.error(400, "; ".join(v.message for v in violations))
        if self.config.strict_urls:
            inline = inline_in_uri_params(spec, payload)
            if inline:
                return self.error(
                    400,
                    "; ".join(
                        f"Parameter '{name}' takes a URL, not base64 data: upload the file "
                        "(POST /upload-asset) and send its URL"
                        for name in inline
                    ),
                )
        fault = self.config.fault(
            request.url.path, body, self.state.attempt(request.url.path, body)
        )
        if fault == "429":
            self.state.count_rate_limited()
            return self._rate_limited(self.state.clock() + self.config.retry_after_s)
        if fault in {"500", "502", "504", "406"}:
            return self.error(int(fault))
        if not self.state.can_pay(self.price(spec, payload)):
            return self.error(406)
        return _Admitted(key, slug, spec, self._intern(payload), body, fault)

    def _latency(self, admitted: _Admitted) -> float:
        extra = self.config.slow_extra_s if admitted.fault == "slow" else 0.0
        return self.config.latency_for(admitted.spec) + extra

    def _submission(self, admitted: _Admitted, price: float) -> Submission:
        return Submission(
            admitted.spec,
            admitted.slug,
            admitted.payload,
            key=admitted.key,
            body_sha256=hashlib.sha256(admitted.body).hexdigest(),
            price=price,
            outputs=self.samples(admitted.payload),
            lost=admitted.fault == "lost",
        )

    # --- submissions --------------------------------------------------------------------------

    async def v1(self, request: Request) -> Response:
        admitted = await self.admit(request, self.by_v1)
        if isinstance(admitted, Response):
            return admitted
        spec, payload = admitted.spec, admitted.payload
        price = self.price(spec, payload)
        job = self.state.begin_sync(self._submission(admitted, price))
        # Held from the credit check to the charge (nothing awaits in between), so concurrent sync
        # calls cannot overdraw the balance.
        self.state.hold(price)
        try:
            latency = self._latency(admitted)
            if latency:
                await asyncio.sleep(latency)
            images = await self.render(spec, payload)
        except BaseException:
            self.state.release(price)
            self.state.abandon_sync(job, "The request was cancelled before it finished")
            raise
        self.state.finish_sync(job)
        # Kept for the history's generation_url, though the answer carries the images themselves.
        self.keep(job, images)
        if admitted.fault == "drop":
            return Dropped()
        headers = {**self.headers()}
        if self.config.report_cost:
            headers["x-cost"] = f"{price:.6f}"
        if payload.get("base64"):
            encoded = [base64.b64encode(image.data).decode() for image in images]
            return JSONResponse(
                {"image": encoded[0] if len(encoded) == 1 else encoded, "status": "Success"},
                headers=headers,
            )
        return Response(images[0].data, media_type=images[0].media_type, headers=headers)

    async def _enqueue(self, request: Request, table: Mapping[str, Spec]) -> Job | Response:
        admitted = await self.admit(request, table)
        if isinstance(admitted, Response):
            return admitted
        job = self.state.enqueue(
            self._submission(admitted, self.price(admitted.spec, admitted.payload)),
            latency=self._latency(admitted),
            failed=admitted.fault == "failed",
        )
        # Queued and billed when done, whether or not the answer arrives.
        return Dropped() if admitted.fault == "drop" else job

    async def v2_submit(self, request: Request) -> Response:
        job = await self._enqueue(request, self.by_v2)
        if isinstance(job, Response):
            return job
        return JSONResponse(
            {
                "request_id": job.id,
                "status": "QUEUED",
                "poll_url": str(request.url_for("v1_request", request_id=job.id)),
                "status_url": str(request.url_for("v2_status", request_id=job.id)),
                "response_url": str(request.url_for("v2_result", request_id=job.id)),
            },
            headers=self.headers(),
        )

    async def workflow_submit(self, request: Request) -> Response:
        job = await self._enqueue(request, self.by_workflow)
        if isinstance(job, Response):
            return job
        return JSONResponse(
            {
                "message": "Request accepted: poll poll_url for its result",
                "poll_url": str(request.url_for("workflow_poll", request_id=job.id)),
                "request_id": job.id,
                "status": "QUEUED",
            },
            headers=self.headers(),
        )

    # --- queued requests ----------------------------------------------------------------------

    def _queued(self, request: Request) -> Job | Response:
        if self.key_of(request) is None:
            return self.error(401)
        job = self.state.lookup(request.path_params["request_id"])
        if job is None:
            return self.error(404, "Request not found or expired")
        return job

    def _metrics(self, job: Job, status: str) -> dict[str, Any]:
        """Time spent queued (so far); once the job ended, the time it ran."""
        assert job.done_at is not None
        metrics: dict[str, Any] = {}
        if status in {"COMPLETED", "FAILED"}:
            metrics["inference_time"] = round(job.done_at - job.queued_until, 3)
        queued = min(self.state.clock(), job.queued_until) - job.created
        metrics["queue_time"] = round(queued, 3)
        return metrics

    def _failed(self, job: Job) -> JSONResponse:
        body = {"status": "FAILED", "error": job.error, "metrics": self._metrics(job, "FAILED")}
        return JSONResponse(body, 422, headers=self.headers())

    async def v2_status(self, request: Request) -> Response:
        job = self._queued(request)
        if isinstance(job, Response):
            return job
        status = self.state.status_of(job)
        if status == "FAILED":
            return self._failed(job)
        body = {"status": status, "request_id": job.id, "metrics": self._metrics(job, status)}
        return JSONResponse(body, headers=self.headers())

    async def v2_result(self, request: Request) -> Response:
        job = self._queued(request)
        if isinstance(job, Response):
            return job
        status = self.state.status_of(job)
        if status == "FAILED":
            return self._failed(job)
        body: dict[str, Any] = {"status": status, "request_id": job.id}
        metrics = self._metrics(job, status)
        if status == "COMPLETED":
            urls = await self.outputs(request, job)
            body["output"] = urls[0]
            if len(urls) > 1:
                body["images"] = urls
            if self.config.report_cost:
                metrics["cost"] = job.price_usd
        body["metrics"] = metrics
        return JSONResponse(body, headers=self.headers())

    async def workflow_poll(self, request: Request) -> Response:
        job = self._queued(request)
        if isinstance(job, Response):
            return job
        status = self.state.status_of(job)
        if status == "FAILED":
            body = {"error_message": job.error, "status": status}
        elif status == "COMPLETED":
            urls = await self.outputs(request, job)
            names = ["image"] if len(urls) == 1 else [f"image_{i + 1}" for i in range(len(urls))]
            entries = [
                {"keyname": name, "value": {"data": url, "type": "image"}}
                for name, url in zip(names, urls, strict=True)
            ]
            body = {"output": json.dumps(entries), "status": status}
        else:
            body = {"output": "", "status": status}
        return JSONResponse(body, headers=self.headers())

    # --- the rest -----------------------------------------------------------------------------

    async def credits(self, request: Request) -> Response:
        if self.key_of(request) is None:
            return self.error(401)
        return JSONResponse(
            {"credits": round(self.state.balance_usd, 6), "free-credits": 0.0},
            headers=self.headers(),
        )

    async def file(self, request: Request) -> Response:
        found = self.state.file(request.path_params["name"])
        if found is None:
            return self.error(404, "File not found or expired")
        if self.state.clock() < found.available_at:
            return self.error(found.denied, "File not found" if found.denied == 404 else None)
        return Response(found.data, media_type=found.media_type)

    async def charges(self, request: Request) -> Response:
        del request
        self.state.settle()
        return JSONResponse(
            {
                "balance_usd": self.state.balance_usd,
                "charges": [
                    {
                        "request_id": c.request_id,
                        "spec": c.spec_id,
                        "amount_usd": c.amount_usd,
                        "payload_sha256": c.payload_sha256,
                    }
                    for c in self.state.charges
                ],
                "rate_limited": self.state.rate_limited,
                "uploads": {
                    "requests": self.state.upload_requests,
                    "assets": len(self.state.assets),
                },
            }
        )

    async def not_found(self, request: Request) -> Response:
        del request
        return self.error(404)


def create_app(
    config: SimulatorConfig,
    *,
    clock: Callable[[], float] | None = None,
    now: datetime | None = None,
) -> Starlette:
    """The simulator as an ASGI app; ``app.state.simulator`` holds its state.

    ``clock`` (monotonic seconds) drives everything timed; ``now`` pins the wall-clock time its
    current reading stands for (default: the real time now).
    """
    sim = Simulator(config, clock=clock)
    if now is not None:
        sim.state.epoch = now.timestamp() - sim.state.clock()
    records = sim.records
    routes = [
        Route("/v1/get-user-credits", sim.credits, methods=["GET"]),
        Route("/v1/requests/{request_id}", sim.v2_result, methods=["GET"], name="v1_request"),
        Route("/v1/{slug}", sim.v1, methods=["POST"]),
        Route("/v2/requests/{request_id}/status", sim.v2_status, methods=["GET"], name="v2_status"),
        Route("/v2/requests/{request_id}", sim.v2_result, methods=["GET"], name="v2_result"),
        Route("/v2/{slug}", sim.v2_submit, methods=["POST"]),
        Route(
            "/workflows/request/{request_id}",
            sim.workflow_poll,
            methods=["GET"],
            name="workflow_poll",
        ),
        Route("/workflows/{slug}", sim.workflow_submit, methods=["POST"]),
        Route("/files/{name:path}", sim.file, methods=["GET"], name="file"),
        Route("/upload-asset", records.upload, methods=["POST"]),
        Route("/assets/{name}", records.asset, methods=["GET"], name="asset"),
        Route("/inference-request/request-history", records.history, methods=["GET"]),
        Route(
            "/inference-request/request-history/{request_id}",
            records.history_one,
            methods=["GET"],
        ),
        Route("/_simulator/charges", sim.charges, methods=["GET"]),
        Route("/{path:path}", sim.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(BodyLimit, max_bytes=config.max_body_bytes)]
    )
    app.state.simulator = sim
    return app
