"""Build, in headless Blender, a body the way the official SMPL-X Blender add-on builds and
animates one (its convention, written from reading its source; nothing copied), from a
generated SMPL-X model file:

* armature object turned +90 degrees about X and scaled 0.01 (armature space = SMPL-X's Y-up
  model frame in centimetres); a ``root`` bone at the origin above ``pelvis``; the 55 SMPL-X
  joints named like the engine's (``left_eye_smplhf``...), every bone's head at its joint,
  tail 10 cm along armature +Y (+Z in the world), no roll, so every rest matrix is a pure
  translation; quaternion rotations;
* the mesh a child of the armature in SMPL-X's vertex order (armature units), one vertex group
  per joint, an Armature modifier, shape keys ``Shape000...`` (betas) and ``Pose000...`` (pose
  correctives, left at 0);
* animation keyed like the add-on's clip import: ``rotation_quaternion`` per joint from the
  axis-angle, ``pelvis`` location = ``trans`` * 100, and for AMASS clips the ``root`` bone
  keyed at -90 degrees about X.
"""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Quaternion, Vector

UNITS = 100.0  # armature units per metre


def build_addon_body(model_file, joint_names, betas, name: str = "SMPLX-neutral", pose_keys: int = 486):
    """(armature, mesh) built from ``model_file`` with shape ``betas`` (the bones placed at the
    shaped joints, as the add-on's 'Update joint locations' does); ``joint_names``: SMPL-X's
    55 joint names in the model's order."""
    with np.load(model_file) as data:
        parents = [int(p) if int(p) < len(joint_names) else -1 for p in data["kintree_table"][0]]
        template = data["v_template"].astype(np.float64)
        faces = data["f"].astype(np.int64)
        shapedirs = data["shapedirs"][:, :, : len(betas)].astype(np.float64)
        posedirs = data["posedirs"].astype(np.float64)
        regressor = data["J_regressor"].astype(np.float64)
        weights = data["weights"].astype(np.float64)
    betas = np.asarray(betas, dtype=np.float64)
    joints = regressor @ (template + shapedirs @ betas)

    collection = bpy.context.scene.collection
    armature = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    collection.objects.link(armature)
    armature.rotation_mode = "XYZ"
    armature.rotation_euler = (math.pi / 2, 0.0, 0.0)
    armature.scale = (1 / UNITS,) * 3
    view_layer = bpy.context.view_layer
    view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    edit = armature.data.edit_bones
    root = edit.new("root")
    root.head, root.tail, root.roll = (0, 0, 0), (0, 10, 0), 0.0
    created = []
    for index, joint in enumerate(joint_names):
        bone = edit.new(joint)
        head = Vector(joints[index] * UNITS)
        bone.head, bone.tail, bone.roll = head, head + Vector((0, 10, 0)), 0.0
        bone.parent = root if parents[index] < 0 else created[parents[index]]
        bone.use_connect = False
        created.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    for bone in armature.pose.bones:
        bone.rotation_mode = "QUATERNION"

    mesh_data = bpy.data.meshes.new(f"{name}-mesh")
    mesh_data.from_pydata((template * UNITS).tolist(), [], faces.tolist())
    mesh_data.update()
    mesh = bpy.data.objects.new(f"{name}-mesh", mesh_data)
    collection.objects.link(mesh)
    mesh.parent = armature
    mesh["gender"] = "neutral"
    mesh["SMPL_version"] = "SMPLX"
    for index, joint in enumerate(joint_names):
        group = mesh.vertex_groups.new(name=joint)
        column = weights[:, index]
        for vertex in np.nonzero(column > 0)[0]:
            group.add([int(vertex)], float(column[vertex]), "REPLACE")
    modifier = mesh.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    mesh.shape_key_add(name="Basis", from_mix=False)
    keys = [(f"Shape{i:03d}", shapedirs[:, :, i], float(b)) for i, b in enumerate(betas)]
    keys += [(f"Pose{k:03d}", posedirs[:, :, k], 0.0) for k in range(pose_keys)]
    for key_name, direction, value in keys:
        block = mesh.shape_key_add(name=key_name, from_mix=False)
        block.data.foreach_set("co", ((template + direction) * UNITS).astype(np.float32).ravel())
        block.slider_min, block.slider_max = -10.0, 10.0
        block.value = value
    return armature, mesh


def key_addon_frame(armature, joint_names, frame: int, poses: np.ndarray, trans: np.ndarray, amass: bool) -> None:
    """Key one frame like the add-on's clip import: (55, 3) axis-angles, (3,) trans (metres)."""
    for index, joint in enumerate(joint_names):
        vector = Vector(poses[index])
        bone = armature.pose.bones[joint]
        bone.rotation_quaternion = Quaternion(vector.normalized(), vector.length) if vector.length > 1e-12 else Quaternion()
        bone.keyframe_insert("rotation_quaternion", frame=frame)
    pelvis = armature.pose.bones["pelvis"]
    pelvis.location = Vector(trans) * UNITS
    pelvis.keyframe_insert("location", frame=frame)
    if amass:
        root = armature.pose.bones["root"]
        root.rotation_quaternion = Quaternion((1.0, 0.0, 0.0), math.radians(-90))
        root.keyframe_insert("rotation_quaternion", frame=frame)
        root.keyframe_insert("location", frame=frame)
