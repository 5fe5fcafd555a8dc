"""engine.imagediff: what a person sees differ between two images, its heat map, and the hash a
baseline keeps; real images made with Pillow, written to disk as a run writes them."""

from __future__ import annotations

import io
import random
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageOps

from engine.errors import ImageError, InputError
from engine.imagediff import (
    DEFAULT_THRESHOLD,
    HASH_THRESHOLD,
    Difference,
    compare_images,
    hash_distance,
    perceptual_hash,
)

RED = (200, 40, 40)
BLUE = (40, 60, 200)


def _grain(size: tuple[int, int], seed: int) -> Image.Image:
    """Seeded noise (Pillow's effect_noise is not seeded)."""
    return Image.frombytes("L", size, random.Random(seed).randbytes(size[0] * size[1]))


def _scene(
    size: tuple[int, int] = (512, 512),
    *,
    seed: int = 1,
    product: tuple[int, int, int] = RED,
    ball: tuple[float, float] = (0.65, 0.3),
) -> Image.Image:
    """A product photo's stand-in: a lit backdrop, things, a product, a ball and a sharp grain (the
    hardest case for a JPEG encoder)."""
    width, height = size
    rnd = random.Random(seed)
    tint = [rnd.randrange(60, 200) for _ in range(3)]
    backdrop = Image.linear_gradient("L").resize(size)
    image = Image.merge("RGB", [backdrop.point(lambda v, c=c: c // 2 + v * 2 // 5) for c in tint])
    draw = ImageDraw.Draw(image)
    for _ in range(10):
        x, y, r = (
            rnd.randrange(width),
            rnd.randrange(height),
            rnd.randrange(width // 20, width // 6),
        )
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rnd.randrange(256) for _ in range(3)))
    for _ in range(20):
        line = [(rnd.randrange(width), rnd.randrange(height)) for _ in range(2)]
        draw.line(line, fill=tuple(rnd.randrange(256) for _ in range(3)), width=rnd.choice([1, 2]))
    draw.rounded_rectangle(
        (width // 4, height * 11 // 20, width * 3 // 4, height * 17 // 20),
        width // 25,
        fill=product,
    )
    bx, by, r = ball[0] * width, ball[1] * height, width * 0.06
    draw.ellipse((bx - r, by - r, bx + r, by + r), fill=(240, 220, 30))
    grain = Image.merge("RGB", [_grain(size, seed * 3 + k) for k in range(3)])
    return Image.blend(image, grain, 0.15)


def _save(image: Image.Image, path: Path, **options: Any) -> Path:
    image.save(path, **options)
    return path


def _decoded(difference: Difference) -> Image.Image:
    heatmap = Image.open(io.BytesIO(difference.heatmap))
    heatmap.load()
    return heatmap


# --- the same picture: unchanged -------------------------------------------------------------


def test_an_image_against_itself_and_its_copy_is_identical(tmp_path: Path) -> None:
    a = _save(_scene(), tmp_path / "a.png")
    b = _save(_scene(), tmp_path / "b.png")
    for other in (a, b):
        difference = compare_images(a, other)
        assert (difference.distance, difference.changed, difference.size) == (
            0.0,
            False,
            (256, 256),
        )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"format": "PNG"}, {"format": "JPEG", "quality": 95}),
        ({"format": "JPEG", "quality": 95}, {"format": "JPEG", "quality": 60}),
        ({"format": "JPEG", "quality": 95}, {"format": "JPEG", "quality": 20}),
        ({"format": "PNG"}, {"format": "WEBP", "quality": 70}),
    ],
    ids=["png-jpeg95", "jpeg95-jpeg60", "jpeg95-jpeg20", "png-webp70"],
)
def test_another_encoding_of_the_same_picture_is_unchanged(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    picture = _scene((1024, 1024))
    a = _save(picture, tmp_path / "a", **first)
    b = _save(picture, tmp_path / "b", **second)
    difference = compare_images(a, b)
    assert not difference.changed
    assert difference.distance < DEFAULT_THRESHOLD / 10
    assert hash_distance(perceptual_hash(a), perceptual_hash(b)) <= 2 / 64


def test_a_jpeg_saved_again_is_unchanged(tmp_path: Path) -> None:
    a = _save(_scene(), tmp_path / "a.jpg", quality=60)
    with Image.open(a) as image:
        b = _save(image, tmp_path / "b.jpg", quality=60)
    difference = compare_images(a, b)
    assert not difference.changed
    assert difference.distance < DEFAULT_THRESHOLD / 10


@pytest.mark.parametrize("side", [1000, 700, 333])
def test_the_same_picture_at_another_size_is_unchanged(tmp_path: Path, side: int) -> None:
    picture = _scene((1024, 1024))
    a = _save(picture, tmp_path / "a.png")
    b = _save(
        picture.resize((side, side), Image.Resampling.LANCZOS), tmp_path / "b.jpg", quality=85
    )
    difference = compare_images(a, b)
    assert (difference.changed, difference.size) == (False, (256, 256))
    assert difference.distance < DEFAULT_THRESHOLD / 10


def test_small_images_are_compared_at_the_smaller_size_never_enlarged(tmp_path: Path) -> None:
    picture = _scene((300, 200))
    a = _save(picture, tmp_path / "a.png")
    b = _save(picture.resize((150, 100), Image.Resampling.LANCZOS), tmp_path / "b.png")
    difference = compare_images(a, b)
    assert difference.size == (150, 100)
    assert _decoded(difference).size == (150, 100)


def test_an_image_turned_by_its_exif_orientation_is_the_picture_it_shows(tmp_path: Path) -> None:
    picture = _scene((640, 480))
    a = _save(picture, tmp_path / "a.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise
    stored = picture.transpose(Image.Transpose.ROTATE_90)
    b = _save(stored, tmp_path / "b.jpg", quality=90, exif=exif.tobytes())
    with Image.open(b) as check:
        assert ImageOps.exif_transpose(check).size == (640, 480)
    difference = compare_images(a, b)
    assert (difference.changed, difference.size) == (False, (256, 192))
    assert hash_distance(perceptual_hash(a), perceptual_hash(b)) <= 2 / 64


def test_transparency_is_seen_over_white(tmp_path: Path) -> None:
    picture = _scene()
    clear = picture.convert("RGBA")
    clear.putalpha(Image.linear_gradient("L").resize(picture.size))
    a = _save(clear, tmp_path / "a.png")
    over_white = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), clear)
    b = _save(over_white.convert("RGB"), tmp_path / "b.jpg", quality=95)
    assert not compare_images(a, b).changed


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("L", ".jpg"), ("LA", ".png"), ("I;16", ".png"), ("CMYK", ".jpg"), ("P", ".gif")],
)
def test_other_modes_are_seen_as_their_colours(tmp_path: Path, mode: str, suffix: str) -> None:
    picture = _scene().convert("L") if mode in {"L", "LA", "I;16"} else _scene().quantize(256)
    a = _save(picture.convert("RGB"), tmp_path / "a.png")
    if mode == "I;16":  # 16-bit grey: each 8-bit level v is v × 257
        other = picture.convert("I").point(lambda v: v * 257).convert("I;16")
    else:
        other = picture.convert(mode)
    b = _save(other, tmp_path / f"b{suffix}", **({"quality": 95} if suffix == ".jpg" else {}))
    with Image.open(b) as check:
        assert check.mode == mode
    assert not compare_images(a, b).changed


