"""Draw the example recipes' input images (recipes/images/): simple products on white, a character,
scenes, an empty room with furniture to stage and their masks. Run once; the PNGs are committed.

    python tools/make_recipe_images.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "recipes" / "images"
SIZE = 512


def canvas(
    color: str = "white", size: tuple[int, int] = (SIZE, SIZE)
) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", size, color)
    return image, ImageDraw.Draw(image)


def sofa() -> Image.Image:
    image, draw = canvas()
    orange, dark = (232, 146, 32), (176, 98, 18)
    draw.rounded_rectangle((70, 170, 442, 300), 28, fill=orange)  # back
    draw.rounded_rectangle((50, 250, 462, 350), 24, fill=orange)  # seat
    draw.rounded_rectangle((40, 210, 110, 350), 22, fill=dark)  # arms
    draw.rounded_rectangle((402, 210, 472, 350), 22, fill=dark)
    for x in (80, 420):
        draw.rectangle((x, 350, x + 14, 400), fill=(150, 110, 70))  # wooden legs
    return image


def lamp() -> Image.Image:
    image, draw = canvas()
    brass = (181, 148, 64)
    draw.ellipse((110, 430, 230, 470), fill=(90, 90, 90))  # base
    draw.line((170, 450, 170, 170), fill=brass, width=12)  # pole
    draw.arc((170, 90, 410, 250), 180, 330, fill=brass, width=12)  # the arc over the room
    draw.pieslice((340, 150, 460, 270), 180, 360, fill=brass)  # shade
    return image


def armchair() -> Image.Image:
    image, draw = canvas()
    green, dark = (74, 122, 84), (48, 84, 58)
    draw.rounded_rectangle((150, 130, 362, 300), 40, fill=green)
    draw.rounded_rectangle((130, 260, 382, 360), 30, fill=green)
    draw.rounded_rectangle((110, 220, 170, 360), 26, fill=dark)
    draw.rounded_rectangle((342, 220, 402, 360), 26, fill=dark)
    draw.rectangle((150, 360, 164, 420), fill=(60, 40, 30))
    draw.rectangle((348, 360, 362, 420), fill=(60, 40, 30))
    return image


def vase() -> Image.Image:
    image, draw = canvas()
    blue = (52, 92, 160)
    draw.ellipse((166, 190, 346, 420), fill=blue)
    draw.rectangle((216, 110, 296, 230), fill=blue)
    draw.ellipse((206, 96, 306, 130), fill=(40, 72, 130))
    for x, y in ((236, 40), (270, 60), (216, 70)):
        draw.line((256, 110, x, y), fill=(70, 130, 60), width=6)
        draw.ellipse((x - 14, y - 14, x + 14, y + 14), fill=(240, 200, 80))
    return image


def character() -> Image.Image:
    image, draw = canvas()
    skin, coat = (224, 184, 150), (120, 60, 70)
    draw.ellipse((206, 60, 306, 170), fill=skin)
    draw.rounded_rectangle((176, 170, 336, 380), 40, fill=coat)
    draw.rectangle((196, 380, 236, 480), fill=(50, 50, 70))
    draw.rectangle((276, 380, 316, 480), fill=(50, 50, 70))
    return image


def scene(sky: str, ground: str, *, bench: bool) -> Image.Image:
    image, draw = canvas(sky, (768, 512))
    draw.rectangle((0, 330, 768, 512), fill=ground)
    for x in (90, 600):
        draw.rectangle((x + 30, 180, x + 50, 340), fill=(90, 70, 50))
        draw.ellipse((x - 30, 90, x + 110, 230), fill=(80, 140, 80))
    if bench:
        draw.rectangle((300, 330, 480, 350), fill=(120, 80, 50))
        draw.rectangle((300, 290, 480, 305), fill=(120, 80, 50))
        draw.rectangle((310, 350, 320, 390), fill=(60, 60, 60))
        draw.rectangle((460, 350, 470, 390), fill=(60, 60, 60))
    else:
        draw.rectangle((280, 230, 500, 330), fill=(200, 170, 140))  # a cafe front
        draw.rectangle((320, 260, 380, 330), fill=(90, 60, 40))
    return image.filter(ImageFilter.SMOOTH)


def room() -> Image.Image:
    image, draw = canvas((236, 230, 220), (768, 512))
    draw.polygon([(0, 380), (768, 380), (768, 512), (0, 512)], fill=(170, 130, 95))  # floor
    draw.rectangle((480, 90, 660, 300), fill=(200, 225, 245))  # window
    draw.line((570, 90, 570, 300), fill=(240, 240, 240), width=6)
    return image


def room_mask() -> Image.Image:
    image, draw = canvas("black", (768, 512))
    draw.rectangle((140, 250, 440, 470), fill="white")  # where the table goes
    return image


def table() -> Image.Image:
    image, draw = canvas()
    wood = (190, 150, 110)
    draw.rectangle((80, 250, 432, 280), fill=wood)
    draw.rectangle((110, 280, 130, 430), fill=wood)
    draw.rectangle((382, 280, 402, 430), fill=wood)
    draw.rectangle((226, 190, 286, 250), fill=(230, 230, 230))  # pot
    draw.ellipse((196, 110, 316, 200), fill=(70, 140, 70))  # plant
    return image


def table_mask() -> Image.Image:
    mask = table().convert("L").point(lambda v: 0 if v > 245 else 255)
    return mask.convert("RGB")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    drawings = {
        "sofa": sofa(),
        "lamp": lamp(),
        "armchair": armchair(),
        "vase": vase(),
        "character": character(),
        "park": scene((200, 225, 245), (120, 170, 100), bench=True),
        "street": scene((230, 215, 200), (150, 150, 150), bench=False),
        "room": room(),
        "room-mask": room_mask(),
        "table": table(),
        "table-mask": table_mask(),
    }
    for name, image in drawings.items():
        image.save(OUT / f"{name}.png", optimize=True)


if __name__ == "__main__":
    main()
