"""The reference image as the model sees it: optionally cropped and marked, downscaled, JPEG,
base64 data URL.

Boxes (one per person, image pixels x0, y0, x1, y1): the image is cropped to the union of the
boxes grown by ``BOX_MARGIN`` of its size on each side (so the people fill the frame and
others in the background matter less), and each box is drawn as a rectangle in its person's
colour (``engine.lmm.prompts.BOX_COLOURS``), which the prompt names ("Person 1 is in the red
rectangle").

Box coordinates are pixels of the upright image (after the EXIF orientation is applied), origin
at the top left."""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from engine.lmm.prompts import BOX_COLOURS

MAX_SIDE = 1024
JPEG_QUALITY = 90
BOX_MARGIN = 0.1

Box = tuple[int, int, int, int]


class ImageError(ValueError):
    """The image cannot be read or a box does not fit it."""


@dataclass(frozen=True)
class EncodedImage:
    sha256: str  # of the original file's bytes
    data_url: str  # data:image/jpeg;base64,...
    size: tuple[int, int]  # of the JPEG sent (width, height)


def parse_box(text: str) -> Box:
    """``"x0,y0,x1,y1"`` -> a box of integers, with a message saying what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise ImageError(f"a box is four numbers x0,y0,x1,y1; got {text!r}")
    try:
        values = tuple(int(round(float(p))) for p in parts)
    except ValueError:
        raise ImageError(f"a box is four numbers x0,y0,x1,y1; got {text!r}") from None
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise ImageError(f"box {text!r}: x1 must be greater than x0 and y1 greater than y0")
    return values  # type: ignore[return-value]


def encode_image(path: str | Path, boxes: Sequence[Box] = (), max_side: int = MAX_SIDE) -> EncodedImage:
    """Read, crop/mark for ``boxes``, downscale so the longer side is at most ``max_side``,
    and encode as a JPEG data URL."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image {path} does not exist") from None
    except OSError as error:
        raise ImageError(f"cannot read image {path}: {error.strerror or error}") from None
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            # Phone photos store their rotation in EXIF: the model must see them upright.
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageError(f"{path} is not an image Pillow can read ({error}); use a JPEG or PNG") from None
    width, height = image.size
    if boxes:
        for box in boxes:
            x0, y0, x1, y1 = box
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise ImageError(f"box {box} lies outside the {width}x{height} image")
        draw = ImageDraw.Draw(image)
        line = max(2, round(max(width, height) / 300))
        for index, box in enumerate(boxes):
            draw.rectangle(box, outline=BOX_COLOURS[index % len(BOX_COLOURS)], width=line)
        ux0, uy0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        ux1, uy1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        mx, my = (ux1 - ux0) * BOX_MARGIN, (uy1 - uy0) * BOX_MARGIN
        image = image.crop(
            (max(0, int(ux0 - mx)), max(0, int(uy0 - my)), min(width, int(ux1 + mx)), min(height, int(uy1 + my)))
        )
    scale = max_side / max(image.size)
    if scale < 1:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS
        )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return EncodedImage(
        sha256=hashlib.sha256(raw).hexdigest(),
        data_url=f"data:image/jpeg;base64,{data}",
        size=image.size,
    )
