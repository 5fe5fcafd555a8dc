"""The preview compositor: a cheap, honest stand-in for what a Segmind model would return.

The product (its white background made transparent, its own alpha kept) is placed with its centre at
``x_value``% / ``y_value``% and its size set by ``scale``, with a soft shadow when asked, on a studio
backdrop, or on the scene or room the endpoint takes; a text-only model gets a card with its prompt.
Every image is marked as a preview, in its pixels and in its metadata.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import math
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, UnidentifiedImageError

from engine.formatting import clipped
from engine.specs import Spec

__all__ = [
    "PREVIEW_MARK",
    "Rendered",
    "canvas_size",
    "cut_out",
    "megapixel_size",
    "render_preview",
]

PREVIEW_MARK = "render preview (not a Segmind render)"
_FORMATS = {
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}
_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)")
_SOFTWARE_TAG = 0x0131
_WHITE_TOLERANCE = 18
_FILL_SIDE = 160
_DEFAULT_SIZE = (1024, 1024)
_BACKDROP_TOP = (236, 234, 230)
_BACKDROP_BOTTOM = (206, 202, 196)


@dataclass(frozen=True)
class Rendered:
    """One encoded preview image."""

    data: bytes
    media_type: str
    extension: str


def megapixel_size(megapixel: float, aspect_ratio: str) -> tuple[int, int]:
    """Segmind's node: pixels = megapixel × 10^6, sides from the ratio, each rounded to a multiple of
    64 (32 from 2.0 MP up). 1.0 MP 1:1 → 1024×1024; 1.0 MP 8:5 → 1280×768; 1.5 MP 16:9 → 1664×896.
    """
    ratio = _RATIO.match(aspect_ratio)
    width_part, height_part = (int(ratio.group(1)), int(ratio.group(2))) if ratio else (1, 1)
    pixels = megapixel * 1_000_000
    step = 32 if megapixel >= 2.0 else 64
    width = math.sqrt(pixels * width_part / height_part)
    height = math.sqrt(pixels * height_part / width_part)
    return (
        max(step, math.floor(width / step + 0.5) * step),
        max(step, math.floor(height / step + 0.5) * step),
    )


def canvas_size(spec: Spec, payload: Mapping[str, Any]) -> tuple[int, int]:
    """The output size: megapixel × aspect_ratio, or width/height params, or the spec's defaults."""

    def value(name: str) -> Any:
        param = spec.params.get(name)
        return payload.get(name, param.default if param else None)

    if "megapixel" in spec.params or "aspect_ratio" in spec.params:
        megapixel = value("megapixel")
        try:
            mp = float(megapixel) if megapixel is not None else 1.0
        except (TypeError, ValueError):
            mp = 1.0
        return megapixel_size(mp, str(value("aspect_ratio") or "1:1"))
    for width_name, height_name in (("img_width", "img_height"), ("width", "height")):
        width, height = value(width_name), value(height_name)
        if isinstance(width, int) and isinstance(height, int):
            return (width, height)
    return _DEFAULT_SIZE


def cut_out(image: Image.Image) -> Image.Image:
    """The product alone: an image with alpha keeps it; otherwise the white that touches the border
    becomes transparent (white inside the product stays). Cropped to what is left.
    """
    rgba = image.convert("RGBA")
    lowest = rgba.getchannel("A").getextrema()[0]
    if image.mode in {"RGBA", "LA", "PA"} and isinstance(lowest, int) and lowest < 255:
        alpha = rgba.getchannel("A")
    else:
        alpha = ImageChops.invert(_border_white(image.convert("RGB")))
    rgba.putalpha(alpha)
    box = alpha.getbbox()
    return rgba.crop(box) if box else rgba


def _border_white(image: Image.Image) -> Image.Image:
    """A mask of the near-white pixels connected to the border (255 there, 0 elsewhere).

    Pillow's flood fill runs in Python, pixel by pixel; it runs here on a copy at most
    ``_FILL_SIDE`` pixels wide, and the full-size near-white mask sharpens the result again.
    """
    red, green, blue = image.split()
    darkest = ImageChops.darker(ImageChops.darker(red, green), blue)
    white = darkest.point(lambda v: 255 if v >= 255 - _WHITE_TOLERANCE else 0)
    small = white.copy()
    small.thumbnail((_FILL_SIDE, _FILL_SIDE), Image.Resampling.NEAREST)
    width, height = small.size
    for corner in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)):
        if small.getpixel(corner) == 255:
            ImageDraw.floodfill(small, corner, 128, thresh=0)
    reached = small.point(lambda v: 255 if v == 128 else 0).resize(
        image.size, Image.Resampling.NEAREST
    )
    return ImageChops.darker(reached, white)


