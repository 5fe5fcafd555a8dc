"""Segmind Storage in the simulator: uploads as data URLs, the asset URLs they answer, and what image
inputs may be (an asset URL stands for its bytes in a preview; ``strict_urls`` refuses inline base64
where an endpoint takes a URL).

Uploads go to ``POST /upload-asset`` as ``{"data_urls": ["data:image/png;base64,…"]}`` (the official
SDK's ``files.upload``) and answer ``{base}/assets/{sha256 of the bytes}{ext}``: the same bytes give the
same URL, as a content-addressed store would, so a run that uploads again reuses its URLs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mimetypes
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from engine.specs import Spec

__all__ = [
    "UploadError",
    "asset_name",
    "inline_in_uri_params",
    "parse_upload",
    "resolve_assets",
]

_DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+)((?:;[^;,]*)*);base64,(.*)$", re.I | re.S)
_ASSET_PATH = re.compile(r"^/assets/([0-9a-f]{64}\.[a-z0-9]+)$")
# The extensions Segmind's CDN would give the SDK's media types; ``mimetypes`` for the rest.
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "image/svg+xml": ".svg",
    "image/x-icon": ".ico",
    "image/apng": ".apng",
    "image/heic": ".heic",
    "image/heif": ".heif",
}


class UploadError(ValueError):
    """An upload body the simulator refuses (400), with the reason."""


def parse_upload(body: bytes) -> list[tuple[bytes, str]]:
    """The images of an upload body, as (bytes, media type), in order."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        raise UploadError('The body must be JSON: {"data_urls": ["data:image/..."]}') from None
    urls = document.get("data_urls") if isinstance(document, dict) else None
    if not isinstance(urls, list) or not urls:
        raise UploadError("data_urls must be a non-empty JSON list of data URLs")
    images = []
    for index, url in enumerate(urls):
        found = _DATA_URL.match(url) if isinstance(url, str) else None
        if found is None:
            raise UploadError(
                f"data_urls[{index}] is not a data URL of an image (data:image/...;base64,...)"
            )
        try:
            data = base64.b64decode(found.group(3), validate=True)
        except (binascii.Error, ValueError):
            raise UploadError(f"data_urls[{index}] is not valid base64") from None
        if not data:
            raise UploadError(f"data_urls[{index}] holds no data")
        images.append((data, found.group(1).lower()))
    return images


def asset_name(data: bytes, media_type: str) -> str:
    """The asset's file name: its content's hash and the extension of its media type."""
    extension = _EXTENSIONS.get(media_type) or mimetypes.guess_extension(media_type) or ".bin"
    return hashlib.sha256(data).hexdigest() + extension


def _asset_of(value: Any) -> str | None:
    """The asset name a URL of any host's ``/assets/…`` names (the CDN's host is not ours)."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return None
    found = _ASSET_PATH.match(urlsplit(value).path)
    return found.group(1) if found else None


def resolve_assets(
    spec: Spec, payload: Mapping[str, Any], lookup: Callable[[str], bytes | None]
) -> dict[str, Any]:
    """The payload with every image parameter that names an uploaded asset replaced by the
    asset's bytes as base64, which the preview compositor reads as it reads an inline image."""
    resolved = dict(payload)
    for name, param in spec.params.items():
        asset = _asset_of(payload.get(name)) if param.type == "image" else None
        data = lookup(asset) if asset is not None else None
        if data is not None:
            resolved[name] = base64.b64encode(data).decode("ascii")
    return resolved


def inline_in_uri_params(spec: Spec, payload: Mapping[str, Any]) -> list[str]:
    """The image parameters that take a URL but were sent base64 (or a data URI)."""
    return [
        name
        for name, param in spec.params.items()
        if param.type == "image"
        and param.encoding == "uri"
        and isinstance(payload.get(name), str)
        and not str(payload[name]).startswith(("http://", "https://"))
    ]
