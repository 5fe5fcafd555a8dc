"""What each job of a plan needs before anything is sent: send it, reuse a picture already paid for,
collect a request an earlier run left queued, fetch the outputs of one that was paid but whose files
could not be downloaded, or hold it as unknown until request history or the user settles it.

The ledger decides first: a payload that succeeded before, in any recipe and any output folder, is
reused while its files are intact (``--force`` pays again); otherwise its newest record decides: a
request with an id is collected, whatever the flags; one sent with no answer is unknown unless
``--retry-unknown``. Where the ledger knows of nothing to reuse or wait for, the output folder's
manifest decides the same way from the runs the ledger never saw (another ``RENDER_HOME``). The
dry run, the budget check and the runner all ask here, so what the dry run counts is what the run
does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.backends import Backend
from engine.client import Submitted
from engine.ledger import SKIPPED, SUBMITTED, SUCCEEDED, UNFETCHED, UNKNOWN, JobRecord, Ledger
from engine.localimage import LocalImage
from engine.outputs import OutputStore
from engine.plan import Job, Plan
from engine.results import RunOptions
from engine.uploads import to_upload

__all__ = ["Decision", "Outlook", "Triage", "payload_sha256"]

Action = Literal["send", "reuse", "collect", "fetch", "unknown"]
# How many earlier successes of one payload are checked for intact files before giving up.
_CANDIDATES = 5


def payload_sha256(job: Job, digests: dict[Path, str] | None = None) -> str:
    """The payload's identity: a local image counts by its bytes, not its path."""
    cache = digests if digests is not None else {}

    def canonical(value: Any) -> Any:
        if isinstance(value, LocalImage):
            if value.path not in cache:
                cache[value.path] = _sha256_of(value.path) or "missing"
            return {"file-sha256": cache[value.path]}
        return value

    text = json.dumps(
        {k: canonical(v) for k, v in job.payload.items()}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass(frozen=True)
class Decision:
    """What to do with one job, and the earlier record that says so."""

    action: Action
    run_id: str | None = None
    # reuse: the files to copy (absolute); collect: the queued request; fetch: the output URLs;
    # unknown: the ledger's record, which request history may settle.
    sources: tuple[Path, ...] = ()
    request: Submitted | None = None
    urls: tuple[str, ...] = ()
    record: JobRecord | None = None


SEND = Decision("send")


@dataclass(frozen=True)
class Outlook:
    """A plan's jobs by what they need, and what the ones to send will cost."""

    decisions: Mapping[str, Decision]
    send: int
    reuse: int
    collect: int
    unknown: int
    cost_usd: float | None
    fetch: int = 0
    # Local images the jobs to send will upload to Segmind Storage (never uploaded before).
    uploads: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "to_send": self.send,
            "already_rendered": self.reuse,
            "to_collect": self.collect,
            "to_fetch": self.fetch,
            "unknown": self.unknown,
            "uploads": self.uploads,
        }


