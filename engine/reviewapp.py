"""``render review RUN``: a local web app to approve or reject each shot of a run, with notes.

Starlette on 127.0.0.1. The page is the run's contact sheet as one grid, re-read from the folder on
each load; verdicts go to the ledger at once (engine/verdicts.py), keyed by the exact picture. It
answers only requests addressed to its own loopback origin, so no other web page can read it or
cast verdicts through the browser (DNS rebinding, CSRF), and no page may frame it (clickjacking).

    GET  /              the page (engine/templates/review.html.j2)
    GET  /api/shots     every shot's state, note and sha256, and the counts, as JSON
    POST /api/verdicts  {"jobs": [...], "verdict": "approved" | "rejected" | "pending",
                         "note": "..." (optional), "seen": {job: sha256} (optional)}
    GET  /image?job=J   the picture of job J as the run left it; /thumb?job=J a small JPEG of it
"""

from __future__ import annotations

import io
import json
import secrets
import socket
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.errors import InputError, RenderError
from engine.ledger import Ledger
from engine.pages import render_page
from engine.shots import RunShots, Shot, run_shots
from engine.verdicts import Judgement, Verdict, Verdicts, state_of

__all__ = ["create_review_app", "serve_review"]

HOST = "127.0.0.1"
STATES = ("pending", "approved", "rejected")
_VERDICTS: dict[str, Verdict | None] = {
    "approved": "approved",
    "rejected": "rejected",
    "pending": None,
}
_FIELDS = ("jobs", "verdict", "note", "seen")
NOTE_LIMIT = 2000
_THUMB = 480  # as wide as a cell of the grid grows (review.css), on a 2x screen at most
_MAX_PIXELS = 40_000_000  # as engine/report.py: past this, no thumbnail (a bomb, or just huge)
_THUMBS_KEPT = 512  # ~40 KB each: the thumbnails of a big run stay in memory, a bounded amount
_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
# Only our own nonced script runs; pictures and calls go to this origin only; nobody frames us.
_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def create_review_app(
    out_dir: Path, run_id: str | None, *, ledger: str | Path, port: int
) -> Starlette:
    """The review app of run ``run_id`` in ``out_dir`` (None: the folder's latest run, whichever
    that is at each request), answering only at http://127.0.0.1:``port`` or localhost:``port``."""
    review = _Review(out_dir, run_id, ledger=ledger)
    return Starlette(
        routes=[
            Route("/", review.page, methods=["GET"]),
            Route("/api/shots", review.states, methods=["GET"]),
            Route("/api/verdicts", review.judge, methods=["POST"]),
            Route("/image", review.image, methods=["GET"]),
            Route("/thumb", review.thumb, methods=["GET"]),
            # Browsers ask for it unprompted; a 404 would be a console error on every load.
            Route("/favicon.ico", _no_icon, methods=["GET"]),
        ],
        middleware=[Middleware(_SameOrigin, port=port)],
        exception_handlers={HTTPException: _error, RenderError: _error},
    )


def serve_review(
    out_dir: Path,
    run_id: str | None,
    *,
    ledger: str | Path,
    port: int = 0,
    on_ready: Callable[[str], None],
) -> None:
    """Serve the review app on 127.0.0.1:``port`` (0: a free one); ``on_ready(url)`` once it
    listens. Serves until Ctrl-C, then raises KeyboardInterrupt."""
    run_shots(out_dir, run_id)  # a folder with no such run is an input error now, not a page later
    try:
        # Bound here rather than by uvicorn: the app must know its port (the Host it answers to)
        # before it serves, and port 0 says which only once bound.
        listener = socket.create_server((HOST, port))
    except OSError as exc:
        raise InputError(
            f"{HOST}:{port}: cannot listen there ({exc.strerror}); choose another --port, or 0 "
            "for a free one"
        ) from exc
    with listener:
        bound = int(listener.getsockname()[1])
        app = create_review_app(out_dir, run_id, ledger=ledger, port=bound)
        config = uvicorn.Config(
            app, host=HOST, port=bound, log_level="warning", access_log=False, lifespan="off"
        )
        server = _Server(config, ready=lambda: on_ready(f"http://{HOST}:{bound}"))
        # uvicorn catches SIGINT, shuts down, then raises it again: KeyboardInterrupt reaches us.
        server.run(sockets=[listener])


