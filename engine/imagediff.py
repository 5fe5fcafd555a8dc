"""Perceptual comparison of two images, for `render compare` and baselines: how much of the picture
a person would see differ, a heat map of where, and a 64-bit perceptual hash to keep in a baseline.

Both images are decoded small (a JPEG in draft mode, at 1/2, 1/4 or 1/8 scale), turned as their
EXIF orientation says, and compared at a common working size that fits within 256 px, after a 3×3
box blur: what differs only by where a resampling put an edge or a grain of texture is not a
difference a person sees. A pixel differs when pixelmatch's YIQ colour delta (Kotsarenko and Ramos,
2010) is over pixelmatch's default threshold, 0.1; the distance is the share of pixels that differ,
and ``changed`` is a distance over :data:`DEFAULT_THRESHOLD`, 0.002: a fifth of a percent of the
picture, a 46×46 patch of a 1024×1024 image. Re-encodes and rescales of one picture (JPEG quality 95
against 20, PNG against WebP, 1024 px against 333 px) measure 0.00002 or less; a moved object 0.02,
a recoloured product 0.14, another scene 0.3 and more. Images whose aspect ratios differ by more
than 3% are not the same picture: distance 1.0, and a heat map all red. Pillow does all of it in its
C operations.

:func:`perceptual_hash` is ``imagehash.phash`` (the same 64 bits for the same working-size image)
as 16 hex digits; :func:`hash_distance` is the share of bits that differ, and a hash says "changed"
past :data:`HASH_THRESHOLD`, 0.1 (more than 6 of the 64 bits). Re-encodes and rescales differ by
2 bits at most, other scenes by 18 and more; a moved object by 6 to 14, so not always past it. The
hash sees layout and brightness, not colour: a product recoloured at the same brightness keeps its
hash, and only :func:`compare_images` sees it.

Images over 40 megapixels are refused before they are decoded (a decompression bomb, or just too
large to compare); a file that is not a PNG, JPEG, WebP or GIF image, or that cannot be read or
decoded, raises :class:`~engine.errors.ImageError` naming it.
"""

from __future__ import annotations

import math
import statistics
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import (
    ExifTags,
    Image,
    ImageChops,
    ImageFilter,
    ImageMath,
    ImageOps,
    UnidentifiedImageError,
)

from engine.errors import ImageError
from engine.localimage import IMAGE_KINDS

__all__ = [
    "DEFAULT_THRESHOLD",
    "HASH_THRESHOLD",
    "MAX_PIXELS",
    "WORKING_SIDE",
    "Difference",
    "compare_images",
    "hash_distance",
    "perceptual_hash",
]

DEFAULT_THRESHOLD = 0.002
"""The share of visibly differing pixels above which two images have changed."""
HASH_THRESHOLD = 0.1
"""The share of differing bits above which two hashes say "changed" (more than 6 of 64)."""
MAX_PIXELS = 40_000_000
"""Images with more pixels than this are refused before they are decoded."""
WORKING_SIDE = 256
"""The longest side of the working size (smaller when an image is smaller: never enlarged)."""

