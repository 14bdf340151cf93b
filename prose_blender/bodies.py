"""Build a body (armature + skinned mesh) from a :class:`~.rig.Rig` and read back what the
add-on stored on it."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix

from .addon import PROP_BODY, PROP_REGIONS
from .rig import Rig
from .settings import ProseError


@dataclass(frozen=True)
class BodyInfo:
    """What the engine needs to know about a subject's body (stored on the armature object)."""

    kind: str
    model_file: str
    shape: tuple[float, ...]
    joint_names: tuple[str, ...]
    model_to_world: Matrix  # 3x3
    # The armature's bone of each joint (empty: the joint names); "prosepose" for bodies made
    # by 'Add body', "smplx_addon" for the official SMPL-X add-on's (see smplx_addon.py).
    bone_names: tuple[str, ...] = ()
    convention: str = "prosepose"

    def bone(self, joint: str) -> str:
        """The armature's bone for ``joint``."""
        if not self.bone_names:
            return joint
        return self.bone_names[self.joint_names.index(joint)]


@dataclass(frozen=True)
class BuiltBody:
    armature: bpy.types.Object
    mesh: bpy.types.Object


def build_body(rig: Rig, name: str, collection: bpy.types.Collection, model_file: str = "") -> BuiltBody:
    """Create the armature, the mesh, one vertex group per skinned joint and an armature
    modifier. The armature object carries ``model_to_world`` as its rotation; the mesh is its
    child with an identity local transform, so both share the model frame."""
    armature_data = bpy.data.armatures.new(name)
    armature = bpy.data.objects.new(name, armature_data)
    collection.objects.link(armature)
    armature.matrix_world = Matrix(rig.model_to_world.tolist()).to_4x4()
    _build_bones(armature, rig)
    for bone in armature.pose.bones:
        bone.rotation_mode = "QUATERNION"
    armature[PROP_BODY] = {
        "kind": rig.kind,
        "model_file": model_file,
        "shape": rig.shape.tolist(),
        "joint_names": list(rig.joint_names),
        "model_to_world": rig.model_to_world.reshape(-1).tolist(),
    }

    mesh_data = _build_mesh(f"{name}_body", rig)
    mesh = bpy.data.objects.new(f"{name}_body", mesh_data)
    collection.objects.link(mesh)
    mesh.parent = armature
    mesh.matrix_parent_inverse = Matrix.Identity(4)
    mesh.matrix_basis = Matrix.Identity(4)
    _add_vertex_groups(mesh, rig)
    modifier = mesh.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    modifier.use_deform_preserve_volume = False
    return BuiltBody(armature, mesh)


def _build_bones(armature: bpy.types.Object, rig: Rig) -> None:
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = armature.data.edit_bones
        created = []
        for index, joint in enumerate(rig.joint_names):
            bone = edit_bones.new(joint)
            frame = rig.rest_joint_frames[index]
            head = frame[:3, 3]
            length = float(np.linalg.norm(rig.bone_tails[index] - head)) or 0.01
            bone.head = head.tolist()
            bone.tail = (head + frame[:3, 1] * length).tolist()
            # The matrix fixes the roll too: the bone's axes are exactly the joint's rest frame.
            bone.matrix = Matrix(frame.tolist())
            bone.use_deform = True
            created.append(bone)
        for index, parent in enumerate(rig.parents):
            if parent >= 0:
                created[index].parent = created[int(parent)]
                created[index].use_connect = False
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous_active


