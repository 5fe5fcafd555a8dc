"""Local images uploaded to Segmind Storage once, and sent as URLs.

An image is known by the sha256 of its bytes: the same bytes are uploaded once per storage host,
across jobs (the first job uploads, the others wait for it), runs and recipes (the ledger remembers
the URL). A run with a cassette remembers within the run only, so that its recording holds every
upload a replay will ask for.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from engine.client import SegmindClient
from engine.errors import ImageError, JobFailed
from engine.ledger import Ledger
from engine.localimage import LocalImage, read_image
from engine.specs import Spec

__all__ = ["Uploads", "to_upload"]


def to_upload(spec: Spec, payload: dict[str, object]) -> list[LocalImage]:
    """The local images of a payload that go to Storage: those of parameters that take a URL."""
    return [
        value
        for name, value in payload.items()
        if isinstance(value, LocalImage)
        and (param := spec.params.get(name)) is not None
        and param.encoding != "base64"
    ]


class Uploads:
    """The uploads of one run; ``host`` names the storage host in the ledger (None: remember
    nothing beyond the run)."""

    def __init__(
        self,
        client: SegmindClient,
        ledger: Ledger,
        *,
        host: str | None,
        retrying: Callable[[Callable[[], Awaitable[str]]], Awaitable[str]],
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.host = host
        self.retrying = retrying
        self.uploaded = 0
        self._urls: dict[str, asyncio.Future[str]] = {}
        # A file's URL once this run has it: thousands of jobs share a handful of images.
        self._by_path: dict[Path, str] = {}

    async def urls(self, images: Iterable[LocalImage]) -> dict[Path, str]:
        """Each image's Storage URL, uploading those never uploaded before."""
        return {image.path: await self.url(image) for image in images}

    async def url(self, image: LocalImage) -> str:
        known = self._by_path.get(image.path)
        if known is not None:
            return known
        url = await self._url_of(image)
        self._by_path[image.path] = url
        return url

    async def _url_of(self, image: LocalImage) -> str:
        try:
            data = read_image(image)
        except ImageError as exc:
            raise JobFailed(str(exc)) from exc
        digest = hashlib.sha256(data).hexdigest()
        pending = self._urls.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._urls[digest] = future
        try:
            url = self.ledger.upload_url(digest, self.host) if self.host else None
            if url is None:
                # A partial, not a lambda: tenacity awaits only what it sees is a coroutine function.
                url = await self.retrying(
                    functools.partial(self.client.upload, data, name=image.path.name)
                )
                self.uploaded += 1
                if self.host:
                    self.ledger.record_upload(digest, self.host, url)
        except Exception as exc:
            # The next job asks again (a failure may be this job's alone: a retry ran out).
            del self._urls[digest]
            future.set_exception(exc)
            future.exception()  # retrieved: a job that never asks must not warn
            raise
        except BaseException:
            del self._urls[digest]
            future.cancel()
            raise
        future.set_result(url)
        return url