_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_ASPECT_TOLERANCE = 0.03
_TURNED = {5, 6, 7, 8}  # the EXIF orientations that swap width and height
_BLUR = ImageFilter.BoxBlur(1)
_TOO_LARGE = (
    f"over the {MAX_PIXELS // 1_000_000}-megapixel limit for comparing images (not decoded)"
)
# pixelmatch's colour delta: Y, I and Q weights, its largest value, and its default threshold (0.1
# of the largest YIQ distance, squared). I and Q are stored scaled by 0.8 around 128 to fit a byte.
_Y, _I, _Q = 0.5053, 0.299, 0.1957
_IQ_SCALE = 0.8
_MAX_DELTA = 35215.0
_PIXEL_DELTA = _MAX_DELTA * 0.1**2
_YIQ = (
    *(0.29889531, 0.58662247, 0.11448223, 0.0),
    *(0.59597799 * _IQ_SCALE, -0.27417610 * _IQ_SCALE, -0.32180189 * _IQ_SCALE, 128.0),
    *(0.21147017 * _IQ_SCALE, -0.52261711 * _IQ_SCALE, 0.31114694 * _IQ_SCALE, 128.0),
)
# The heat map: unchanged pixels are the first image's luminance faded to a fifth; changed ones are
# red, fully so at 40% of the largest YIQ distance, and at least a third red however slight.
_FADE = 0.2
_FULL_RED = 0.4**2 * _MAX_DELTA
_RED_FLOOR = 0.35
_RED_LEVELS = [round(255 * max(_RED_FLOOR, math.sqrt(level / 255))) for level in range(256)]
# perceptual_hash: the lowest 8×8 frequencies of a 32×32 DCT-II (scipy's, without its factor 2).
_HASH_SIDE, _HASH_BITS = 32, 8
_COSINES = [
    [math.cos(math.pi * (2 * n + 1) * k / (2 * _HASH_SIDE)) for n in range(_HASH_SIDE)]
    for k in range(_HASH_BITS)
]


@dataclass(frozen=True)
class Difference:
    """How two images differ, as a person would see them."""

    distance: float  # 0.0 identical .. 1.0 entirely different: the share of pixels seen to differ
    changed: bool  # distance > threshold
    heatmap: bytes  # a PNG at the working size: unchanged pixels faded grey, changed ones red
    size: tuple[int, int]  # the working size compared (width, height)


def compare_images(a: Path, b: Path, *, threshold: float = DEFAULT_THRESHOLD) -> Difference:
    """Compare the images at ``a`` and ``b`` as a person sees them (see the module's docstring)."""
    with _open(a) as image_a, _open(b) as image_b:
        shown_a, shown_b = _shown_size(image_a), _shown_size(image_b)
        size = _working_size(shown_a, shown_b)
        if size is None:  # different aspect ratios: a different picture
            size = _fit(shown_a, min(WORKING_SIDE, *shown_a))
            red = Image.new("RGB", size, (255, 0, 0))
            return Difference(1.0, True, _png(red), size)
        pixels_a, pixels_b = _shrink(image_a, size, a), _shrink(image_b, size, b)
    delta = _colour_delta(pixels_a.filter(_BLUR), pixels_b.filter(_BLUR))
    seen = _math(lambda args: args["d"] > _PIXEL_DELTA, d=delta).convert("L")
    distance = seen.histogram()[1] / (size[0] * size[1])
    return Difference(distance, distance > threshold, _heatmap(pixels_a, delta, seen), size)


def perceptual_hash(path: Path) -> str:
    """The 64-bit DCT perceptual hash of the image at ``path`` (as ``imagehash.phash``), as 16 hex
    digits."""
    with _open(path) as image:
        shown = _shown_size(image)
        small = _shrink(image, _fit(shown, min(WORKING_SIDE, *shown)), path)
    grey = small.convert("L").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS)
    data = grey.tobytes()
    rows = [data[y * _HASH_SIDE : (y + 1) * _HASH_SIDE] for y in range(_HASH_SIDE)]
    # Along each row, then down each column: only the 8×8 lowest frequencies are needed.
    across = [
        [sum(c * p for c, p in zip(cos, row, strict=True)) for cos in _COSINES] for row in rows
    ]
    low = [
        sum(cos[y] * across[y][v] for y in range(_HASH_SIDE))
        for cos in _COSINES
        for v in range(_HASH_BITS)
    ]
    median = statistics.median(low)
    bits = "".join("1" if value > median else "0" for value in low)
    return f"{int(bits, 2):016x}"


def hash_distance(a: str, b: str) -> float:
    """The share of bits that differ between two hashes of :func:`perceptual_hash`: 0.0 .. 1.0."""
    if len(a) != len(b):
        raise ValueError(f"hashes of different lengths: {a!r} and {b!r}")
    return (int(a, 16) ^ int(b, 16)).bit_count() / (4 * len(a))