# --- another picture: changed ----------------------------------------------------------------


def test_a_recoloured_product_is_changed_and_the_heat_map_shows_where(tmp_path: Path) -> None:
    a = _save(_scene(), tmp_path / "a.jpg", quality=90)
    b = _save(_scene(product=BLUE), tmp_path / "b.jpg", quality=90)
    difference = compare_images(a, b)
    assert difference.changed
    assert 0.1 < difference.distance < 0.3  # the product is about a sixth of the picture
    heatmap = _decoded(difference)
    assert (heatmap.format, heatmap.mode, heatmap.size) == ("PNG", "RGB", difference.size)
    red, green, blue = heatmap.getpixel((128, 180))  # the product
    assert red > 200
    assert max(green, blue) < 100
    red, green, blue = heatmap.getpixel((10, 10))  # the backdrop: grey, faded
    assert red == green == blue
    assert red > 150


def test_a_moved_object_is_changed(tmp_path: Path) -> None:
    a = _save(_scene(), tmp_path / "a.jpg", quality=90)
    b = _save(_scene(ball=(0.3, 0.3)), tmp_path / "b.jpg", quality=90)
    difference = compare_images(a, b)
    assert difference.changed
    assert difference.distance > 5 * DEFAULT_THRESHOLD
    heatmap = _decoded(difference)
    assert heatmap.getpixel((166, 77))[1] < 100  # where the ball was: red
    assert heatmap.getpixel((77, 77))[1] < 100  # where it is now


