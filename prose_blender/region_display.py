"""Show regions: colour the vertices of the enabled contacts' regions (a colour attribute and a
material that shows it in the viewport). Hide regions removes exactly what Show added and
restores the mesh's active colour attributes."""

from __future__ import annotations

import colorsys

import bpy
import numpy as np

from .addon import REGION_ATTRIBUTE, REGION_MATERIAL
from .bodies import mesh_regions
from .subjects import scene_subjects
from .vocabulary import regions_for_part

_STATE = "prosepose_regions_shown"
_BASE_COLOUR = (0.6, 0.6, 0.6, 1.0)


def enabled_regions(scene: bpy.types.Scene, person: int, available) -> list[str]:
    """Regions of ``person`` (1-based) named by the enabled contacts."""
    found: list[str] = []
    for contact in scene.prose.contacts:
        if not contact.enabled:
            continue
        for part, owner in ((contact.part_a, contact.person_a), (contact.part_b, contact.person_b)):
            if owner == person:
                for region in regions_for_part(part, available):
                    if region not in found:
                        found.append(region)
    return found


def _colour(index: int) -> tuple[float, float, float, float]:
    hue = (index * 0.618034) % 1.0
    return (*colorsys.hsv_to_rgb(hue, 0.8, 1.0), 1.0)


def _region_material() -> bpy.types.Material:
    material = bpy.data.materials.get(REGION_MATERIAL)
    if material is not None:
        return material
    material = bpy.data.materials.new(REGION_MATERIAL)
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True
    tree = material.node_tree
    principled = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
    attribute = tree.nodes.new("ShaderNodeAttribute")
    attribute.attribute_name = REGION_ATTRIBUTE
    tree.links.new(attribute.outputs["Color"], principled.inputs["Base Color"])
    return material


def show_regions(scene: bpy.types.Scene) -> list[str]:
    """Colour each subject's mesh; returns the regions shown ("P1 left_hand", ...)."""
    hide_regions(scene)
    shown = []
    for subject in scene_subjects(scene):
        mesh_object = subject.mesh
        if mesh_object is None:
            continue
        mesh = mesh_object.data
        regions = mesh_regions(mesh)
        names = enabled_regions(scene, subject.index + 1, regions)
        colours = np.tile(np.asarray(_BASE_COLOUR, dtype=np.float32), (len(mesh.vertices), 1))
        for name in names:
            colours[regions[name]] = _colour(list(regions).index(name))
            shown.append(f"P{subject.index + 1} {name}")
        active = mesh.color_attributes.active_color
        state = {
            "active": active.name if active is not None else "",
            "render_index": mesh.color_attributes.render_color_index,
            "material_added": 0,
        }
        attribute = mesh.color_attributes.new(REGION_ATTRIBUTE, "FLOAT_COLOR", "POINT")
        attribute.data.foreach_set("color", colours.ravel())
        mesh.color_attributes.active_color = attribute
        if len(mesh.materials) == 0:
            mesh.materials.append(_region_material())
            state["material_added"] = 1
        mesh[_STATE] = state
        mesh.update()
    _viewport_shows_attributes()
    return shown


def hide_regions(scene: bpy.types.Scene) -> int:
    """Undo :func:`show_regions` on every mesh it coloured; returns how many."""
    restored = 0
    for mesh in bpy.data.meshes:
        state = mesh.get(_STATE)
        if state is None:
            continue
        attribute = mesh.color_attributes.get(REGION_ATTRIBUTE)
        if attribute is not None:
            mesh.color_attributes.remove(attribute)
        if state["active"]:
            previous = mesh.color_attributes.get(state["active"])
            if previous is not None:
                mesh.color_attributes.active_color = previous
        if len(mesh.color_attributes):
            mesh.color_attributes.render_color_index = max(0, int(state["render_index"]))
        if state["material_added"] and len(mesh.materials) and mesh.materials[-1] is not None and mesh.materials[-1].name == REGION_MATERIAL:
            mesh.materials.pop()
        del mesh[_STATE]
        mesh.update()
        restored += 1
    material = bpy.data.materials.get(REGION_MATERIAL)
    if material is not None and material.users == 0:
        bpy.data.materials.remove(material)
    _restore_viewport()
    return restored


def regions_shown(scene: bpy.types.Scene) -> bool:
    return any(mesh.get(_STATE) is not None for mesh in bpy.data.meshes)


# Viewport shading changed by Show regions, restored by Hide regions: {space address: previous
# colour type}. UI state, never saved. Addresses, not the spaces: a space of a screen that was
# closed or of a file since replaced (File > New, Open) is freed memory, and setting a property
# through a kept reference to it crashed Blender; only spaces still on screen are restored.
_changed_shading: dict[int, str] = {}


def _view3d_spaces():
    window_manager = bpy.context.window_manager
    for window in getattr(window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                for space in area.spaces:
                    if space.type == "VIEW_3D":
                        yield space


def _viewport_shows_attributes() -> None:
    """In Solid shading, colour by attribute so the regions show without a render."""
    for space in _view3d_spaces():
        if space.shading.type == "SOLID" and space.shading.color_type != "VERTEX":
            _changed_shading.setdefault(space.as_pointer(), space.shading.color_type)
            space.shading.color_type = "VERTEX"


def _restore_viewport() -> None:
    for space in _view3d_spaces():
        previous = _changed_shading.get(space.as_pointer())
        if previous is not None:
            space.shading.color_type = previous
    _changed_shading.clear()