class _Server(uvicorn.Server):
    """uvicorn, saying when it listens."""

    def __init__(self, config: uvicorn.Config, *, ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._ready()


class _SameOrigin:
    """403 for a request not addressed to this app's own origin: a foreign ``Host`` (a name
    rebound to 127.0.0.1 by another site) or a foreign ``Origin`` (another page's fetch or form)."""

    def __init__(self, app: ASGIApp, *, port: int) -> None:
        self.app = app
        self.port = port
        self.hosts = (f"{HOST}:{port}", f"localhost:{port}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = self._problem(Headers(scope=scope))
            if problem is not None:
                await JSONResponse({"error": problem}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _problem(self, headers: Headers) -> str | None:
        hosts = headers.getlist("host")
        host = hosts[0].lower() if len(hosts) == 1 else None
        if host not in self.hosts:
            said = ", ".join(repr(name) for name in hosts) or "none"
            return (
                f"refused: this review app answers only at http://{self.hosts[0]} and "
                f"http://{self.hosts[1]} (Host: {said})"
            )
        origins = headers.getlist("origin")
        if origins and [origin.lower() for origin in origins] != [f"http://{host}"]:
            return (
                f"refused: a request from {', '.join(origins)} cannot use this review app "
                f"(only its own page, http://{host}, can)"
            )
        return None


class _Review:
    """The endpoints: one run's shots, read afresh from its folder, and the ledger's verdicts."""

    def __init__(self, out_dir: Path, run_id: str | None, *, ledger: str | Path) -> None:
        self.out_dir = out_dir
        self.run_id = run_id
        self.ledger_target = ledger
        # The view the page (or the API) read last: its pictures are served from it, rather than
        # reading the manifest again for each of a page's hundreds of thumbnails.
        self._view: RunShots | None = None
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        # One thumbnail decoded at a time: warnings.catch_warnings (the bomb guard) is process-wide.
        self._thumbs_lock = threading.Lock()

    def run(self) -> RunShots:
        """The run as its folder holds it now."""
        self._view = run_shots(self.out_dir, self.run_id)
        return self._view

    def judgements(self, run: RunShots) -> dict[tuple[str, str], Judgement]:
        # A connection per request, closed at once: requests come from a thread pool, and a
        # review is a few requests a minute.
        ledger = Ledger(self.ledger_target)
        try:
            return Verdicts(ledger).of(run.recipe)
        finally:
            ledger.close()

    # --- reading ------------------------------------------------------------------------------

    def page(self, _request: Request) -> Response:
        run = self.run()
        judgements = self.judgements(run)
        states = state_of(run, judgements)
        nonce = secrets.token_urlsafe(18)
        html = render_page(
            "review.html.j2",
            run=run,
            cells=[
                _cell(run, shot, state=states[job], judgements=judgements)
                for job, shot in run.shots.items()
            ],
            counts=_counts(states),
            filters=("all", *STATES),
            without=run.without,
            folder=_shown(run.out_dir),
            nonce=nonce,
        )
        return HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": _CSP.format(nonce=nonce),
                "Cache-Control": "no-store",
                "X-Frame-Options": "DENY",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    def states(self, _request: Request) -> Response:
        return JSONResponse(self._document(self.run()), headers={"Cache-Control": "no-store"})

    def image(self, request: Request) -> Response:
        shot, path = self._picture(request)
        return FileResponse(
            path,
            media_type=_TYPES.get(path.suffix.lower(), "application/octet-stream"),
            headers=_caching(request, shot),
        )

    def thumb(self, request: Request) -> Response:
        shot, path = self._picture(request)
        data = self._thumbnail(shot.digest, path)
        if data is None:
            # No thumbnail can be made (too large, or not decodable here): the browser may still.
            return RedirectResponse(
                "/image?" + urlencode({"job": shot.job, "v": shot.digest}), status_code=307
            )
        return Response(data, media_type="image/jpeg", headers=_caching(request, shot))

    def _picture(self, request: Request) -> tuple[Shot, Path]:
        """The shot a request names by job id, and its file: only ever a file the run names."""
        job = request.query_params.get("job")
        run = self._view
        if run is None or job not in run.shots:
            run = self.run()
        shot = run.shots.get(job) if job is not None else None
        if shot is None:
            raise HTTPException(404, f"run {run.run_id} has no picture for job {_quoted(job)}")
        path = run.file(shot)
        if path is None:
            raise HTTPException(
                404,
                f"the picture run {shot.run} made for {shot.job} is gone (neither "
                f"{shot.image} nor a kept copy in .history/)",
            )
        return shot, path

    def _thumbnail(self, digest: str, path: Path) -> bytes | None:
        with self._thumbs_lock:
            data = self._thumbs.get(digest)
            if data is None:
                data = _thumbnail(path)
                if data is None:
                    return None
                self._thumbs[digest] = data
                if len(self._thumbs) > _THUMBS_KEPT:
                    self._thumbs.popitem(last=False)
            self._thumbs.move_to_end(digest)
            return data

    def _document(self, run: RunShots) -> dict[str, Any]:
        judgements = self.judgements(run)
        states = state_of(run, judgements)
        shots: dict[str, dict[str, Any]] = {}
        for job, shot in run.shots.items():
            judgement = judgements.get((job, shot.digest))
            shots[job] = {
                "sha256": shot.digest,
                "state": states[job],
                "note": judgement.note if judgement else None,
                "given_at": judgement.given_at if judgement else None,
            }
        return {"run": run.run_id, "recipe": run.recipe, "counts": _counts(states), "shots": shots}

    # --- writing ------------------------------------------------------------------------------

    async def judge(self, request: Request) -> Response:
        kind = request.headers.get("content-type", "")
        if kind.split(";")[0].strip().lower() != "application/json":
            # A cross-site form can send only form or text bodies without asking first; JSON
            # makes the browser ask (CORS), and we never say yes.
            raise HTTPException(
                415,
                "send the verdict as JSON (Content-Type: application/json), not "
                + (kind or "no content type"),
            )
        asked = _asked(await request.body())
        answer = await run_in_threadpool(self._give, asked)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    def _give(self, asked: _Asked) -> dict[str, Any]:
        run = self.run()
        unknown = [job for job in asked.jobs if job not in run.shots]
        if unknown:
            raise HTTPException(
                400,
                f"run {run.run_id} has no picture for "
                f"{'job' if len(unknown) == 1 else 'jobs'} {', '.join(map(_quoted, unknown))}",
            )
        shots = [run.shots[job] for job in asked.jobs]
        for shot in shots:
            shown = asked.seen.get(shot.job)
            if shown is not None and shown != shot.digest:
                # The page showed an older picture: a verdict is on the picture seen, or none.
                raise HTTPException(
                    409,
                    f"{shot.job} has a new picture since the page was loaded (run {shot.run}); "
                    "reload to see it",
                )
        ledger = Ledger(self.ledger_target)
        try:
            given = Verdicts(ledger).give(run.recipe, shots, asked.verdict, note=asked.note)
        finally:
            ledger.close()
        return {"given": given, **self._document(run)}


@dataclass(frozen=True, kw_only=True)
class _Asked:
    """A valid POST /api/verdicts body."""

    jobs: list[str]
    verdict: Verdict | None
    note: str | None
    seen: dict[str, str]


def _asked(body: bytes) -> _Asked:
    """The body of a POST /api/verdicts, or a 400 saying what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, f"the body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise HTTPException(
            400, 'the body must be a JSON object, such as {"jobs": ["JOB"], "verdict": "approved"}'
        )
    for name in data:
        if name not in _FIELDS:
            raise HTTPException(
                400, f"unknown field {_quoted(name)} (fields: {', '.join(_FIELDS)})"
            )
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not jobs or not all(isinstance(job, str) for job in jobs):
        raise HTTPException(400, '"jobs" must be a non-empty list of job ids')
    if "verdict" not in data:
        raise HTTPException(400, '"verdict" is missing: "approved", "rejected" or "pending"')
    verdict = data["verdict"]
    if not isinstance(verdict, str) or verdict not in _VERDICTS:
        raise HTTPException(
            400,
            f'"verdict" must be "approved", "rejected" or "pending", not {json.dumps(verdict)}',
        )
    note = data.get("note")
    if note is not None and not isinstance(note, str):
        raise HTTPException(400, '"note" must be a string, or null to keep the note there is')
    if note is not None and len(note) > NOTE_LIMIT:
        raise HTTPException(
            400, f'"note" is too long: {len(note)} characters (at most {NOTE_LIMIT})'
        )
    if note and verdict == "pending":
        # The ledger keeps a note with its verdict: back to pending, both go.
        raise HTTPException(
            400, 'a pending shot keeps no note: send the note with "approved" or "rejected"'
        )
    seen = data.get("seen", {})
    if not isinstance(seen, dict) or not all(isinstance(v, str) for v in seen.values()):
        raise HTTPException(400, '"seen" must map job ids to the sha256 of the picture shown')
    return _Asked(jobs=list(dict.fromkeys(jobs)), verdict=_VERDICTS[verdict], note=note, seen=seen)


# --- helpers ----------------------------------------------------------------------------------


def _cell(
    run: RunShots, shot: Shot, *, state: str, judgements: dict[tuple[str, str], Judgement]
) -> dict[str, Any]:
    """What the page shows of one shot."""
    judgement = judgements.get((shot.job, shot.digest))
    query = urlencode({"job": shot.job, "v": shot.digest})
    axes = [axis for axis in run.axes if axis in shot.values]
    axes += [axis for axis in shot.values if axis not in axes]
    return {
        "job": shot.job,
        "sha256": shot.digest,
        "state": state,
        "note": judgement.note if judgement else None,
        "axes": [(axis, shot.values[axis]) for axis in axes],
        # The prompt first: it is what a reviewer reads; the manifest sorts its keys.
        "texts": sorted(shot.texts.items(), key=lambda text: text[0] != "prompt"),
        "seed": shot.seed,
        "from_run": shot.run if shot.run != run.run_id else None,
        "image": f"/image?{query}",
        "thumb": f"/thumb?{query}",
    }


def _counts(states: Mapping[str, str]) -> dict[str, int]:
    counts = {"all": len(states)} | dict.fromkeys(STATES, 0)
    for state in states.values():
        counts[state] += 1
    return counts


def _caching(request: Request, shot: Shot) -> dict[str, str]:
    # A URL naming the picture's sha256 always means the same bytes: the browser may keep them.
    if request.query_params.get("v") == shot.digest:
        return {"Cache-Control": "private, max-age=31536000, immutable"}
    return {"Cache-Control": "no-cache"}


def _thumbnail(path: Path) -> bytes | None:
    """A JPEG at most ``_THUMB`` pixels on a side; None when it cannot be made safely."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (then refuses) past its own limit: either way, no thumbnail.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > _MAX_PIXELS:
                    return None
                image.draft("RGB", (_THUMB, _THUMB))
                image.thumbnail((_THUMB, _THUMB))
                out = io.BytesIO()
                image.convert("RGB").save(out, "JPEG", quality=82)
                return out.getvalue()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, ValueError):
        return None


def _shown(folder: Path) -> str:
    """``folder`` as `render` users see it: relative to the working folder when inside it."""
    try:
        return folder.relative_to(Path.cwd()).as_posix() + "/"
    except (ValueError, OSError):  # outside it, or the working folder is gone
        return str(folder)


def _quoted(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


async def _error(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    # The run's folder changed under us (its runs/ removed, say): the engine's message says how.
    return JSONResponse({"error": str(exc)}, status_code=500)


def _no_icon(_request: Request) -> Response:
    return Response(status_code=204)
