"""A reference to an image file on disk, kept as a path until a request is built, and the checks that
make sure it is a picture the recipe may send.

A recipe may send only images: a file whose first bytes and header say PNG, JPEG, WebP or GIF.
Anything else (``/etc/passwd``, a key file) is refused at plan time, and checked again when the
request is built, since the file may have changed in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import ImageError

__all__ = ["IMAGE_KINDS", "LocalImage", "image_kind", "image_problem", "read_image"]

IMAGE_KINDS = "PNG, JPEG, WebP or GIF"
# Past this many pixels a header is not trusted to be a real picture (a decompression bomb).
_MAX_PIXELS = 100_000_000


@dataclass(frozen=True, slots=True)
class LocalImage:
    """An image parameter's value that names a local file; it is read only when sent."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


def image_kind(data: bytes) -> str | None:
    """The image format bytes announce (``png``, ``jpeg``, ``webp``, ``gif``), if any."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


def _kind(head: bytes) -> str | None:
    """The format's name as Pillow spells it."""
    kind = image_kind(head)
    return kind.upper() if kind else None


def image_problem(path: Path) -> str | None:
    """Why the file at ``path`` is not a picture to send (its magic bytes and its header, decoded
    with Pillow), or None when it is one."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    kind = _kind(head)
    if kind is None:
        return f"is not an image ({IMAGE_KINDS})"
    import warnings  # noqa: PLC0415 - only for images

    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - Pillow only when a recipe has images

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                found = image.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "claims more pixels than a real picture has"
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return f"starts like a {kind} image but its header cannot be read"
    if found != kind or width * height > _MAX_PIXELS or not width or not height:
        return f"starts like a {kind} image but its header says otherwise"
    return None


def read_image(image: LocalImage) -> bytes:
    """The file's bytes, now; an :class:`ImageError` if it vanished or is no longer an image."""
    try:
        data = image.path.read_bytes()
    except OSError as exc:
        raise ImageError(
            f"the image file {image.path} cannot be read now ({exc.strerror or type(exc).__name__}): "
            "it changed after the plan was made; nothing was sent"
        ) from exc
    if _kind(data[:16]) is None:
        raise ImageError(
            f"the image file {image.path} is no longer an image ({IMAGE_KINDS}): it changed after "
            "the plan was made; nothing was sent"
        )
    return data