def _open(path: Path) -> Image.Image:
    """The image at ``path``, its header read and nothing decoded; refused when over MAX_PIXELS."""
    try:
        with warnings.catch_warnings():
            # Pillow warns, then refuses, past its own (larger) limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path, formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: {_TOO_LARGE}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: is not an image ({IMAGE_KINDS})") from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageError(f"{path}: {width}×{height} pixels is {_TOO_LARGE}")
    return image


def _orientation(image: Image.Image) -> int:
    """The image's EXIF orientation (1: as stored). A PNG's EXIF is read only when it comes before
    the pixels (Pillow decodes the whole image to look further), and a damaged EXIF is ignored."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except (OSError, SyntaxError, TypeError, ValueError, struct.error):
        return 1


def _shown_size(image: Image.Image) -> tuple[int, int]:
    """The image's size as it is shown: turned as its EXIF orientation says."""
    width, height = image.size
    return (height, width) if _orientation(image) in _TURNED else (width, height)


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so its longer side is ``side``."""
    width, height = size
    if width >= height:
        return side, max(1, round(side * height / width))
    return max(1, round(side * width / height)), side


def _working_size(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int] | None:
    """The size both images are compared at, or None when their aspect ratios differ."""
    ratio_a, ratio_b = a[0] / a[1], b[0] / b[1]
    if max(ratio_a, ratio_b) / min(ratio_a, ratio_b) > 1 + _ASPECT_TOLERANCE:
        return None
    return _fit(a, min(WORKING_SIDE, max(a), max(b)))


def _shrink(image: Image.Image, size: tuple[int, int], path: Path) -> Image.Image:
    """The image decoded (a JPEG at the smallest scale still at least ``size``), turned as its EXIF
    orientation says, in RGB over white, resized to ``size``."""
    try:
        orientation = _orientation(image)
        image.draft("RGB", size[::-1] if orientation in _TURNED else size)
        image.load()
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        if image.mode == "I" or image.mode.startswith("I;16"):  # a 16-bit PNG: Pillow would clip
            image = image.convert("I").point(lambda v: v / 257).convert("L")
        if image.mode != "RGB":
            if image.has_transparency_data:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            image = image.convert("RGB")
        return image.resize(size, Image.Resampling.BOX) if image.size != size else image
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: cannot be decoded ({exc})") from exc


def _colour_delta(a: Image.Image, b: Image.Image) -> Image.Image:
    """pixelmatch's YIQ colour delta of each pair of pixels, as a float image."""
    dy, di, dq = (
        channel.convert("F")
        for channel in ImageChops.difference(a.convert("RGB", _YIQ), b.convert("RGB", _YIQ)).split()
    )
    i_weight, q_weight = _I / _IQ_SCALE**2, _Q / _IQ_SCALE**2
    return _math(
        lambda args: (
            args["y"] * args["y"] * _Y
            + args["i"] * args["i"] * i_weight
            + args["q"] * args["q"] * q_weight
        ),
        y=dy,
        i=di,
        q=dq,
    )


def _math(expression: Callable[[dict[str, Any]], Any], **images: Image.Image) -> Image.Image:
    """``ImageMath.lambda_eval``, typed: the image an expression of images makes."""
    result = ImageMath.lambda_eval(expression, **images)
    if not isinstance(result, Image.Image):
        raise TypeError(f"ImageMath gave {type(result).__name__}, not an image")
    return result


def _heatmap(a: Image.Image, delta: Image.Image, seen: Image.Image) -> bytes:
    """The first image faded to grey, its changed pixels red by how much they changed, as a PNG."""
    grey = a.convert("L").point(lambda v: round(255 - (255 - v) * _FADE)).convert("RGB")
    level = delta.point(lambda v: v * (255 / _FULL_RED)).convert("L").point(_RED_LEVELS)
    mask = ImageChops.multiply(level, seen.point([0, *[255] * 255]))
    return _png(Image.composite(Image.new("RGB", a.size, (255, 0, 0)), grey, mask))


def _png(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()
