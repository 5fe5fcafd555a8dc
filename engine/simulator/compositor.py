"""The preview compositor: a cheap, honest stand-in for what a Segmind model would return.

The product (its white background made transparent, its own alpha kept) is placed with its centre at
``x_value``% / ``y_value``% and its size set by ``scale``, with a soft shadow when asked, on a backdrop
drawn from the payload's words, or on the scene or room the endpoint takes; a text-only model gets a
card with its prompt. Every image is marked as a preview, in its pixels and in its metadata.

The backdrop shows what a prompt asks for, so that cells differing only in scene or lighting text
differ at a glance: keywords choose a palette (a warm interior, an outdoor sky over stone or grass, a
white loft, a night, a studio sweep) and motifs (windows, curtains, plants, blossom, floorboards,
tiles, a skyline, stars), the lighting text chooses the light's colour, size and kind, and a sha256
of each text shifts the hue and places the light and the motifs, so two different texts never look
alike, known words or not. A caption band writes the scene and the light, wrapped between words, in
a size a 360-pixel thumbnail still shows. The same payload always gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import colorsys
import functools
import hashlib
import io
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, UnidentifiedImageError

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

RGB = tuple[int, int, int]


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
    reached = small.point(lambda v: 255 if v == 128 else 0)
    if small.size != image.size:
        # Enlarged, the coarse mask misses up to a coarse pixel of the white along the product's
        # edge (a pale fringe on a coloured backdrop): it reaches one coarse pixel further, and
        # the full-size near-white mask keeps that to white.
        reached = reached.filter(ImageFilter.MaxFilter(3))
    return ImageChops.darker(reached.resize(image.size, Image.Resampling.NEAREST), white)


def render_preview(spec: Spec, payload: Mapping[str, Any], *, samples: int = 1) -> list[Rendered]:
    """The preview images for one request (``samples`` of them for models that make several)."""
    fmt = str(payload.get("image_format", _default(spec, "image_format") or "png")).lower()
    quality = payload.get("image_quality", _default(spec, "image_quality") or 90)
    images = [_compose(spec, payload, index) for index in range(max(1, samples))]
    seed = payload.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
        for image in images:
            _seed_mark(image, seed)
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
    words = _words(spec, payload)
    light = _light_of(words)
    canvas = _backdrop(size, words.scene, words.light).copy()
    product_value = next(iter(images.values()))
    product = _load(product_value, label="product", cut=True)
    scale = _number(payload.get("scale", _default(spec, "scale")), 0.6)
    x = _number(payload.get("x_value", _default(spec, "x_value")), 50)
    y = _number(payload.get("y_value", _default(spec, "y_value")), 50)
    shadow = bool(payload.get("dropshadow", _default(spec, "dropshadow") or False))
    _place(
        canvas,
        product,
        centre=(x / 100 * size[0], y / 100 * size[1]),
        box=(scale * size[0], scale * size[1]),
        shadow=shadow,
        lean=max(-1.0, min(1.0, (x / 100 - light.x) * 3)) if light.strength else 1.0,
    )
    _caption(canvas, [_Row(words.scene, _INK), _Row(words.light, _INK_SOFT, light.colour)])
    return canvas


def _number(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


# --- What the payload's words say: the scene, and the light ------------------------------------


@dataclass(frozen=True)
class _Words:
    """What a payload asks for: ``scene``, the place (the backdrop), and ``light``, its lighting."""

    scene: str
    light: str


_CLAUSE = re.compile(r"[,;]")
# The place a product photo is set in: "... in a warm living room", "on the terrace".
_PLACE = re.compile(
    r"\b(?:in|on|at|inside|under|against|beside|near|by|within)\s+(?=(?:a|an|the)\b)",
    re.IGNORECASE,
)
_PLACE_BARE = re.compile(r"\b(?:in|on|at|inside|under|against)\s+(?=\w)", re.IGNORECASE)
_LIGHT_WORDS = re.compile(
    r"\b(?:light|lights|lighting|lit|backlit|sun|sunny|sunlit|sunlight|sunshine|sunset|sunrise"
    r"|glow|glowing|shadows?|golden hour|dusk|dawn|neon|softbox|candlelight|moonlight)\b",
    re.IGNORECASE,
)


def _read_prompt(prompt: str) -> _Words:
    """The scene and the light a product prompt names.

    The scene is what follows "in a", "on the"... (else a bare "in", "on"...) in the first clause
    (the product comes before it); without one, the later clauses that are not about light; else the whole first clause. The light
    is the later clauses that speak of light ("soft late-afternoon light").
    """
    clauses = [part.strip() for part in _CLAUSE.split(prompt) if part.strip()]
    if not clauses:
        return _Words("", "")
    lit = [clause for clause in clauses[1:] if _LIGHT_WORDS.search(clause)]
    place = _PLACE.search(clauses[0]) or _PLACE_BARE.search(clauses[0])
    if place:
        scene = clauses[0][place.end() :]
    else:
        rest = [clause for clause in clauses[1:] if clause not in lit]
        scene = ", ".join(rest) if rest else clauses[0]
    return _Words(scene, ", ".join(lit))


def _words(spec: Spec, payload: Mapping[str, Any]) -> _Words:
    """A product model's scene (from its prompt) and light (its ``lighting_prompt``, where the spec
    has one and ``lighting`` is not off; else the prompt's clauses about light)."""
    read = _read_prompt(str(payload.get("prompt", _default(spec, "prompt")) or ""))
    if "lighting_prompt" in spec.params and payload.get("lighting", True) is not False:
        lighting = payload.get("lighting_prompt", _default(spec, "lighting_prompt"))
        if isinstance(lighting, str) and lighting.strip():
            return _Words(read.scene, " ".join(lighting.split()))
    return read


