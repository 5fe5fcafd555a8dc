"""``render fetch RUN --out DIR``: a submitted run's outputs gathered onto one machine from the URLs
the ledger recorded, without paying: the requests were paid when the workers sent them.

Segmind keeps a queued request's outputs about 7 days. A job Segmind answered with the picture
itself (no URL) has its file only on the worker that rendered it; the summary names where.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.client import Output, SegmindClient
from engine.errors import ApiProblem
from engine.ledger import SKIPPED, SUCCEEDED, UNFETCHED, Ledger
from engine.outputs import OutputStore
from engine.queue import Queue

__all__ = ["Gathered", "gather"]

_WITH_OUTPUTS = (SUCCEEDED, SKIPPED, UNFETCHED)


@dataclass
class Gathered:
    """What ``render fetch`` did: files written and the jobs they are of, files already there,
    jobs whose files only a worker has (by ``worker:folder``), jobs not rendered, and jobs whose
    downloads failed (each failure said)."""

    files: int = 0
    jobs: int = 0
    present: int = 0
    elsewhere: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    not_done: int = 0
    unfetched: int = 0


async def gather(
    ledger: Ledger,
    run_id: str,
    out: Path,
    *,
    client: SegmindClient,
    retrying: Callable[[Callable[[], Awaitable[Output]]], Awaitable[Output]],
) -> Gathered:
    """Every job of ``run_id`` whose newest row has outputs: downloaded from their URLs into
    ``out`` under each job's output path (a file already there with the same bytes is kept)."""
    queue = Queue(ledger)
    # A preview's (or a replay's) URLs name the worker's own in-process simulator: only the
    # worker has those files.
    remote = str(queue.submitted(run_id)["backend"]).startswith("segmind")
    plan = queue.plan(run_id)
    newest = _newest_rows(ledger, run_id)
    store = OutputStore(out)
    store.prepare()
    done = Gathered()
    for job in plan.jobs:
        row = newest.get(job.id)
        if row is None or row["status"] not in _WITH_OUTPUTS:
            done.not_done += 1
            continue
        paths = json.loads(row["output_paths"] or "[]")
        hashes = json.loads(row["output_sha256"] or "[]")
        if store.intact(paths, hashes):
            done.present += len(paths)
            done.jobs += 1
            continue
        urls = json.loads(row["output_urls"] or "[]")
        if not urls or not remote:
            where = f"{row['worker'] or 'this machine'}:{row['out_dir']}"
            done.elsewhere[where] = done.elsewhere.get(where, 0) + 1
            continue
        outputs: list[Output] = []
        for url in urls:
            try:
                outputs.append(await retrying(functools.partial(client.download, url)))
            except ApiProblem as problem:
                done.failed.append(f"{job.id}: {problem.message}")
        if len(outputs) != len(urls):
            done.unfetched += 1
            continue
        for path, output in zip(
            store.paths_for(job.output, [output.extension for output in outputs]),
            outputs,
            strict=True,
        ):
            store.write(path, output.data)
            done.files += 1
        done.jobs += 1
    return done


def _newest_rows(ledger: Ledger, run_id: str) -> dict[str, dict[str, Any]]:
    """Each job's newest row among the run's workers, with its worker and folder."""
    rows = ledger.db.execute(
        "SELECT jobs.job_id, jobs.status, jobs.output_urls, jobs.output_paths, "
        "jobs.output_sha256, runs.worker, "
        "runs.out_dir FROM jobs JOIN runs ON runs.id = jobs.run_id "
        "WHERE runs.batch = ? AND runs.id <> ? ORDER BY jobs.rowid",
        (run_id, run_id),
    ).fetchall()
    return {row["job_id"]: dict(row) for row in rows}