def test_another_scene_is_changed(tmp_path: Path) -> None:
    a = _save(_scene(seed=1), tmp_path / "a.jpg", quality=90)
    b = _save(_scene(seed=2), tmp_path / "b.jpg", quality=90)
    difference = compare_images(a, b)
    assert difference.changed
    assert difference.distance > 0.2
    assert hash_distance(perceptual_hash(a), perceptual_hash(b)) > HASH_THRESHOLD


def test_the_threshold_decides_changed(tmp_path: Path) -> None:
    a = _save(_scene(), tmp_path / "a.png")
    b = _save(_scene(ball=(0.3, 0.3)), tmp_path / "b.png")
    distance = compare_images(a, b).distance
    assert compare_images(a, b, threshold=distance).changed is False
    assert compare_images(a, b, threshold=distance * 0.99).changed is True


def test_another_aspect_ratio_is_another_picture(tmp_path: Path) -> None:
    a = _save(_scene((1024, 576)), tmp_path / "a.png")
    b = _save(_scene((1024, 1024)), tmp_path / "b.png")
    difference = compare_images(a, b)
    assert (difference.distance, difference.changed, difference.size) == (1.0, True, (256, 144))
    heatmap = _decoded(difference)
    assert heatmap.size == (256, 144)
    assert heatmap.getcolors() == [(256 * 144, (255, 0, 0))]


def test_aspect_ratios_a_few_percent_apart_are_compared(tmp_path: Path) -> None:
    picture = _scene((600, 400))
    a = _save(picture, tmp_path / "a.png")
    b = _save(picture.resize((600, 394)), tmp_path / "b.png")  # 1.5% flatter
    c = _save(picture.resize((600, 385)), tmp_path / "c.png")  # 3.9% flatter
    assert compare_images(a, b).distance < 1.0
    assert compare_images(a, b).size == (256, 171)
    assert compare_images(a, c).distance == 1.0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    seeds=st.tuples(st.integers(0, 2**16), st.integers(0, 2**16)),
    blend=st.floats(0, 1),
)
def test_distance_is_a_share_and_symmetric(
    tmp_path_factory: pytest.TempPathFactory,
    size: tuple[int, int],
    seeds: tuple[int, int],
    blend: float,
) -> None:
    root = tmp_path_factory.mktemp("property")
    first = Image.merge("RGB", [_grain(size, seeds[0] + k) for k in range(3)])
    second = Image.blend(
        first, Image.merge("RGB", [_grain(size, seeds[1] + k) for k in range(3)]), blend
    )
    a, b = _save(first, root / "a.png"), _save(second, root / "b.png")
    forward, backward = compare_images(a, b), compare_images(b, a)
    assert 0.0 <= forward.distance <= 1.0
    assert forward.distance == backward.distance
    assert forward.changed == (forward.distance > DEFAULT_THRESHOLD)
    assert forward.size == size
    assert compare_images(a, a).distance == 0.0