def _digest(text: str) -> bytes:
    """A stable hash of a text (case and spacing ignored): the same words, the same picture."""
    return hashlib.sha256(" ".join(text.lower().split()).encode()).digest()


def _fraction(digest: bytes, index: int) -> float:
    """The ``index``-th number in [0, 1] a digest gives (16 of them)."""
    return int.from_bytes(digest[2 * index : 2 * index + 2], "big") / 65535


def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(word) for word in words) + r")\b")


def _hits(pattern: re.Pattern[str], text: str) -> int:
    return len(pattern.findall(text.lower()))


# --- The backdrop: palette, motifs, light --------------------------------------------------------


@dataclass(frozen=True)
class _Palette:
    """A kind of place: its wall (or sky) from the top to the horizon, its floor from the horizon
    to the bottom, and where the horizon lies (a fraction of the height)."""

    wall: tuple[RGB, RGB]
    floor: tuple[RGB, RGB]
    horizon: float
    dark: bool = False


_PALETTES: dict[str, tuple[re.Pattern[str], _Palette]] = {
    name: (_pattern(words), palette)
    for name, words, palette in (
        (
            "night",
            ("night", "neon", "moody", "dark", "midnight", "moon", "moonlit", "evening", "space",
             "orbital", "starship", "starships", "planet", "galaxy", "cyberpunk", "nightclub"),
            _Palette(((16, 20, 44), (50, 44, 88)), ((40, 36, 60), (20, 18, 32)), 0.7, dark=True),
        ),
        (
            "outdoor",
            ("terrace", "garden", "patio", "park", "outdoor", "outdoors", "balcony", "beach",
             "courtyard", "sky", "street", "meadow", "forest", "lawn", "blossom", "cherry",
             "rooftop", "field", "lake", "seaside", "poolside", "city", "clouds", "desert", "dunes",
             "mountain", "mountains", "snow", "snowy"),
            _Palette(((104, 162, 226), (210, 230, 246)), ((206, 194, 174), (166, 152, 132)), 0.64),
        ),
        (
            "studio",
            ("studio", "softbox", "seamless", "backdrop", "catalog", "catalogue", "set",
             "product photography", "plain background", "white background", "packshot"),
            _Palette(((242, 240, 236), (224, 221, 216)), ((222, 219, 214), (198, 194, 188)), 0.74),
        ),
        (
            "loft",
            ("loft", "white", "minimal", "minimalist", "scandinavian", "gallery", "bright",
             "airy", "concrete", "industrial", "modern", "steel"),
            _Palette(((250, 250, 248), (236, 235, 232)), ((218, 214, 207), (186, 181, 174)), 0.7),
        ),
        (
            "warm",
            ("living room", "cozy", "cosy", "warm", "bedroom", "fireplace", "kitchen", "cabin",
             "lounge", "oak", "wooden", "wood", "linen", "library", "cafe", "rustic", "farmhouse",
             "hotel", "velvet"),
            _Palette(((206, 168, 132), (234, 208, 176)), ((166, 114, 74), (118, 78, 50)), 0.7),
        ),
    )
}  # fmt: skip

_MOTIFS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, _pattern(words))
    for name, words in (
        ("stars", ("night", "space", "stars", "starry", "orbital", "galaxy", "starships")),
        ("planet", ("planet", "orbital", "moon")),
        ("skyline", ("city", "skyline", "towers", "street", "urban", "downtown", "buildings")),
        ("window", ("window", "windows", "loft", "curtains", "curtain")),
        ("greenery", ("garden", "park", "terrace", "patio", "hedge", "bushes", "meadow", "forest",
                      "trees", "lawn", "greenery")),
        ("planks", ("oak", "wood", "wooden", "parquet", "floorboards", "plank", "hardwood")),
        ("tiles", ("stone", "tile", "tiles", "marble", "terrazzo", "paving", "flagstones",
                   "concrete")),
        ("plants", ("palm", "palms", "plant", "plants", "potted", "fern", "monstera", "foliage")),
        ("blossom", ("blossom", "blossoms", "cherry", "sakura", "petals", "flowers", "floral")),
    )
)  # fmt: skip

_SIDE = 320  # the backdrop is drawn this many pixels on its longer side, then enlarged (soft focus)


def _palette(scene: str, light: str) -> tuple[str, _Palette]:
    """The palette whose words the scene names most (the light may only make a room dark)."""
    best, score = "studio", 0
    for name, (pattern, _) in _PALETTES.items():
        hits = _hits(pattern, scene) + (_hits(pattern, light) if name == "night" else 0)
        if hits > score:
            best, score = name, hits
    if score == 0 and scene:
        return "", _hashed_palette(_digest(scene))
    return best, _PALETTES[best][1]


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (round(red * 255), round(green * 255), round(blue * 255))


