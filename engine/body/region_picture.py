"""Draw a body's regions, front and back, each region in its own colour, with a legend, so a
person can check the region map at a glance (``python -m engine regions``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.body.regions import ELEMENTARY_REGIONS

# One colour per elementary region, in ELEMENTARY_REGIONS order; the left and right variants
# of a part get clearly different colours so a swapped side shows at once.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (235, 200, 165),  # head
    (150, 110, 80),  # neck
    (220, 50, 50),  # chest
    (245, 150, 40),  # stomach
    (250, 220, 60),  # waist_front
    (120, 80, 170),  # waist_back
    (60, 110, 200),  # back
    (205, 80, 170),  # butt
    (30, 160, 150),  # left_shoulder_front
    (150, 225, 205),  # right_shoulder_front
    (15, 95, 85),  # left_shoulder_back
    (75, 150, 95),  # right_shoulder_back
    (35, 75, 215),  # left_arm
    (135, 185, 250),  # right_arm
    (150, 200, 40),  # left_hand
    (80, 115, 20),  # right_hand
    (200, 125, 225),  # left_leg
    (115, 35, 125),  # right_leg
    (190, 120, 60),  # left_foot
    (250, 170, 130),  # right_foot
)
_UNASSIGNED = (170, 170, 170)
VIEW_HEIGHT_PX = 900
MARGIN_PX = 30
LEGEND_WIDTH_PX = 260


def _region_colours() -> dict[str, tuple[int, int, int]]:
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(ELEMENTARY_REGIONS)}


def _face_labels(faces: np.ndarray, vertex_label: np.ndarray) -> np.ndarray:
    """Majority label of each face's three vertices (the first vertex's on a three-way tie)."""
    a, b, c = vertex_label[faces[:, 0]], vertex_label[faces[:, 1]], vertex_label[faces[:, 2]]
    return np.where((b == c) & (a != b), b, a)


def _draw_view(
    draw: ImageDraw.ImageDraw,
    vertices: np.ndarray,
    faces: np.ndarray,
    face_colours: np.ndarray,
    from_front: bool,
    origin: tuple[float, float],
    scale: float,
    bounds_min: np.ndarray,
) -> None:
    # Front view: the camera looks along +Y at a body facing -Y; its left (+X) is on the image's right.
    sign = 1.0 if from_front else -1.0
    u = sign * vertices[:, 0]
    u_min = -np.max(np.abs(vertices[:, 0]))
    px = origin[0] + (u - u_min) * scale
    py = origin[1] + (vertices[:, 2].max() - vertices[:, 2]) * scale
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    facing = -sign * normals[:, 1]  # towards the camera
    depth = sign * corners[:, :, 1].mean(axis=1)
    shade = 0.45 + 0.55 * np.clip(np.abs(facing), 0.0, 1.0)
    for face in np.argsort(-depth):  # farthest first
        i, j, k = faces[face]
        colour = tuple(int(c * shade[face]) for c in face_colours[face])
        draw.polygon([(px[i], py[i]), (px[j], py[j]), (px[k], py[k])], fill=colour)


def draw_regions(
    vertices: np.ndarray,
    faces: np.ndarray,
    regions: dict[str, np.ndarray],
    out: str | Path,
    title: str,
) -> None:
    """vertices (V, 3) world frame at rest (Z up, facing -Y); faces (F, 3);
    regions: elementary region name -> vertex ids. Writes a PNG."""
    colours = _region_colours()
    labels = np.full(len(vertices), -1, dtype=np.int64)
    for index, name in enumerate(ELEMENTARY_REGIONS):
        labels[regions[name]] = index
    lookup = np.array([colours[n] for n in ELEMENTARY_REGIONS] + [_UNASSIGNED], dtype=np.float64)
    face_colours = lookup[_face_labels(faces, labels)]

    extent = vertices.max(axis=0) - vertices.min(axis=0)
    scale = VIEW_HEIGHT_PX / extent[2]
    view_width = 2 * np.max(np.abs(vertices[:, 0])) * scale
    width = int(2 * view_width + 3 * MARGIN_PX + LEGEND_WIDTH_PX)
    height = int(VIEW_HEIGHT_PX + 3 * MARGIN_PX)
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)
    top = 2 * MARGIN_PX
    for column, (from_front, label) in enumerate(((True, "front"), (False, "back"))):
        left = MARGIN_PX + column * (view_width + MARGIN_PX)
        _draw_view(draw, vertices, faces, face_colours, from_front, (left, top), scale, vertices.min(axis=0))
        draw.text((left + view_width / 2 - 20, MARGIN_PX * 0.6), label, fill=(0, 0, 0), font=font)
    draw.text((MARGIN_PX, 4), title, fill=(0, 0, 0), font=font)
    legend_left = 2 * view_width + 2 * MARGIN_PX + 10
    for index, name in enumerate(ELEMENTARY_REGIONS):
        y = top + index * 26
        draw.rectangle([legend_left, y, legend_left + 18, y + 18], fill=colours[name], outline=(0, 0, 0))
        draw.text((legend_left + 26, y + 1), f"{name} ({len(regions[name])})", fill=(0, 0, 0), font=font)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG")