@dataclass
class Triage:
    """Decides jobs for one plan, backend and output folder (``backend`` is the ledger's label)."""

    ledger: Ledger | None
    backend: str
    store: OutputStore
    force: bool = False
    retry_unknown: bool = False
    model: str = ""
    # The storage host uploads are remembered for (None: uploads are not counted).
    storage: str | None = None
    digests: dict[Path, str] = field(default_factory=dict)
    _hashes: dict[tuple[str, int, int], str | None] = field(default_factory=dict)
    _manifest: dict[str, list[dict[str, Any]]] | None = None

    @classmethod
    def for_run(
        cls,
        ledger: Ledger | None,
        store: OutputStore,
        *,
        backend: Backend,
        options: RunOptions,
        model: str,
    ) -> Triage:
        """What a run on ``backend`` (or its dry run) decides. Uploads are remembered on the
        backend's storage, except with a cassette, which must hold every upload its replay asks for."""
        return cls(
            ledger,
            backend.label,
            store,
            force=options.force,
            retry_unknown=options.retry_unknown,
            model=model,
            storage=backend.storage if options.cassette is None else None,
        )

    def decide(self, job: Job, digest: str | None = None) -> Decision:
        digest = digest or payload_sha256(job, self.digests)
        records = (
            self.ledger.records(backend=self.backend, model=self.model, payload_sha256=digest)
            if self.ledger is not None
            else []
        )
        decision = self._from_ledger(records) if records else SEND
        if decision.action == "send":
            # The ledger knows of nothing to reuse or wait for; the output folder may, through
            # runs this ledger never saw (another RENDER_HOME rendered, or sent, this payload here).
            known = {record.run_id for record in records}
            return self._from_manifest(job.id, digest, skip_runs=known)
        return decision

    def outlook(self, plan: Plan) -> Outlook:
        """Every job's decision; the cost counts each payload to send once (twins share a request)."""
        decisions: dict[str, Decision] = {}
        sent: set[str] = set()
        cost: float | None = 0.0
        for job in plan.jobs:
            digest = payload_sha256(job, self.digests)
            decision = self.decide(job, digest)
            decisions[job.id] = decision
            if decision.action == "send" and digest not in sent:
                sent.add(digest)
                cost = None if cost is None or job.cost_usd is None else cost + job.cost_usd
        counts = dict.fromkeys(("send", "reuse", "collect", "fetch", "unknown"), 0)
        for decision in decisions.values():
            counts[decision.action] += 1
        return Outlook(
            decisions=decisions,
            send=counts["send"],
            reuse=counts["reuse"],
            collect=counts["collect"],
            fetch=counts["fetch"],
            unknown=counts["unknown"],
            cost_usd=None if cost is None else round(cost, 6),
            uploads=self._uploads(plan, decisions),
        )

    def _uploads(self, plan: Plan, decisions: Mapping[str, Decision]) -> int:
        """How many distinct images the jobs to send upload (those Storage has not got yet)."""
        if self.storage is None:
            return 0
        images = {
            image.path
            for job in plan.jobs
            if decisions[job.id].action == "send"
            for image in to_upload(plan.spec, job.payload)
        }
        digests = {_sha256_of(path) for path in images}
        return sum(
            1
            for digest in digests
            if digest is None
            or self.ledger is None
            or self.ledger.upload_url(digest, self.storage) is None
        )

    def _from_ledger(self, records: Sequence[JobRecord]) -> Decision:
        if not self.force:
            done = [r for r in records if r.status in {SUCCEEDED, SKIPPED}][:_CANDIDATES]
            for record in done:
                root = Path(record.out_dir)
                if self._intact(root, record.output_paths, record.output_sha256):
                    sources = tuple(root / path for path in record.output_paths)
                    return Decision("reuse", record.run_id, sources=sources)
        newest = records[0]
        if newest.status == UNFETCHED and newest.output_urls:
            return Decision("fetch", newest.run_id, urls=newest.output_urls, record=newest)
        if newest.status == SUBMITTED and newest.pollable:
            assert newest.request_id and newest.poll_url and newest.result_url  # noqa: PT018 - pollable
            request = Submitted(newest.request_id, newest.poll_url, newest.result_url)
            return Decision("collect", newest.run_id, request=request)
        if newest.status in {"sending", UNKNOWN, SUBMITTED} and not self.retry_unknown:
            # Settle the row that holds the request's money, not a later run's report of it.
            holder = next(
                (
                    r
                    for r in records
                    if r.status in {"sending", UNKNOWN, SUBMITTED} and (r.reserved_usd or 0) > 0
                ),
                newest,
            )
            return Decision("unknown", holder.run_id, record=holder)
        return SEND

    def _from_manifest(self, job_id: str, digest: str, *, skip_runs: set[str]) -> Decision:
        """The output folder's own record of this job, if it is of this payload, from runs other
        than ``skip_runs`` (whose rows in the ledger say more: a settled outcome, say)."""
        if self._manifest is None:
            self._manifest = self.store.history()
        entries = [
            entry
            for entry in self._manifest.get(job_id, ())
            if entry.get("payload_sha256") == digest
            and entry.get("backend") == self.backend
            and entry.get("run") not in skip_runs
        ]
        if not entries:
            return SEND
        if not self.force:
            for entry in entries:
                if entry.get("status") in {SUCCEEDED, SKIPPED}:
                    paths = tuple(str(p) for p in entry.get("outputs") or ())
                    hashes = tuple(str(h) for h in entry.get("sha256") or ())
                    if self._intact(self.store.root, paths, hashes):
                        sources = tuple(self.store.root / path for path in paths)
                        return Decision("reuse", str(entry.get("run")), sources=sources)
                    break
        newest = entries[0]
        if newest.get("status") == UNFETCHED and newest.get("urls"):
            urls = tuple(str(url) for url in newest["urls"])
            return Decision("fetch", str(newest.get("run")), urls=urls)
        request = newest.get("request") or {}
        if newest.get("status") == SUBMITTED and all(
            request.get(k) for k in ("id", "status_url", "result_url")
        ):
            queued = Submitted(
                str(request["id"]), str(request["status_url"]), str(request["result_url"])
            )
            return Decision("collect", str(newest.get("run")), request=queued)
        if newest.get("status") in {"sending", SUBMITTED, UNKNOWN} and not self.retry_unknown:
            return Decision("unknown", str(newest.get("run")))
        return SEND

    def _intact(self, root: Path, paths: Sequence[str], hashes: Sequence[str]) -> bool:
        if not paths or len(paths) != len(hashes):
            return False
        return all(self._hash(root / p) == h for p, h in zip(paths, hashes, strict=True))

    def _hash(self, path: Path) -> str | None:
        """A file's sha256, computed once per process for a file that has not changed since."""
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = _sha256_of(path)
        return self._hashes[key]