def _hashed_palette(digest: bytes) -> _Palette:
    """A place no keyword names: its hue (and its floor's) from the text's hash."""
    hue, floor_hue = _fraction(digest, 0), _fraction(digest, 0) + 0.08 * _fraction(digest, 1) - 0.04
    return _Palette(
        (_hsv(hue, 0.24, 0.93), _hsv(hue, 0.34, 0.84)),
        (_hsv(floor_hue, 0.32, 0.62), _hsv(floor_hue, 0.38, 0.46)),
        0.6 + 0.14 * _fraction(digest, 2),
    )


def _shifted(colour: RGB, hue: float, value: float) -> RGB:
    """``colour`` with its hue turned by ``hue`` (a turn is 1.0) and its value scaled by ``value``."""
    h, s, v = colorsys.rgb_to_hsv(*(channel / 255 for channel in colour))
    return _hsv(h + hue, s, max(0.0, min(1.0, v * value)))


@dataclass(frozen=True)
class _Light:
    """The light a text asks for: its colour (and a second one, for neon), where its source is (a
    fraction of the canvas), how far it reaches (a fraction of the longer side) and how strong."""

    colour: RGB
    x: float
    y: float
    radius: float
    strength: float
    kind: str
    second: RGB | None = None


_LIGHT_COLOURS: tuple[tuple[re.Pattern[str], RGB], ...] = tuple(
    (_pattern(words), colour)
    for words, colour in (
        (("neon", "magenta", "pink"), (255, 64, 196)),
        (("golden", "sunset", "sunrise", "afternoon", "late-afternoon", "warm", "candle",
          "candlelight", "amber", "fireplace", "tungsten", "dusk", "dawn", "cozy", "lantern",
          "lanterns"), (255, 174, 88)),
        (("moon", "moonlight", "moonlit", "blue", "cool", "night", "midnight", "cold", "space"),
         (150, 178, 255)),
        (("softbox", "studio", "white", "daylight", "bright", "overcast", "diffused", "flash",
          "seamless"), (255, 255, 248)),
        (("sun", "sunny", "sunlit", "sunlight", "sunshine", "noon", "terrace", "garden"),
         (255, 236, 178)),
    )
)  # fmt: skip
_LIGHT_KINDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (_pattern(words), kind)
    for words, kind in (
        (("neon",), "neon"),
        (("softbox", "soft box", "strip light", "key light", "studio"), "softbox"),
        (("lamp", "pendant", "chandelier", "bulb", "candle", "candlelight", "lantern", "lanterns"),
         "lamp"),
        (("window", "windows"), "window"),
        (("sun", "sunny", "sunlit", "sunlight", "sunshine", "sunset", "golden hour"), "sun"),
    )
)  # fmt: skip
_SOFT = _pattern(("soft", "softbox", "large", "diffuse", "diffused", "bounce", "overcast"))
_HARD = _pattern(("hard", "harsh", "spot", "spotlight", "direct", "rim", "narrow", "dramatic"))
_LOW = _pattern(("low", "side", "raking", "long"))
_HIGH = _pattern(("overhead", "top", "above", "ceiling", "noon"))
_LEFT, _RIGHT = _pattern(("left",)), _pattern(("right",))
_TEAL = _pattern(("teal", "cyan", "turquoise", "blue"))


def _light_of(words: _Words, index: int = 0) -> _Light:
    """The light: its colour and kind from the light's words (else the scene's), its place from
    direction words or else the hash of the scene and light (and the sample's number, for a model of
    several): the same light falls another way in another place."""
    text = words.light or words.scene
    digest = _digest(f"{words.scene}|{words.light}" + (f"#{index}" if index else ""))
    colour = next((rgb for p, rgb in _LIGHT_COLOURS if _hits(p, text)), None)
    if colour is None:
        colour = _hsv(_fraction(_digest(text), 3), 0.42, 1.0) if text else (255, 255, 248)
    kind = next((name for p, name in _LIGHT_KINDS if _hits(p, text)), "")
    x = 0.12 + 0.76 * _fraction(digest, 4)
    x = 0.14 if _hits(_LEFT, text) else 0.86 if _hits(_RIGHT, text) else x
    y = 0.06 + 0.26 * _fraction(digest, 5)
    y = 0.42 if _hits(_LOW, text) else 0.03 if _hits(_HIGH, text) else y
    radius = 0.62 if _hits(_SOFT, text) else 0.32 if _hits(_HARD, text) else 0.46
    second = (40, 220, 210) if kind == "neon" and _hits(_TEAL, text) else None
    if second is not None:  # two tubes, one on each side (the second mirrors the first)
        x = 0.1 + 0.2 * _fraction(digest, 4)
    return _Light(colour, x, y, radius, 0.78 if text else 0.0, kind, second)


