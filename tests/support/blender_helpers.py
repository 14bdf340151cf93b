"""Helpers for the headless Blender tests: enabling the add-on through Blender's add-on
system (so its preferences exist), a hash of everything a failed step must not change, and
reading keyframes with either action API."""

from __future__ import annotations

import hashlib

import bpy
import numpy as np
import pytest


@pytest.fixture
def enabled_addon(addon_package, tmp_path):
    """The add-on enabled by name on an empty scene, its cache folder in ``tmp_path``."""
    import addon_utils

    bpy.ops.wm.read_homefile(use_empty=True)
    addon_utils.enable("prosepose", default_set=True, handle_error=None)
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.cache_folder = str(tmp_path / "cache")
    try:
        yield addon_package
    finally:
        addon_utils.disable("prosepose", default_set=True, handle_error=None)


def action_fcurves(action):
    if bpy.app.version >= (4, 4, 0):
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    yield from bag.fcurves
    else:
        yield from action.fcurves


def action_digest(action) -> str:
    digest = hashlib.sha256(action.name.encode())
    for curve in sorted(action_fcurves(action), key=lambda c: (c.data_path, c.array_index)):
        digest.update(f"{curve.data_path}[{curve.array_index}]".encode())
        for attribute in ("co", "handle_left", "handle_right"):
            values = np.zeros(len(curve.keyframe_points) * 2, dtype=np.float32)
            curve.keyframe_points.foreach_get(attribute, values)
            digest.update(values.tobytes())
        interpolation = [k.interpolation for k in curve.keyframe_points]
        digest.update(repr(interpolation).encode())
    return digest.hexdigest()


def scene_digest() -> str:
    """Hash of all actions and their keyframes, object transforms and pose values, NLA
    tracks, and mesh data (vertices, faces, attributes, materials, custom properties)."""
    digest = hashlib.sha256()
    for action in sorted(bpy.data.actions, key=lambda a: a.name):
        digest.update(action_digest(action).encode())
    for obj in sorted(bpy.data.objects, key=lambda o: o.name):
        digest.update(obj.name.encode())
        digest.update(np.asarray(obj.matrix_world, dtype=np.float64).tobytes())
        digest.update(np.asarray(obj.matrix_basis, dtype=np.float64).tobytes())
        digest.update(repr(sorted(obj.keys())).encode())
        if obj.pose is not None:
            for bone in obj.pose.bones:
                digest.update(np.asarray(bone.matrix_basis, dtype=np.float64).tobytes())
        animation = obj.animation_data
        if animation is not None:
            digest.update(repr((animation.action.name if animation.action else None,
                                [(t.name, [(s.name, s.action.name if s.action else None) for s in t.strips]) for t in animation.nla_tracks])).encode())
    for mesh in sorted(bpy.data.meshes, key=lambda m: m.name):
        digest.update(mesh.name.encode())
        co = np.zeros(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        digest.update(co.tobytes())
        loops = np.zeros(len(mesh.loops), dtype=np.int32)
        mesh.loops.foreach_get("vertex_index", loops)
        digest.update(loops.tobytes())
        digest.update(repr(sorted(a.name for a in mesh.attributes)).encode())
        digest.update(repr([m.name if m else None for m in mesh.materials]).encode())
        digest.update(repr(sorted(mesh.keys())).encode())
        active = mesh.color_attributes.active_color
        digest.update(repr(active.name if active else None).encode())
    digest.update(repr(sorted(m.name for m in bpy.data.materials)).encode())
    return digest.hexdigest()


def evaluated_world_vertices(mesh_object) -> np.ndarray:
    """(V, 3) armature-deformed vertices in world space."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = mesh_object.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.zeros(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.asarray(evaluated.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