# --- the hash a baseline keeps ---------------------------------------------------------------


def test_the_hash_is_imagehash_phash(tmp_path: Path) -> None:
    """The value imagehash 4.3.2's ``phash`` gives for this picture (at the working size already)."""
    path = _save(_scene((256, 256), seed=7), tmp_path / "a.png")
    assert perceptual_hash(path) == "f870f86ccf271312"


def test_the_hash_is_16_hex_digits_and_stable(tmp_path: Path) -> None:
    a = _save(_scene(), tmp_path / "a.png")
    digest = perceptual_hash(a)
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert perceptual_hash(a) == digest
    assert perceptual_hash(_save(_scene(), tmp_path / "b.jpg", quality=60)) == digest


def test_hash_distance_is_the_share_of_differing_bits() -> None:
    assert hash_distance("0" * 16, "0" * 16) == 0.0
    assert hash_distance("0" * 16, "f" * 16) == 1.0
    assert hash_distance("0" * 16, "0" * 15 + "3") == 2 / 64
    with pytest.raises(ValueError, match="hashes of different lengths"):
        hash_distance("0" * 16, "0" * 15)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_hash_distance_is_a_metric_in_0_1(a: int, b: int, c: int) -> None:
    x, y, z = (f"{n:016x}" for n in (a, b, c))
    assert 0.0 <= hash_distance(x, y) <= 1.0
    assert hash_distance(x, y) == hash_distance(y, x) == (a ^ b).bit_count() / 64
    assert (hash_distance(x, y) == 0.0) == (a == b)
    assert hash_distance(x, z) <= hash_distance(x, y) + hash_distance(y, z)


# --- what is refused -------------------------------------------------------------------------


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width``×``height`` pixels in a few bytes (its data is never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def test_an_image_over_40_megapixels_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    good = _save(_scene(), tmp_path / "good.png")
    large = _png_header(tmp_path / "large.png", 8000, 6000)  # 48 MP
    for call in (lambda: compare_images(good, large), lambda: perceptual_hash(large)):
        with pytest.raises(ImageError) as caught:
            call()
        assert str(caught.value) == (
            f"{large}: 8000×6000 pixels is over the 40-megapixel limit for comparing images (not decoded)"
        )
    bomb = _png_header(tmp_path / "bomb.png", 20000, 20000)  # Pillow itself refuses to open it
    with pytest.raises(ImageError) as caught:
        compare_images(bomb, good)
    assert str(caught.value) == (
        f"{bomb}: over the 40-megapixel limit for comparing images (not decoded)"
    )
    assert isinstance(caught.value, InputError)
    assert caught.value.exit_code == 2


def test_just_under_the_limit_is_opened(tmp_path: Path) -> None:
    # The header passes (40 MP exactly); the data is what then fails, not the size.
    path = _png_header(tmp_path / "limit.png", 8000, 5000)
    with pytest.raises(ImageError, match=r"limit\.png: cannot be decoded \("):
        perceptual_hash(path)


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    good = _save(_scene(), tmp_path / "good.png")
    cases = {
        tmp_path / "missing.png": "cannot be read (No such file or directory)",
        tmp_path: "cannot be read (Is a directory)",
        tmp_path / "notes.txt": "is not an image (PNG, JPEG, WebP or GIF)",
        tmp_path / "picture.bmp": "is not an image (PNG, JPEG, WebP or GIF)",
    }
    (tmp_path / "notes.txt").write_text("not a picture")
    _scene().save(tmp_path / "picture.bmp")
    for path, problem in cases.items():
        with pytest.raises(ImageError) as caught:
            compare_images(good, path)
        assert str(caught.value) == f"{path}: {problem}"


def test_a_truncated_image_is_named(tmp_path: Path) -> None:
    good = _save(_scene(), tmp_path / "good.jpg", quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ImageError) as caught:
        compare_images(good, cut)
    assert str(caught.value).startswith(f"{cut}: cannot be decoded (image file is truncated")