@dataclass(frozen=True)
class _Sketch:
    """A backdrop being drawn, small: its pen, size, horizon, palette and a seeded random source."""

    draw: ImageDraw.ImageDraw
    width: int
    height: int
    horizon: int
    palette: _Palette
    rng: random.Random
    scene: str

    def px(self, fraction: float) -> int:
        """A length, as a fraction of the sketch's width, in pixels (at least one)."""
        return max(1, round(fraction * self.width))


@functools.lru_cache(maxsize=48)
def _backdrop(size: tuple[int, int], scene: str, light_text: str) -> Image.Image:
    """The place ``scene`` names, lit as ``light_text`` says, at ``size``: drawn small, softened and
    enlarged (a backdrop out of focus behind a sharp product). Callers copy it."""
    if not scene and not light_text:
        return _studio(size)
    scale = _SIDE / max(size)
    small = (max(8, round(size[0] * scale)), max(8, round(size[1] * scale)))
    digest = _digest(scene)
    palette = _varied(*_palette(scene, light_text), digest)
    image = _room(small, palette, tilt=50 * _fraction(digest, 9) - 25)
    sketch = _Sketch(
        ImageDraw.Draw(image),
        small[0],
        small[1],
        round(palette.horizon * small[1]),
        palette,
        random.Random(int.from_bytes(digest[16:], "big")),
        scene.lower(),
    )
    for motif, pattern in _MOTIFS:
        if _hits(pattern, scene):
            _MOTIF_DRAWERS[motif](sketch)
    _lit(image, sketch, _light_of(_Words(scene, light_text)))
    image = image.filter(ImageFilter.GaussianBlur(1.1))
    return image.resize(size, Image.Resampling.BICUBIC)


def _varied(name: str, palette: _Palette, digest: bytes) -> _Palette:
    """A keyword's palette made this text's own: its hue turned a little (a hashed palette has its
    own hue already), its brightness and its horizon moved, all by the text's hash."""
    turn = 0.1 * _fraction(digest, 6) - 0.05 if name else 0.0
    bright = 0.92 + 0.14 * _fraction(digest, 7)
    (wall_top, wall_bottom), (floor_far, floor_near) = palette.wall, palette.floor
    return _Palette(
        (_shifted(wall_top, turn, bright), _shifted(wall_bottom, turn, bright)),
        (_shifted(floor_far, turn, bright), _shifted(floor_near, turn, bright)),
        palette.horizon + 0.1 * _fraction(digest, 8) - 0.05,
        palette.dark,
    )


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB, tilt: float = 0.0) -> Image.Image:
    """From ``top`` to ``bottom``, its direction turned by ``tilt`` degrees."""
    if not tilt:
        column = Image.linear_gradient("L").resize((1, max(1, size[1])))
        return Image.composite(
            Image.new("RGB", (1, max(1, size[1])), bottom),
            Image.new("RGB", (1, max(1, size[1])), top),
            column,
        ).resize(size)
    mask = _tilted(round(tilt)).resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


@functools.lru_cache(maxsize=64)
def _tilted(degrees: int) -> Image.Image:
    """A top-to-bottom gradient mask turned by ``degrees`` (its middle, stretched to 0…255)."""
    turned = (
        Image.linear_gradient("L").resize((512, 512)).rotate(degrees, Image.Resampling.BILINEAR)
    )
    return turned.crop((128, 128, 384, 384)).point(lambda v: max(0, min(255, (v - 64) * 2)))


def _room(size: tuple[int, int], palette: _Palette, *, tilt: float = 0.0) -> Image.Image:
    """The wall (or sky) down to the horizon, its gradient turned by ``tilt`` degrees, and the floor
    below it."""
    horizon = max(1, min(size[1] - 1, round(palette.horizon * size[1])))
    image = _gradient((size[0], horizon), *palette.wall, tilt=tilt)
    room = Image.new("RGB", size)
    room.paste(image, (0, 0))
    room.paste(_gradient((size[0], size[1] - horizon), *palette.floor), (0, horizon))
    return room


def _studio(size: tuple[int, int]) -> Image.Image:
    """A neutral studio sweep: light at the top, a little darker towards the floor."""
    return _gradient(size, _BACKDROP_TOP, _BACKDROP_BOTTOM)


@functools.cache
def _falloff() -> Image.Image:
    """A round glow's mask: 255 in the middle, fading (as the square of the distance) to 0."""
    return Image.radial_gradient("L").point(lambda v: round(255 * max(0.0, 1 - v / 128) ** 2))


def _glow(
    image: Image.Image,
    centre: tuple[float, float],
    radii: tuple[float, float],
    colour: RGB,
    strength: float,
) -> None:
    """Lighten ``image`` towards ``colour`` in a soft ellipse around ``centre``."""
    width, height = max(2, round(2 * radii[0])), max(2, round(2 * radii[1]))
    mask = _falloff().resize((width, height)).point(lambda v: round(v * strength))
    left, top = round(centre[0] - width / 2), round(centre[1] - height / 2)
    image.paste(colour, (left, top, left + width, top + height), mask)


