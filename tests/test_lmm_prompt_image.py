"""Prompts built from the vocabulary; the image as the model receives it."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from engine.lmm.image import ImageError, encode_image, parse_box
from engine.lmm.parser import parse_response
from engine.lmm.prompts import build_prompt
from engine.body.regions import ONE_PERSON_PARTS, TWO_PERSON_PARTS


@pytest.mark.parametrize("num_people, parts", [(1, ONE_PERSON_PARTS), (2, TWO_PERSON_PARTS)])
def test_prompt_lists_exactly_the_vocabulary(num_people, parts):
    prompt = build_prompt(num_people)
    listed = [line[2:].split(":")[0] for line in prompt.system.splitlines() if line.startswith("- ") and ":" in line[:25]]
    assert tuple(listed) == parts
    assert "Markdown table" in prompt.system and "step by step" in prompt.system
    # the table the prompt asks for is one the parser reads
    header = f"| {prompt.columns[0]} | {prompt.columns[1]} |\n|---|---|\n| {parts[0]} | {parts[-1]} |\n"
    assert not parse_response(header, num_people).empty


def test_prompt_ids_differ_by_people_and_boxes():
    ids = {build_prompt(1).prompt_id, build_prompt(2).prompt_id, build_prompt(2, boxes=2).prompt_id}
    assert len(ids) == 3
    assert "blue rectangle" in build_prompt(2, boxes=2).user
    with pytest.raises(ValueError):
        build_prompt(1, boxes=2)


def _decode(data_url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def test_exif_rotated_photo_is_sent_upright(tmp_path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    Image.new("RGB", (300, 200), (10, 200, 10)).save(path, exif=exif)
    encoded = encode_image(path)
    assert encoded.size == (200, 300) and _decode(encoded.data_url).size == (200, 300)


def test_small_image_is_not_upscaled_and_box_errors_are_clear(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGBA", (320, 240), (0, 0, 0, 0)).save(path)
    encoded = encode_image(path)
    assert encoded.size == (320, 240) and _decode(encoded.data_url).format == "JPEG"
    assert len(encoded.sha256) == 64
    with pytest.raises(ImageError, match="outside"):
        encode_image(path, [(0, 0, 400, 100)])
    with pytest.raises(ImageError, match="x1 must be greater"):
        parse_box("10,10,5,20")
    with pytest.raises(ImageError, match="four numbers"):
        parse_box("1,2,3")
    with pytest.raises(ImageError, match="does not exist"):
        encode_image(tmp_path / "missing.png")
