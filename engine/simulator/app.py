"""A Segmind-compatible ASGI app: Segmind's paths, auth, status codes and JSON shapes, for our specs.

v1 sync (``POST /v1/{slug}``) answers with the result; v2 (``POST /v2/{slug}``) queues it behind
``/v2/requests/{id}/status`` and ``/v2/requests/{id}``; a workflow (``POST /workflows/{id}``) answers
a ``poll_url``. Images come from the preview compositor and are served under ``/files/``.
``/_simulator/charges`` is ours, not Segmind's: the charge log, for tests that prove nothing was paid
twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.simulator.compositor import Rendered, render_preview
from engine.simulator.config import SimulatorConfig
from engine.simulator.state import QueuedRequest, SimState
from engine.specs import Spec

__all__ = ["Simulator", "create_app"]

_TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)
_ERRORS = {
    400: "Invalid parameters or request format",
    401: "Missing or invalid API key",
    404: "Model or endpoint not found",
    406: "Not enough credits to process request",
    429: "Too many requests",
    500: "Internal server error",
    502: "Service temporarily unavailable",
    504: "Request timed out",
}


class Simulator:
    """The app's behaviour and state, reachable from tests as ``app.state.simulator``."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.state = SimState(balance_usd=config.balance_usd, retention_s=config.retention_s)
        self.by_v1: dict[str, Spec] = {}
        self.by_v2: dict[str, Spec] = {}
        self.by_workflow: dict[str, Spec] = {}
        for spec in config.specs:
            kind, _, slug = spec.endpoint.strip("/").partition("/")
            if spec.protocol == "workflow":
                self.by_workflow[slug] = spec
            else:
                # Segmind serves every model on v1; the v2 queue serves it too (the SDK's default).
                self.by_v1[slug] = spec
                self.by_v2[slug] = spec
            del kind

    # --- helpers ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        self.state.settle()
        return {"x-remaining-credits": f"{self.state.balance_usd:.4f}"}

    def error(self, status: int, detail: str | None = None, **headers: str) -> JSONResponse:
        return JSONResponse(
            {"error": detail or _ERRORS[status]}, status, headers={**self._headers(), **headers}
        )

    def authorised(self, request: Request) -> bool:
        key = request.headers.get("x-api-key", "")
        authorization = request.headers.get("authorization", "")
        if not key and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not key:
            return False
        return self.config.key is None or key == self.config.key

    def price(self, spec: Spec, payload: Mapping[str, Any]) -> float:
        base = spec.price_usd if spec.price_usd is not None else self.config.unpriced_usd
        base *= self.config.charge_factor
        samples = payload.get("samples", 1)
        return base * (
            samples
            if isinstance(samples, int) and not isinstance(samples, bool) and samples > 0
            else 1
        )

    async def render(self, spec: Spec, payload: Mapping[str, Any]) -> list[Rendered]:
        if self.config.images == "tiny":
            return [Rendered(_TINY_PNG, "image/png", ".png")]
        samples = payload.get("samples", 1)
        count = (
            samples
            if isinstance(samples, int) and not isinstance(samples, bool) and samples > 0
            else 1
        )
        return await anyio.to_thread.run_sync(lambda: render_preview(spec, payload, samples=count))

    def store(
        self,
        request: Request,
        request_id: str,
        images: list[Rendered],
        owner: QueuedRequest | None = None,
    ) -> list[str]:
        """Keep the images to be fetched under /files/; a queued request's expire with it."""
        urls = []
        for index, image in enumerate(images):
            name = f"{request_id}/{index}{image.extension}"
            self.state.files[name] = (image.data, image.media_type)
            if owner is not None:
                owner.files.append(name)
            urls.append(str(request.url_for("file", name=name)))
        return urls

    async def admit(
        self, request: Request, table: Mapping[str, Spec]
    ) -> tuple[Spec, dict[str, Any], bytes, str | None] | Response:
        """The checks every submission passes, in Segmind's order: auth, model, body, faults, credits."""
        if not self.authorised(request):
            return self.error(401)
        spec = table.get(request.path_params["slug"])
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
        fault = self.config.fault(
            request.url.path, body, self.state.attempt(request.url.path, body)
        )
        if fault in {"429", "500", "502", "504", "406"}:
            status = int(fault)
            extra = {"retry-after": str(self.config.retry_after_s)} if status == 429 else {}
            return self.error(status, **extra)
        if not self.state.can_pay(self.price(spec, payload)):
            return self.error(406)
        return spec, payload, body, fault

    # --- endpoints ----------------------------------------------------------------------------

    async def v1(self, request: Request) -> Response:
        admitted = await self.admit(request, self.by_v1)
        if isinstance(admitted, Response):
            return admitted
        spec, payload, body, fault = admitted
        price = self.price(spec, payload)
        # Held from the credit check to the charge (nothing awaits in between), so concurrent sync
        # calls cannot overdraw the balance.
        self.state.hold(price)
        try:
            latency = self.config.latency_for(spec) + (
                self.config.slow_extra_s if fault == "slow" else 0.0
            )
            if latency:
                await asyncio.sleep(latency)
            images = await self.render(spec, payload)
        except BaseException:
            self.state.release(price)
            raise
        self.state.charge_now(spec.id, price, hashlib.sha256(body).hexdigest())
        if fault == "drop":
            return _Dropped()
        cost = {"x-cost": f"{price:.6f}"} if self.config.report_cost else {}
        if spec.response == "image":
            return Response(
                images[0].data, media_type=images[0].media_type, headers={**self._headers(), **cost}
            )
        return JSONResponse(
            self._json_output(request, payload, images, owner=None),
            headers={**self._headers(), **cost},
        )

    def _json_output(
        self,
        request: Request,
        payload: Mapping[str, Any],
        images: list[Rendered],
        *,
        owner: QueuedRequest | None,
    ) -> dict[str, Any]:
        """A JSON model's body: its images as base64 when ``base64`` is asked, else as URLs."""
        if payload.get("base64"):
            return {"images": [base64.b64encode(image.data).decode() for image in images]}
        name = owner.id if owner is not None else uuid.uuid4().hex
        return {"images": self.store(request, name, images, owner)}

    async def submit(
        self, request: Request, table: Mapping[str, Spec], *, workflow: bool
    ) -> Response:
        admitted = await self.admit(request, table)
        if isinstance(admitted, Response):
            return admitted
        spec, payload, body, fault = admitted
        latency = self.config.latency_for(spec) + (
            self.config.slow_extra_s if fault == "slow" else 0.0
        )
        queued = self.state.enqueue(
            spec,
            payload,
            body_sha256=hashlib.sha256(body).hexdigest(),
            price=self.price(spec, payload),
            latency=latency,
            failed=fault == "failed",
        )
        if fault == "drop":
            return _Dropped()
        if workflow:
            poll_url = str(request.url_for("workflow_poll", request_id=queued.id))
            return JSONResponse(
                {"status": "QUEUED", "request_id": queued.id, "poll_url": poll_url},
                headers=self._headers(),
            )
        return JSONResponse(
            {
                "status": "QUEUED",
                "request_id": queued.id,
                "status_url": str(request.url_for("v2_status", request_id=queued.id)),
                "response_url": str(request.url_for("v2_result", request_id=queued.id)),
            },
            headers=self._headers(),
        )

    async def v2_submit(self, request: Request) -> Response:
        return await self.submit(request, self.by_v2, workflow=False)

    async def workflow_submit(self, request: Request) -> Response:
        return await self.submit(request, self.by_workflow, workflow=True)

    def _queued(self, request: Request) -> QueuedRequest | Response:
        if not self.authorised(request):
            return self.error(401)
        queued = self.state.lookup(request.path_params["request_id"])
        if queued is None:
            return self.error(404, "Request not found or expired")
        return queued

    async def v2_status(self, request: Request) -> Response:
        queued = self._queued(request)
        if isinstance(queued, Response):
            return queued
        status = self.state.status_of(queued)
        body: dict[str, Any] = {"status": status, "request_id": queued.id}
        if status == "FAILED":
            body["error"] = "Generation failed (simulated): the content was blocked"
            return JSONResponse(body, 422, headers=self._headers())
        return JSONResponse(body, headers=self._headers())

    async def v2_result(self, request: Request) -> Response:
        queued = self._queued(request)
        if isinstance(queued, Response):
            return queued
        status = self.state.status_of(queued)
        if status == "FAILED":
            return await self.v2_status(request)
        body: dict[str, Any] = {"status": status, "request_id": queued.id}
        if status == "COMPLETED":
            body["output"] = await self._output(request, queued)
            body["metrics"] = {"inference_time": round(queued.done_at - queued.created, 3)}
            if self.config.report_cost:
                body["metrics"]["cost"] = queued.price_usd
        return JSONResponse(body, headers=self._headers())

    async def _output(self, request: Request, queued: QueuedRequest) -> Any:
        if queued.output is None:
            images = await self.render(queued.spec, queued.payload)
            if queued.spec.protocol == "workflow":
                urls = self.store(request, queued.id, images, queued)
                queued.output = json.dumps(
                    {"image": urls[0]} if len(urls) == 1 else {"images": urls}
                )
            elif queued.spec.response == "image":
                urls = self.store(request, queued.id, images, queued)
                queued.output = urls[0] if len(urls) == 1 else urls
            else:
                queued.output = self._json_output(request, queued.payload, images, owner=queued)
        return queued.output

    async def workflow_poll(self, request: Request) -> Response:
        queued = self._queued(request)
        if isinstance(queued, Response):
            return queued
        status = self.state.status_of(queued)
        body: dict[str, Any] = {"status": status, "request_id": queued.id}
        if status == "FAILED":
            body["error"] = "Generation failed (simulated)"
        elif status == "COMPLETED":
            body["output"] = await self._output(request, queued)
        return JSONResponse(body, headers=self._headers())

    async def credits(self, request: Request) -> Response:
        if not self.authorised(request):
            return self.error(401)
        return JSONResponse(
            {"credits": round(self.state.balance_usd, 6), "free-credits": 0.0},
            headers=self._headers(),
        )

    async def file(self, request: Request) -> Response:
        found = self.state.files.get(request.path_params["name"])
        if found is None:
            return self.error(404, "File not found or expired")
        return Response(found[0], media_type=found[1])

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
            }
        )

    async def not_found(self, request: Request) -> Response:
        del request
        return self.error(404)