def _lit(image: Image.Image, sketch: _Sketch, light: _Light) -> None:
    """The light: shade away from it, its glow and a pool on the floor, and its source."""
    if light.strength <= 0:
        return
    width, height = image.size
    saturation = colorsys.rgb_to_hsv(*(channel / 255 for channel in light.colour))[1]
    cast = Image.new("L", image.size, round(26 + 28 * saturation))  # a coloured light tints it all
    image.paste(light.colour, (0, 0, width, height), cast)
    shade = Image.linear_gradient("L").rotate(90).resize(image.size)
    shade = shade.point(lambda v: round(v * 0.22))
    if light.x > 0.5:
        shade = shade.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image.paste((0, 0, 0), (0, 0, width, height), shade)
    side = max(width, height)
    centre = (light.x * width, light.y * height)
    strength = min(1.0, light.strength * (1.25 if sketch.palette.dark else 1.0))
    _glow(image, centre, (light.radius * side, light.radius * side), light.colour, strength)
    floor = (light.x * width, sketch.horizon + 0.12 * (height - sketch.horizon))
    _glow(image, floor, (light.radius * side * 0.8, light.radius * side * 0.18), light.colour, 0.5)
    if light.second is not None:
        mirrored = ((1 - light.x) * width, centre[1])
        _glow(image, mirrored, (light.radius * side, light.radius * side), light.second, strength)
        _source(sketch, _Light(light.second, 1 - light.x, light.y, 0, 1, light.kind))
    _source(sketch, light)


