"""The endpoints beside inference: Segmind Storage (``POST /upload-asset``, ``GET /assets/{name}``)
and request history (``GET /inference-request/request-history`` and ``…/{id}``).

On Segmind these live on hosts of their own (``workflows-api.segmind.com``,
``api.spotprod.segmind.com``); their paths do not collide with the API's, so the simulator serves all
of them on one base URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.simulator.history import (
    HistoryQueryError,
    expand,
    history_row,
    history_status,
    parse_query,
)
from engine.simulator.state import Job
from engine.simulator.storage import UploadError, asset_name, parse_upload

if TYPE_CHECKING:
    from engine.simulator.app import Simulator

__all__ = ["Records"]


class Records:
    """Storage and history, over a simulator's state."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    # --- storage ------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        sim = self.sim
        if sim.key_of(request) is None:
            return sim.error(401)
        try:
            images = parse_upload(await request.body())
        except UploadError as exc:
            return sim.error(400, str(exc))
        urls = []
        for data, media_type in images:
            name = asset_name(data, media_type)
            sim.state.keep_asset(name, data, media_type)
            urls.append(str(request.url_for("asset", name=name)))
        sim.state.count_upload()
        return JSONResponse(
            {sim.config.upload_answer_key: urls, "message": "Files uploaded successfully"},
            headers=sim.headers(),
        )

    async def asset(self, request: Request) -> Response:
        # Public, like Segmind's CDN: no key.
        found = self.sim.state.assets.get(request.path_params["name"])
        if found is None:
            return self.sim.error(404, "Asset not found")
        return Response(found[0], media_type=found[1])

    # --- history ------------------------------------------------------------------------------

    async def _row(self, request: Request, job: Job, index: int = 0) -> dict[str, Any]:
        state = self.sim.state
        status = history_status(state.status_of(job))
        url = None
        if status == "COMPLETED":
            urls = await self.sim.outputs(request, job)
            url = urls[index] if index < len(urls) else None
        ended = job.done_at if status != "PENDING" and job.done_at is not None else job.created
        return history_row(
            job,
            status,
            generation_url=url,
            created=state.utc(job.created),
            updated=state.utc(ended),
        )

    async def history_one(self, request: Request) -> Response:
        """One request of the calling key, at any age."""
        sim = self.sim
        key = sim.key_of(request)
        if key is None:
            return sim.error(401)
        sim.state.settle()
        job = sim.state.jobs.get(request.path_params["request_id"])
        if job is None or job.key != key:
            return sim.error(404, "Request not found")
        return JSONResponse(await self._row(request, job), headers=sim.headers())

    async def history(self, request: Request) -> Response:
        """The calling key's requests in a date window, newest first, a page at a time."""
        sim = self.sim
        key = sim.key_of(request)
        if key is None:
            return sim.error(401)
        state = sim.state
        state.settle()
        try:
            query = parse_query(request.query_params, today=state.utc(state.clock()).date())
        except HistoryQueryError as exc:
            return sim.error(400, str(exc))
        matched = []
        for job in reversed(list(state.jobs.values())):
            status = history_status(state.status_of(job))
            if job.key == key and query.matches(job, status, state.utc(job.created)):
                matched.append((job, status))
        rows = expand(matched)
        start = (query.page - 1) * query.per_page
        page = [
            await self._row(request, job, index)
            for job, _, index in rows[start : start + query.per_page]
        ]
        return JSONResponse(
            {"data": page, "page": query.page, "per_page": query.per_page, "total": len(rows)},
            headers=sim.headers(),
        )
