"""Preview geometry: size from the megapixel formula, the product where x/y/scale put it, formats, marks."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from engine.simulator.compositor import PREVIEW_MARK, cut_out, megapixel_size, render_preview
from engine.specs import load_spec
from tests.simulator.conftest import png_b64

ORANGE = (255, 165, 0)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def colour_box(
    image: Image.Image, colour: tuple[int, int, int], tolerance: int = 12
) -> tuple[int, int, int, int]:
    """The bounding box of the pixels close to ``colour``."""
    rgb = image.convert("RGB")
    bands = [
        band.point(lambda v, c=c: 255 if abs(v - c) <= tolerance else 0)
        for band, c in zip(rgb.split(), colour, strict=True)
    ]
    mask = bands[0]
    for band in bands[1:]:
        mask = Image.composite(band, Image.new("L", mask.size, 0), mask)
    box = mask.getbbox()
    assert box is not None, "the product is not in the picture"
    return box


@pytest.mark.parametrize(
    ("megapixel", "ratio", "size"),
    [
        (1.0, "1:1 (Perfect Square)", (1024, 1024)),
        (1.0, "8:5 (Cinematic View)", (1280, 768)),
        (1.5, "16:9 (Panorama)", (1664, 896)),
        (0.5, "4:5 (Artistic Frame)", (640, 768)),
        (2.5, "32:9 (Extreme Ultrawide)", (2976, 832)),
    ],
)
def test_output_size_follows_the_megapixel_formula(
    megapixel: float, ratio: str, size: tuple[int, int]
) -> None:
    assert megapixel_size(megapixel, ratio) == size
    spec = load_spec("scenecraft")
    payload = {
        "image": png_b64(),
        "prompt": "p",
        "megapixel": str(megapixel),
        "aspect_ratio": ratio,
        "image_format": "png",
    }
    assert decode(render_preview(spec, payload)[0].data).size == size


@pytest.mark.parametrize(
    ("x", "y", "scale", "ratio"),
    [
        (50, 50, 0.5, "1:1 (Perfect Square)"),
        (25, 70, 0.3, "16:9 (Panorama)"),
        (60, 30, 0.6, "4:5 (Artistic Frame)"),
        (50, 65, 0.7, "9:16 (Slim Vertical)"),
    ],
)
def test_the_product_sits_where_x_y_and_scale_put_it(
    x: float, y: float, scale: float, ratio: str
) -> None:
    spec = load_spec("scenecraft")
    payload = {
        "image": png_b64("orange", (64, 48)),
        "prompt": "",
        "megapixel": 1,
        "aspect_ratio": ratio,
        "x_value": x,
        "y_value": y,
        "scale": scale,
        "dropshadow": False,
        "image_format": "png",
    }
    image = decode(render_preview(spec, payload)[0].data)
    width, height = image.size
    left, top, right, bottom = colour_box(image, ORANGE)
    fit = min(scale * width / 64, scale * height / 48)
    assert right - left == pytest.approx(64 * fit, abs=3)
    assert bottom - top == pytest.approx(48 * fit, abs=3)
    assert (left + right) / 2 == pytest.approx(x / 100 * width, abs=3)
    assert (top + bottom) / 2 == pytest.approx(y / 100 * height, abs=3)


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")])
def test_the_requested_format_and_the_preview_mark(fmt: str, pil: str) -> None:
    spec = load_spec("ai-product-photography")
    (rendered,) = render_preview(
        spec, {"image": png_b64(), "prompt": "p", "image_format": fmt, "megapixel": 0.5}
    )
    image = decode(rendered.data)
    assert image.format == pil
    assert rendered.media_type == f"image/{fmt}"
    assert image.getexif().get(0x0131) == PREVIEW_MARK
    badge = image.convert("RGB").getpixel((2, 2))
    assert isinstance(badge, tuple)
    assert badge[0] > 180 > badge[1]  # the red PREVIEW badge in the corner


def test_jpeg_quality_is_honoured() -> None:
    spec = load_spec("scenecraft")
    base = {
        "image": png_b64(),
        "prompt": "a long prompt " * 5,
        "image_format": "jpeg",
        "megapixel": 1,
    }
    low = render_preview(spec, {**base, "image_quality": 10})[0].data
    high = render_preview(spec, {**base, "image_quality": 100})[0].data
    assert len(low) * 2 < len(high)


def test_a_drop_shadow_darkens_below_and_right_of_the_product() -> None:
    spec = load_spec("scenecraft")
    base = {
        "image": png_b64("orange", (64, 64)),
        "prompt": "",
        "megapixel": 1,
        "aspect_ratio": "1:1 (Perfect Square)",
        "scale": 0.4,
        "image_format": "png",
    }
    plain_image = decode(render_preview(spec, {**base, "dropshadow": False})[0].data)
    plain = plain_image.convert("L")
    shadowed = decode(render_preview(spec, {**base, "dropshadow": True})[0].data).convert("L")
    _, _, right, bottom = colour_box(plain_image, ORANGE)
    probe = (right + 6, bottom + 10)
    assert shadowed.getpixel(probe) < plain.getpixel(probe) - 10  # type: ignore[operator]


def test_cut_out_removes_only_the_white_around_the_product() -> None:
    image = Image.new("RGB", (100, 100), "white")
    image.paste(Image.new("RGB", (60, 60), "blue"), (20, 20))
    image.paste(Image.new("RGB", (20, 20), "white"), (40, 40))  # a white window inside the product
    cut = cut_out(image)
    assert cut.size == (60, 60)
    assert cut.getpixel((30, 30)) == (255, 255, 255, 255)  # kept: it does not touch the border
    assert cut.getpixel((0, 0)) == (0, 0, 255, 255)


def test_cut_out_respects_an_alpha_channel() -> None:
    image = Image.new("RGBA", (100, 80), (255, 255, 255, 0))
    image.paste(
        Image.new("RGBA", (30, 20), (255, 255, 255, 255)), (10, 10)
    )  # an opaque white product
    assert cut_out(image).size == (30, 20)


def test_a_url_becomes_a_labelled_placeholder_offline() -> None:
    spec = load_spec("scenecraft")
    payload = {
        "image": "https://example.com/sofa.png",
        "prompt": "",
        "megapixel": 1,
        "aspect_ratio": "1:1 (Perfect Square)",
        "scale": 0.5,
        "x_value": 50,
        "y_value": 50,
        "image_format": "png",
        "dropshadow": False,
    }
    image = decode(render_preview(spec, payload)[0].data)
    left, top, right, bottom = colour_box(image, (150, 160, 175), tolerance=4)
    assert (right - left, bottom - top) == (512, 512)


def test_a_text_only_model_gets_prompt_cards_at_the_asked_size() -> None:
    spec = load_spec("sd1.5-scifi")
    images = render_preview(
        spec, {"prompt": "a city", "img_width": 512, "img_height": 768, "samples": 3}, samples=3
    )
    assert [decode(r.data).size for r in images] == [(512, 768)] * 3
    assert len({r.data for r in images}) == 3  # each sample is its own picture


def test_staging_puts_the_overlay_inside_the_main_mask() -> None:
    room = Image.new("RGB", (400, 300), (230, 225, 215))
    mask = Image.new("RGB", (400, 300), "black")
    mask.paste(Image.new("RGB", (100, 80), "white"), (250, 180))

    def b64(image: Image.Image) -> str:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    payload = {
        "prompt": "",
        "main_image": b64(room),
        "main_image_mask": b64(mask),
        "overlay_image": png_b64("orange", (40, 40)),
        "image_format": "png",
    }
    image = decode(render_preview(load_spec("furniture-staging"), payload)[0].data)
    assert image.size == (400, 300)
    left, top, right, bottom = colour_box(image, ORANGE)
    assert left >= 250
    assert right <= 350
    assert top >= 180
    assert bottom <= 260


def test_the_character_is_placed_in_the_scene() -> None:
    scene = Image.new("RGB", (640, 480), (120, 170, 100))
    buffer = io.BytesIO()
    scene.save(buffer, "PNG")
    payload = {
        "Character": png_b64("orange", (30, 60)),
        "Scene": base64.b64encode(buffer.getvalue()).decode(),
        "Prompt": "sitting",
    }
    image = decode(render_preview(load_spec("consistent-character"), payload)[0].data)
    assert image.size == (640, 480)
    left, _, right, _ = colour_box(image, ORANGE)
    assert abs((left + right) / 2 - 320) <= 3