def render_preview(spec: Spec, payload: Mapping[str, Any], *, samples: int = 1) -> list[Rendered]:
    """The preview images for one request (``samples`` of them for models that make several)."""
    fmt = str(payload.get("image_format", _default(spec, "image_format") or "png")).lower()
    quality = payload.get("image_quality", _default(spec, "image_quality") or 90)
    images = [_compose(spec, payload, index) for index in range(max(1, samples))]
    return [
        _encode(image, fmt, int(quality) if isinstance(quality, int) else 90) for image in images
    ]


def _default(spec: Spec, name: str) -> Any:
    param = spec.params.get(name)
    return param.default if param else None


def _compose(spec: Spec, payload: Mapping[str, Any], index: int) -> Image.Image:
    images = {name: payload.get(name) for name, p in spec.params.items() if p.type == "image"}
    if not images:
        return _card(spec, payload, canvas_size(spec, payload), index)
    if "main_image" in images:
        return _staging(payload)
    if {"Character", "Scene"} <= set(images):
        return _character_in_scene(payload)
    size = canvas_size(spec, payload)
    backdrop = _studio(size)
    product_value = next(iter(images.values()))
    product = _load(product_value, label="product", cut=True)
    scale = _number(payload.get("scale", _default(spec, "scale")), 0.6)
    x = _number(payload.get("x_value", _default(spec, "x_value")), 50)
    y = _number(payload.get("y_value", _default(spec, "y_value")), 50)
    shadow = bool(payload.get("dropshadow", _default(spec, "dropshadow") or False))
    _place(
        backdrop,
        product,
        centre=(x / 100 * size[0], y / 100 * size[1]),
        box=(scale * size[0], scale * size[1]),
        shadow=shadow,
    )
    _caption(backdrop, str(payload.get("prompt", "")), spec)
    return backdrop