def _build_mesh(name: str, rig: Rig) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    faces = rig.faces
    mesh.vertices.add(len(rig.vertices))
    mesh.vertices.foreach_set("co", rig.vertices.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", (np.arange(len(faces), dtype=np.int32) * 3))
    if bpy.app.version < (4, 0, 0):
        mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    mesh[PROP_REGIONS] = {
        "names": list(rig.region_names),
        "offsets": rig.region_offsets.astype(np.int32).tolist(),
        "vertex_ids": rig.region_vertex_ids.astype(np.int32).tolist(),
    }
    return mesh


def _add_vertex_groups(mesh: bpy.types.Object, rig: Rig) -> None:
    order = np.argsort(rig.weight_joint, kind="stable")
    joints = rig.weight_joint[order]
    vertices = rig.weight_vertex[order]
    values = rig.weight_value[order]
    bounds = np.searchsorted(joints, np.arange(len(rig.joint_names) + 1))
    for index, joint in enumerate(rig.joint_names):
        group = mesh.vertex_groups.new(name=joint)
        start, stop = bounds[index], bounds[index + 1]
        if start == stop:
            continue
        # One call per distinct weight value keeps this to a few thousand calls per body.
        group_values = values[start:stop]
        group_vertices = vertices[start:stop]
        distinct, inverse = np.unique(group_values, return_inverse=True)
        for value_index, value in enumerate(distinct):
            group.add(group_vertices[inverse == value_index].tolist(), float(value), "REPLACE")


def body_info(armature: bpy.types.Object) -> BodyInfo:
    """The body data stored on an armature the add-on built (or an armature named like one)."""
    if armature is None or armature.type != "ARMATURE":
        raise ProseError("A subject must be an armature: pick the body's armature in the Subjects panel")
    data = armature.get(PROP_BODY)
    if data is None:
        from .smplx_addon import is_addon_armature

        if is_addon_armature(armature):
            raise ProseError(
                f"{armature.name} is a body of the SMPL-X add-on: click 'Use SMPL-X add-on body' "
                "(Subjects panel) so ProsePose reads it with your SMPL-X model file"
            )
        raise ProseError(
            f"{armature.name} was not made by 'Add body': add the body with ProsePose so the "
            "engine knows its model and shape"
        )
    matrix = list(data["model_to_world"])
    return BodyInfo(
        kind=str(data["kind"]),
        model_file=str(data.get("model_file", "")),
        shape=tuple(float(v) for v in data["shape"]),
        joint_names=tuple(str(n) for n in data["joint_names"]),
        model_to_world=Matrix([matrix[0:3], matrix[3:6], matrix[6:9]]),
        bone_names=tuple(str(n) for n in data.get("bone_names", ())),
        convention=str(data.get("convention", "prosepose")),
    )


def body_mesh(armature: bpy.types.Object) -> bpy.types.Object | None:
    """The first mesh deformed by ``armature``."""
    for child in armature.children:
        if child.type == "MESH" and any(m.type == "ARMATURE" and m.object == armature for m in child.modifiers):
            return child
    return None


def mesh_regions(mesh: bpy.types.Mesh) -> dict[str, np.ndarray]:
    """Region name -> vertex ids, from the rig data stored on the mesh (empty if none)."""
    data = mesh.get(PROP_REGIONS)
    if data is None:
        return {}
    names = [str(n) for n in data["names"]]
    offsets = np.asarray(data["offsets"], dtype=np.int64)
    ids = np.asarray(data["vertex_ids"], dtype=np.int64)
    return {name: ids[offsets[i]: offsets[i + 1]] for i, name in enumerate(names)}


# Add body: a new body stands on the floor (z = 0); Person 2 stands this far in front of
# Person 1, facing it.
STEP_M = 0.9
_FRONT = ("chest", "stomach", "waist_front")
_BACK = ("back", "waist_back")


def _facing(points: np.ndarray, regions: dict[str, np.ndarray]) -> np.ndarray:
    """Unit XY direction a body faces: from its back regions to its front regions (world
    frame); -Y (Blender's front view) when the body has no such regions."""
    front = [regions[n] for n in _FRONT if n in regions and len(regions[n])]
    back = [regions[n] for n in _BACK if n in regions and len(regions[n])]
    if front and back:
        direction = points[np.concatenate(front)].mean(0) - points[np.concatenate(back)].mean(0)
        direction[2] = 0.0
        length = float(np.linalg.norm(direction))
        if length > 1e-6:
            return direction / length
    return np.array([0.0, -1.0, 0.0])


def _world_points(mesh_object: bpy.types.Object, armature: bpy.types.Object) -> np.ndarray:
    """Rest (undeformed) vertices of a body mesh in world space (the mesh sits on its
    armature with an identity local transform; the armature's matrix is up to date even
    before the scene is evaluated)."""
    mesh = mesh_object.data
    co = np.zeros(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    matrix = np.asarray(armature.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def place_new_body(built: BuiltBody, partner: bpy.types.Object | None) -> None:
    """Stand a new body on the floor (its lowest vertex at z = 0) and, when ``partner`` (Person
    1's armature) is given, a step in front of it, facing it."""
    model_to_world = Matrix(np.asarray(built.armature.matrix_world)[:3, :3].tolist())
    points = _world_points(built.mesh, built.armature)  # the armature is still at the origin
    translation = np.zeros(3)
    rotation = Matrix.Identity(3)
    if partner is not None and body_mesh(partner) is not None:
        partner_mesh = body_mesh(partner)
        partner_facing = _facing(_world_points(partner_mesh, partner), mesh_regions(partner_mesh.data))
        own_facing = _facing(points, mesh_regions(built.mesh.data))
        turn = np.arctan2(-partner_facing[1], -partner_facing[0]) - np.arctan2(own_facing[1], own_facing[0])
        rotation = Matrix.Rotation(float(turn), 3, "Z")
        translation[:2] = np.asarray(partner.matrix_world.translation)[:2] + STEP_M * partner_facing[:2]
        points = points @ np.asarray(rotation).T
    translation[2] = -float(points[:, 2].min())
    world = (rotation @ model_to_world).to_4x4()
    world.translation = translation.tolist()
    built.armature.matrix_world = world