def _source(sketch: _Sketch, light: _Light) -> None:
    """The light's source, drawn where it is: a sun, a softbox, a neon tube, a lamp, a window."""
    x, y = light.x * sketch.width, max(light.y * sketch.height, sketch.px(0.04))
    draw, unit = sketch.draw, sketch.px(0.01)
    if light.kind == "sun":
        draw.ellipse((x - 5 * unit, y - 5 * unit, x + 5 * unit, y + 5 * unit), fill=(255, 248, 226))
    elif light.kind == "softbox":
        draw.rectangle(
            (x - 8 * unit, y - 5 * unit, x + 8 * unit, y + 6 * unit),
            fill=(255, 255, 252),
            outline=(70, 70, 74),
            width=max(1, unit // 2),
        )
    elif light.kind == "neon":
        draw.line((x - 14 * unit, y, x + 14 * unit, y), fill=light.colour, width=2 * unit)
        draw.line((x - 13 * unit, y, x + 13 * unit, y), fill=(255, 240, 250), width=max(1, unit))
    elif light.kind == "lamp":
        draw.line((x, 0, x, y), fill=(60, 56, 52), width=max(1, unit // 2))
        draw.ellipse((x - 3 * unit, y - 2 * unit, x + 3 * unit, y + 3 * unit), fill=(255, 246, 214))
    elif light.kind == "window":
        top, bottom = y - 14 * unit, min(sketch.horizon - unit, y + 14 * unit)
        draw.rectangle((x - 9 * unit, top, x + 9 * unit, bottom), fill=_mix(light.colour, 0.6))
        draw.line((x, top, x, bottom), fill=(90, 80, 70), width=max(1, unit // 2))


def _mix(colour: RGB, amount: float, towards: RGB = (255, 255, 255)) -> RGB:
    """``colour`` moved ``amount`` of the way towards ``towards``."""
    return (
        round(colour[0] + (towards[0] - colour[0]) * amount),
        round(colour[1] + (towards[1] - colour[1]) * amount),
        round(colour[2] + (towards[2] - colour[2]) * amount),
    )


# --- Motifs: small things a scene names, drawn on the small backdrop ------------------------------


def _stars(sketch: _Sketch) -> None:
    rng = sketch.rng
    for _ in range(70):
        x, y = rng.random() * sketch.width, rng.random() * sketch.horizon * 0.85
        radius = rng.choice((0.5, 0.8, 1.2)) * sketch.width / _SIDE
        shade = rng.randint(170, 255)
        sketch.draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(shade,) * 3)


def _planet(sketch: _Sketch) -> None:
    x = sketch.width * (0.2 + 0.6 * sketch.rng.random())
    y, radius = sketch.horizon * 0.5, sketch.px(0.2)
    sketch.draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(64, 112, 196))
    shine = radius * 0.8
    sketch.draw.ellipse(
        (
            x - shine - radius * 0.15,
            y - shine - radius * 0.15,
            x + shine - radius * 0.15,
            y + shine - radius * 0.15,
        ),
        fill=(104, 158, 228),
    )
    if _hits(_RINGED, sketch.scene):
        sketch.draw.ellipse(
            (x - radius * 1.6, y - radius * 0.35, x + radius * 1.6, y + radius * 0.35),
            outline=(214, 214, 232),
            width=sketch.px(0.008),
        )


_RINGED = _pattern(("planet", "orbital", "ring", "rings", "saturn"))


def _skyline(sketch: _Sketch) -> None:
    rng, dark = sketch.rng, sketch.palette.dark
    body, lit = ((28, 28, 50), (255, 214, 130)) if dark else ((132, 146, 168), (226, 236, 246))
    x = 0.0
    while x < sketch.width:
        wide = sketch.width * (0.05 + 0.07 * rng.random())
        top = sketch.horizon - sketch.horizon * (0.18 + 0.42 * rng.random())
        sketch.draw.rectangle((x, top, x + wide - 1, sketch.horizon), fill=body)
        for _ in range(int(wide * (sketch.horizon - top) / 90)):
            wx, wy = x + rng.random() * (wide - 3), top + 2 + rng.random() * (sketch.horizon - top)
            sketch.draw.rectangle((wx, wy, wx + 1, wy + 1), fill=lit)
        x += wide + sketch.px(0.006)


def _windows(sketch: _Sketch) -> None:
    """Tall windows in the wall (steel-framed in a loft), with linen curtains where named."""
    if _is_sky(sketch.palette) or _hits(_OUTSIDE, sketch.scene):
        return
    rng, count = sketch.rng, 2 + int(sketch.rng.random() * 2)
    steel = _hits(_STEEL, sketch.scene) > 0
    frame = (56, 60, 66) if steel else (246, 242, 234)
    pane = (36, 44, 82) if sketch.palette.dark else (206, 226, 244)
    wide, top, bottom = sketch.px(0.13), sketch.px(0.05), sketch.horizon - sketch.px(0.05)
    start = sketch.width * (0.04 + 0.1 * rng.random())
    gap = (sketch.width - 2 * start - count * wide) / max(1, count - 1)
    line = sketch.px(0.008)
    for index in range(count):
        left = start + index * (wide + gap)
        sketch.draw.rectangle(
            (left, top, left + wide, bottom), fill=pane, outline=frame, width=line
        )
        sketch.draw.line((left + wide / 2, top, left + wide / 2, bottom), fill=frame, width=line)
        for step in (1, 2):
            level = top + (bottom - top) * step / 3
            sketch.draw.line((left, level, left + wide, level), fill=frame, width=line)
        if _hits(_CURTAINS, sketch.scene):
            _curtains(sketch, left, wide, (top, bottom))


_OUTSIDE = _pattern(("space", "orbital", "planet", "city", "skyline", "street", "outdoor", "sky"))
_STEEL = _pattern(("steel", "loft", "industrial", "metal", "black"))
_CURTAINS = _pattern(("curtain", "curtains", "drapes", "linen"))


def _is_sky(palette: _Palette) -> bool:
    """An outdoor palette: a blue sky, where no window belongs."""
    top = palette.wall[0]
    return top[2] > top[0] + 60


def _curtains(sketch: _Sketch, left: float, wide: float, span: tuple[float, float]) -> None:
    linen, fold = (238, 228, 208), (214, 200, 176)
    drape = wide * 0.32
    for x in (left - drape * 0.6, left + wide - drape * 0.4):
        sketch.draw.rectangle(
            (x, span[0] - sketch.px(0.02), x + drape, span[1] + sketch.px(0.01)), fill=linen
        )
        for step in (0.3, 0.65):
            sketch.draw.line(
                (x + drape * step, span[0], x + drape * step, span[1]),
                fill=fold,
                width=sketch.px(0.005),
            )


def _greenery(sketch: _Sketch) -> None:
    rng = sketch.rng
    greens = ((72, 124, 66), (94, 146, 80), (60, 106, 58), (112, 160, 92))
    x = -0.05 * sketch.width
    while x < sketch.width:
        radius = sketch.width * (0.05 + 0.06 * rng.random())
        y = sketch.horizon - radius * 0.45
        sketch.draw.ellipse((x, y - radius, x + 2 * radius, y + radius), fill=rng.choice(greens))
        x += radius * (1.1 + 0.6 * rng.random())


def _floor_lines(sketch: _Sketch, *, converge: bool) -> None:
    """Seams across the floor, closer towards the horizon; tiles also get seams that converge."""
    darker = _mix(sketch.palette.floor[0], 0.16, (0, 0, 0))
    depth, line = sketch.height - sketch.horizon, sketch.px(0.004)
    for step in range(1, 9):
        y = sketch.horizon + depth * (step / 8) ** 1.7
        sketch.draw.line((0, y, sketch.width, y), fill=darker, width=line)
    if converge:
        middle = sketch.width / 2
        for step in range(-8, 9):
            top = middle + step * sketch.width / 12
            sketch.draw.line(
                (top, sketch.horizon, middle + (top - middle) * 2.6, sketch.height),
                fill=darker,
                width=line,
            )


def _plants(sketch: _Sketch) -> None:
    """A potted palm or two at the sides, standing on the floor."""
    rng = sketch.rng
    sides = (0.1 + 0.08 * rng.random(), 0.82 + 0.08 * rng.random())
    for side in sides[: 1 + int(rng.random() * 2)]:
        x, base = side * sketch.width, sketch.horizon + sketch.px(0.05)
        pot, tall = sketch.px(0.035), sketch.height * (0.2 + 0.1 * rng.random())
        sketch.draw.polygon(
            [
                (x - pot, base - 2 * pot),
                (x + pot, base - 2 * pot),
                (x + pot * 0.7, base),
                (x - pot * 0.7, base),
            ],
            fill=(178, 100, 68),
        )
        for leaf in range(9):
            angle = math.radians(-160 + leaf * 140 / 8 + rng.uniform(-6, 6))
            reach = tall * (0.6 + 0.4 * rng.random())
            tip = (x + math.cos(angle) * reach * 0.7, base - 2 * pot + math.sin(angle) * reach)
            green = (58 + leaf * 4, 112 + rng.randint(0, 40), 64)
            sketch.draw.line((x, base - 2 * pot, *tip), fill=green, width=sketch.px(0.014))


def _blossom(sketch: _Sketch) -> None:
    """A cherry branch across a top corner, heavy with pink flowers."""
    rng = sketch.rng
    right = rng.random() < 0.5
    points = [(0.0, sketch.height * 0.02)]
    for step in range(1, 6):
        points.append((sketch.width * 0.12 * step, sketch.height * (0.04 + 0.05 * rng.random())))
    if right:
        points = [(sketch.width - x, y) for x, y in points]
    sketch.draw.line(points, fill=(92, 62, 50), width=sketch.px(0.012), joint="curve")
    pinks = ((250, 198, 212), (242, 170, 192), (255, 224, 232), (236, 150, 178))
    for _ in range(110):
        x, y = rng.choice(points)
        x += rng.gauss(0, sketch.width * 0.05)
        y += rng.gauss(0, sketch.height * 0.04) + sketch.height * 0.02
        radius = sketch.px(0.006 + 0.01 * rng.random())
        sketch.draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius), fill=rng.choice(pinks)
        )


_MOTIF_DRAWERS: dict[str, Callable[[_Sketch], None]] = {
    "stars": _stars,
    "planet": _planet,
    "skyline": _skyline,
    "window": _windows,
    "greenery": _greenery,
    "planks": functools.partial(_floor_lines, converge=False),
    "tiles": functools.partial(_floor_lines, converge=True),
    "plants": _plants,
    "blossom": _blossom,
}


# --- Putting the product in, and the caption -------------------------------------------------------


def _place(
    canvas: Image.Image,
    product: Image.Image,
    *,
    centre: tuple[float, float],
    box: tuple[float, float],
    shadow: bool,
    lean: float = 1.0,
) -> None:
    """Fit ``product`` inside ``box`` (keeping its shape) and paste it centred on ``centre``; its
    shadow falls down and ``lean`` (-1 to 1) to the side, away from the light."""
    fit = min(box[0] / product.width, box[1] / product.height)
    size = (max(1, round(product.width * fit)), max(1, round(product.height * fit)))
    resized = product.resize(size, Image.Resampling.LANCZOS)
    left, top = round(centre[0] - size[0] / 2), round(centre[1] - size[1] / 2)
    if shadow:
        offset = max(2, round(min(canvas.size) * 0.015))
        blur = max(2, round(min(size) * 0.04))
        alpha = resized.getchannel("A").point(lambda v: v * 0.45)
        # Blurred in a layer just larger than the product (not the whole canvas): the same shadow,
        # a fraction of the work.
        margin = 3 * blur + 2
        layer = Image.new("L", (size[0] + 2 * margin, size[1] + 2 * margin), 0)
        layer.paste(alpha, (margin, margin))
        layer = layer.filter(ImageFilter.GaussianBlur(blur))
        corner = (left + round(offset * lean) - margin, top + offset * 2 - margin)
        canvas.paste(
            (60, 56, 52), (*corner, corner[0] + layer.width, corner[1] + layer.height), layer
        )
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
    _caption(room, [_Row(" ".join(str(payload.get("prompt", "") or "").split()), _INK)])
    return room


def _character_in_scene(payload: Mapping[str, Any]) -> Image.Image:
    scene = _load(payload.get("Scene"), label="scene", size=(1024, 768)).convert("RGB")
    character = _load(payload.get("Character"), label="character", cut=True)
    centre = (scene.width / 2, scene.height * 0.62)
    _place(
        scene, character, centre=centre, box=(scene.width * 0.45, scene.height * 0.6), shadow=True
    )
    _caption(scene, [_Row(" ".join(str(payload.get("Prompt", "") or "").split()), _INK)])
    return scene


def _card(spec: Spec, payload: Mapping[str, Any], size: tuple[int, int], index: int) -> Image.Image:
    """A text-only model's preview: the place its prompt names, lit as it says (each sample lit
    from its own side), with the prompt written under it."""
    prompt = " ".join(str(payload.get("prompt", "") or "").split())
    light = ", ".join(part for part in _CLAUSE.split(prompt) if _LIGHT_WORDS.search(part))
    card = _backdrop(size, prompt, light.strip()).copy()
    if index and prompt:
        glow = _light_of(_Words(prompt, light), index)
        side = max(size)
        centre = (glow.x * size[0], glow.y * size[1])
        reach = glow.radius * side * 0.6
        _glow(card, centre, (reach, reach), glow.colour, 0.5)
    sample = f" · sample {index + 1}" if index else ""
    _caption(card, [_Row(f"{spec.title}{sample}", _INK_SOFT), _Row(prompt, _INK)])
    return card


@dataclass(frozen=True)
class _Row:
    """One part of the caption: its text, its colour and, for the light, a swatch of its colour."""

    text: str
    colour: RGB
    swatch: RGB | None = None


_INK = (28, 28, 30)
_INK_SOFT = (72, 66, 60)
_BAND = (250, 250, 247)
_BADGE = (214, 52, 44)


def _text_size(size: tuple[int, int]) -> int:
    """The caption's font size: a 28th of the longer side, so about 13 px in a 360-pixel thumbnail
    whatever the format (at most a 16th of the width and a 12th of the height)."""
    width, height = size
    return max(10, min(round(max(width, height) / 28), width // 16, height // 12))


def _caption(image: Image.Image, rows: list[_Row]) -> None:
    """A band across the bottom with ``rows`` wrapped between words (the first rows first, each at
    least a line; what does not fit ends in "…" after a whole word), and the PREVIEW badge."""
    size = _text_size(image.size)
    font, line, pad = _font(size), round(size * 1.24), max(4, size // 2)
    shown = [row for row in rows if row.text.strip()]
    if shown:
        budget = max(len(shown), min(5, int(image.height * 0.3 / line)))
        indent = [round(size * 1.1) if row.swatch else 0 for row in shown]
        room = [image.width - 2 * pad - extra for extra in indent]
        wanted = [
            _wrap(row.text, font, width, budget) for row, width in zip(shown, room, strict=True)
        ]
        allowed = _allot([len(lines) for lines in wanted], budget)
        texts = [
            lines if len(lines) <= count else _wrap(row.text, font, width, count)
            for row, width, count, lines in zip(shown, room, allowed, wanted, strict=True)
        ]
        top = image.height - sum(allowed) * line - 2 * pad + (line - size) // 2
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, top, image.width, image.height), fill=_BAND)
        draw.line((0, top, image.width, top), fill=(200, 196, 190), width=max(1, size // 16))
        y = top + pad
        stroke = max(1, size // 30) if size >= 20 else 0
        for row, lines, extra in zip(shown, texts, indent, strict=True):
            if row.swatch:
                dot = round(size * 0.36)
                middle = (pad + dot, y + line / 2)
                draw.ellipse(
                    (middle[0] - dot, middle[1] - dot, middle[0] + dot, middle[1] + dot),
                    fill=row.swatch,
                    outline=(90, 86, 80),
                    width=max(1, size // 24),
                )
            for text in lines:
                draw.text(
                    (pad + extra, y),
                    text,
                    fill=row.colour,
                    font=font,
                    stroke_width=stroke,
                    stroke_fill=row.colour,
                )
                y += line
    _badge(image)


def _allot(wanted: list[int], budget: int) -> list[int]:
    """Lines for each row: each at least one, then the first rows' wishes first."""
    given = [min(1, want) for want in wanted]
    spare = budget - sum(given)
    for index, want in enumerate(wanted):
        extra = max(0, min(want - given[index], spare))
        given[index] += extra
        spare -= extra
    return given


def _wrap(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float, lines: int
) -> list[str]:
    """``text`` in at most ``lines`` lines no wider than ``width``, broken between words; a text too
    long ends in "…" after its last whole word that fits (a single word wider than a line is cut)."""
    out: list[str] = []
    for word in text.split():
        joined = f"{out[-1]} {word}" if out else word
        if out and font.getlength(joined) <= width:
            out[-1] = joined
        else:
            out.append(word)
    if len(out) > lines:
        last = out[lines - 1].split()
        while len(last) > 1 and font.getlength(" ".join(last) + " …") > width:
            last.pop()
        out = [*out[: lines - 1], " ".join(last) + " …"]
    return [_fit(line, font, width) for line in out]


def _fit(line: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> str:
    """``line``, cut (ending in "…") only if one word alone is wider than ``width``."""
    if font.getlength(line) <= width:
        return line
    while len(line) > 1 and font.getlength(line + "…") > width:
        line = line[:-1]
    return line + "…"


def _badge(image: Image.Image) -> None:
    """The red PREVIEW badge in the top left corner, as large as the caption's text."""
    draw = ImageDraw.Draw(image)
    size = _text_size(image.size)
    font = _font(size)
    pad = max(3, size // 2)
    width = font.getlength("PREVIEW")
    draw.rectangle((0, 0, width + 2 * pad, size + 1.4 * pad), fill=_BADGE)
    draw.text(
        (pad, pad * 0.6),
        "PREVIEW",
        fill=(255, 255, 255),
        font=font,
        stroke_width=max(1, size // 30) if size >= 20 else 0,
        stroke_fill=(255, 255, 255),
    )


def _seed_mark(image: Image.Image, seed: int) -> None:
    """The seed, small in the top right corner: another seed is another take (and another
    picture, as a model would give), while the scene stays the one the words name."""
    size = max(10, round(_text_size(image.size) * 0.6))
    font, pad = _font(size), max(3, size // 3)
    text = f"seed {seed}"
    left = image.width - font.getlength(text) - 2 * pad
    draw = ImageDraw.Draw(image)
    draw.rectangle((left, 0, image.width, size + 2 * pad), fill=_BAND)
    draw.text((left + pad, pad * 0.8), text, fill=_INK_SOFT, font=font)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # A new font each time (cheap): a FreeType face is not to be shared by the simulator's threads.
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