def _number(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def _studio(size: tuple[int, int]) -> Image.Image:
    """A neutral studio sweep: light at the top, a little darker towards the floor."""
    width, height = size
    column = Image.linear_gradient("L").resize((1, height))
    top = Image.new("RGB", (1, height), _BACKDROP_TOP)
    bottom = Image.new("RGB", (1, height), _BACKDROP_BOTTOM)
    return Image.composite(bottom, top, column).resize((width, height))


def _place(
    canvas: Image.Image,
    product: Image.Image,
    *,
    centre: tuple[float, float],
    box: tuple[float, float],
    shadow: bool,
) -> None:
    """Fit ``product`` inside ``box`` (keeping its shape) and paste it centred on ``centre``."""
    fit = min(box[0] / product.width, box[1] / product.height)
    size = (max(1, round(product.width * fit)), max(1, round(product.height * fit)))
    resized = product.resize(size, Image.Resampling.LANCZOS)
    left, top = round(centre[0] - size[0] / 2), round(centre[1] - size[1] / 2)
    if shadow:
        offset = max(2, round(min(canvas.size) * 0.015))
        blur = max(2, round(min(size) * 0.04))
        alpha = resized.getchannel("A").point(lambda v: v * 0.45)
        layer = Image.new("L", canvas.size, 0)
        layer.paste(alpha, (left + offset, top + offset * 2))
        layer = layer.filter(ImageFilter.GaussianBlur(blur))
        canvas.paste(Image.new("RGB", canvas.size, (60, 56, 52)), (0, 0), layer)
    canvas.paste(resized, (left, top), resized)


def _staging(payload: Mapping[str, Any]) -> Image.Image:
    room = _load(payload.get("main_image"), label="room").convert("RGB")
    overlay_mask = payload.get("overlay_image_mask")
    overlay = _load(payload.get("overlay_image"), label="furniture", cut=overlay_mask is None)
    if overlay_mask is not None:
        mask = _load(overlay_mask, label="mask").convert("L").resize(overlay.size)
        overlay = overlay.convert("RGBA")
        overlay.putalpha(mask)
        box = mask.getbbox()
        overlay = overlay.crop(box) if box else overlay
    area = (0.25 * room.width, 0.45 * room.height, 0.75 * room.width, 0.95 * room.height)
    main_mask = payload.get("main_image_mask")
    if main_mask is not None:
        found = (
            _load(main_mask, label="mask")
            .convert("L")
            .resize(room.size)
            .point(lambda v: 255 if v > 127 else 0)
            .getbbox()
        )
        area = found or area
    centre = ((area[0] + area[2]) / 2, (area[1] + area[3]) / 2)
    _place(room, overlay, centre=centre, box=(area[2] - area[0], area[3] - area[1]), shadow=True)
    _caption(room, str(payload.get("prompt", "")), None)
    return room


def _character_in_scene(payload: Mapping[str, Any]) -> Image.Image:
    scene = _load(payload.get("Scene"), label="scene", size=(1024, 768)).convert("RGB")
    character = _load(payload.get("Character"), label="character", cut=True)
    centre = (scene.width / 2, scene.height * 0.62)
    _place(
        scene, character, centre=centre, box=(scene.width * 0.45, scene.height * 0.6), shadow=True
    )
    _caption(scene, str(payload.get("Prompt", "")), None)
    return scene


def _card(spec: Spec, payload: Mapping[str, Any], size: tuple[int, int], index: int) -> Image.Image:
    """A text-only model's preview: its prompt on a clean card."""
    card = _studio(size)
    draw = ImageDraw.Draw(card)
    font = _font(max(14, size[0] // 28))
    text = textwrap.fill(
        str(payload.get("prompt", "")), width=max(16, size[0] // max(8, size[0] // 40))
    )
    draw.multiline_text(
        (size[0] * 0.08, size[1] * 0.3), text, fill=(60, 60, 60), font=font, spacing=6
    )
    sample = f" · sample {index + 1}" if index else ""
    draw.text(
        (size[0] * 0.08, size[1] * 0.2),
        f"{spec.title}{sample}",
        fill=(110, 110, 110),
        font=_font(max(12, size[0] // 36)),
    )
    _badge(card)
    return card


def _caption(image: Image.Image, prompt: str, spec: Spec | None) -> None:
    del spec
    draw = ImageDraw.Draw(image)
    size = max(12, min(image.size) // 48)
    font = _font(size)
    line = clipped(prompt, 120)
    if line:
        draw.rectangle(
            (0, image.height - size * 2, image.width, image.height), fill=(250, 250, 248)
        )
        draw.text((size // 2, image.height - size * 1.6), line, fill=(90, 90, 90), font=font)
    _badge(image)


def _badge(image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    size = max(12, min(image.size) // 36)
    font = _font(size)
    draw.rectangle((0, 0, size * 6, size * 1.8), fill=(214, 64, 52))
    draw.text((size // 2, size // 3), "PREVIEW", fill=(255, 255, 255), font=font)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _load(
    value: Any, *, label: str, cut: bool = False, size: tuple[int, int] = (512, 512)
) -> Image.Image:
    """An image from base64 (or a data URI), cut out of its white background if ``cut``; a URL cannot
    be fetched offline and becomes a labelled placeholder.
    """
    if isinstance(value, str) and not value.startswith(("http://", "https://")):
        data = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            return _decoded(data, cut=cut).copy()
        except (binascii.Error, UnidentifiedImageError, ValueError, OSError):
            pass
    return _placeholder(value, label=label, size=size)


@functools.lru_cache(maxsize=32)
def _decoded(data: str, *, cut: bool) -> Image.Image:
    """An input image, decoded (and cut out) once: a recipe sends a few products to many jobs."""
    with Image.open(io.BytesIO(base64.b64decode(data, validate=False))) as opened:
        opened.load()
        return cut_out(opened) if cut else opened.copy()


def _placeholder(value: Any, *, label: str, size: tuple[int, int]) -> Image.Image:
    """A labelled shape standing for an input the preview cannot see (a URL, offline)."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle(
        (0, 0, size[0] - 1, size[1] - 1), radius=size[0] // 10, fill=(150, 160, 175, 255)
    )
    name = str(value).rstrip("/").rsplit("/", 1)[-1][:40] if isinstance(value, str) else "?"
    font = _font(max(12, size[0] // 16))
    draw.text(
        (size[0] * 0.08, size[1] * 0.42), f"{label}: {name}", fill=(255, 255, 255, 255), font=font
    )
    return image


def _encode(image: Image.Image, fmt: str, quality: int) -> Rendered:
    pil_format, media_type = _FORMATS.get(fmt, _FORMATS["png"])
    exif = Image.Exif()
    exif[_SOFTWARE_TAG] = PREVIEW_MARK
    buffer = io.BytesIO()
    options: dict[str, Any] = {"exif": exif}
    if pil_format in {"JPEG", "WEBP"}:
        options["quality"] = max(1, min(quality, 100))
    image.convert("RGB").save(buffer, pil_format, **options)
    extension = ".jpg" if pil_format == "JPEG" else f".{pil_format.lower()}"
    return Rendered(buffer.getvalue(), media_type, extension)