class _Dropped(Response):
    """A connection dropped after the request was received: headers promise a body that never comes."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        del scope, receive
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1024")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise _ConnectionDropped


class _ConnectionDropped(Exception):
    """Raised inside the app to make the server close the connection mid-response."""


class _BodyLimit:
    """Answers 413 to a request whose body is over ``max_bytes``, holding no more than that of it.

    Pure ASGI, so the same check holds on a socket and in process. A declared Content-Length is
    refused before the app runs; a streamed (chunked) body is counted as the app reads it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            # A client waiting for a 100 Continue (which uvicorn sends only once the app reads) will
            # not send the body: closing keeps the connection's framing unambiguous.
            waiting = any(name == b"expect" for name, _ in scope["headers"])
            await self._refuse(scope, receive, send, close=waiting)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, close=False)
        except ClientDisconnect:
            pass  # gone mid-body (or closed by the server's idle timeout): no one to answer

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, *, close: bool) -> None:
        # Unless told to close, the server keeps the connection and reads and drops what is left of
        # the body (uvicorn discards a body once its response is complete), so a client still sending
        # gets its 413 rather than a reset; the idle timeout ends one that stops sending.
        response = JSONResponse(
            {"error": f"Request body too large: the limit is {self.max_bytes} bytes"},
            413,
            headers={"connection": "close"} if close else None,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    """Raised from ``receive`` inside the app once a streamed body passes the limit."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


def create_app(config: SimulatorConfig) -> Starlette:
    """The simulator as an ASGI app; ``app.state.simulator`` holds its state."""
    sim = Simulator(config)
    routes = [
        Route("/v1/get-user-credits", sim.credits, methods=["GET"]),
        Route("/v1/{slug}", sim.v1, methods=["POST"]),
        Route("/v2/requests/{request_id}/status", sim.v2_status, methods=["GET"], name="v2_status"),
        Route("/v2/requests/{request_id}", sim.v2_result, methods=["GET"], name="v2_result"),
        Route("/v2/{slug}", sim.v2_submit, methods=["POST"]),
        Route(
            "/workflows/requests/{request_id}",
            sim.workflow_poll,
            methods=["GET"],
            name="workflow_poll",
        ),
        Route("/workflows/{slug}", sim.workflow_submit, methods=["POST"]),
        Route("/files/{name:path}", sim.file, methods=["GET"], name="file"),
        Route("/_simulator/charges", sim.charges, methods=["GET"]),
        Route("/{path:path}", sim.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(_BodyLimit, max_bytes=config.max_body_bytes)]
    )
    app.state.simulator = sim
    return app
