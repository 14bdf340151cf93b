"""The demo's pictures: a small Workbench render (fast on a CPU-only machine, no GPU needed) of
the bodies on a floor, framed from an example's camera direction, and a side-by-side picture
with labels. Used for the reference images (``tools/make_examples.py``) and the before/after
renders (``tools/demo/run.py``)."""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

FLOOR_NAME = "Demo floor"
CAMERA_NAME = "Demo camera"
FLOOR_COLOUR = (0.92, 0.92, 0.90, 1.0)
BACKGROUND = (0.93, 0.94, 0.96)
# Person 1 warm, Person 2 cool: the reference image tells the two people apart like a photo.
PERSON_COLOURS = ((0.85, 0.62, 0.50, 1.0), (0.50, 0.62, 0.85, 1.0))


def add_floor(scene: bpy.types.Scene, size_m: float = 80.0) -> bpy.types.Object:
    """A square floor at z = 0 (where the bodies stand), coloured through a colour attribute
    too, so it shows in attribute-coloured renders."""
    existing = bpy.data.objects.get(FLOOR_NAME)
    if existing is not None:
        return existing
    half = size_m / 2
    mesh = bpy.data.meshes.new(FLOOR_NAME)
    mesh.from_pydata([(-half, -half, 0), (half, -half, 0), (half, half, 0), (-half, half, 0)], [], [(0, 1, 2, 3)])
    colour = mesh.color_attributes.new("floor", "FLOAT_COLOR", "POINT")
    colour.data.foreach_set("color", np.tile(np.asarray(FLOOR_COLOUR, dtype=np.float32), 4))
    floor = bpy.data.objects.new(FLOOR_NAME, mesh)
    floor.color = FLOOR_COLOUR
    scene.collection.objects.link(floor)
    return floor


def frame_camera(scene: bpy.types.Scene, points: np.ndarray, azimuth_deg: float, elevation_deg: float,
                 resolution: tuple[int, int], margin: float = 1.12) -> bpy.types.Object:
    """An orthographic camera looking from (azimuth, elevation) at ``points`` (world, (N, 3)),
    framing them all. Azimuth 0 looks from -y (the front of a person facing -y), 90 from +x."""
    camera = bpy.data.objects.get(CAMERA_NAME)
    if camera is None:
        camera = bpy.data.objects.new(CAMERA_NAME, bpy.data.cameras.new(CAMERA_NAME))
        scene.collection.objects.link(camera)
    camera.data.type = "ORTHO"
    azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
    offset = Vector((math.sin(azimuth) * math.cos(elevation), -math.cos(azimuth) * math.cos(elevation), math.sin(elevation)))
    centre = Vector(points.mean(axis=0).tolist())
    rotation = (-offset).to_track_quat("-Z", "Y").to_matrix()
    # The points in the camera's axes: centre the view on their box and fit its larger side.
    local = (points - np.asarray(centre)) @ np.asarray(rotation)
    low, high = local.min(axis=0), local.max(axis=0)
    width, height = resolution
    extent = max(high[0] - low[0], (high[1] - low[1]) * width / height) if width >= height else \
        max(high[1] - low[1], (high[0] - low[0]) * height / width)
    shift = rotation @ Vector((0.5 * (low[0] + high[0]), 0.5 * (low[1] + high[1]), 0.0))
    distance = float(high[2] - low[2]) + 5.0
    camera.matrix_world = Matrix.Translation(centre + shift + offset * distance) @ rotation.to_4x4()
    camera.data.ortho_scale = float(extent) * margin
    camera.data.clip_end = distance * 3 + 10
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    return camera


def render(scene: bpy.types.Scene, path: Path, colour_by: str) -> Path:
    """Render ``scene`` with Workbench to ``path`` (PNG). ``colour_by``: "OBJECT" (each object's
    colour: the reference image) or "VERTEX" (the active colour attribute: the contact
    regions that Show regions painted)."""
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = colour_by
    shading.show_shadows = True
    shading.show_cavity = False
    shading.show_object_outline = True
    scene.display.shadow_focus = 0.2
    world = scene.world or bpy.data.worlds.new("Demo world")
    scene.world = world
    world.color = BACKGROUND
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.render.render(write_still=True)
    return path


def side_by_side(pictures: list[tuple[Path, str]], out: Path, title: str = "", height: int = 360) -> Path:
    """The pictures in a row, each scaled to ``height`` pixels and labelled below; ``title`` above."""
    from PIL import Image, ImageDraw

    images = []
    for path, _label in pictures:
        with Image.open(path) as image:
            image = image.convert("RGB")
            images.append(image.resize((max(1, round(image.width * height / image.height)), height)))
    pad, label_h, title_h = 8, 24, 28 if title else 0
    width = sum(i.width for i in images) + pad * (len(images) + 1)
    sheet = Image.new("RGB", (width, height + label_h + title_h + 2 * pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), title, fill=(20, 20, 20))
    x = pad
    for image, (_path, label) in zip(images, pictures):
        sheet.paste(image, (x, pad + title_h))
        draw.text((x + 4, pad + title_h + height + 6), label, fill=(20, 20, 20))
        x += image.width + pad
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out
