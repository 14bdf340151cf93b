"""Pose conversion between Blender pose bones and the engine's convention.

Engine convention (rig description, engine/body/base.py): a joint's local rotation is in its
own rest frame, i.e. exactly ``pose_bone.rotation_quaternion``; the root translation is an
offset of the root joint in the model frame. The armature object's transform is expected to be
``model_to_world``; any extra placement of the object (moved or turned about by the artist) is
folded into the root joint, so two people placed by object transforms meet the engine in one
world, and folded back out when the result is written."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
from mathutils import Matrix, Quaternion, Vector

from .bodies import BodyInfo
from .settings import ProseError


@dataclass(frozen=True)
class EnginePose:
    """One person's pose in the engine's convention.

    rotations: joint name -> unit quaternion (w, x, y, z) in the joint's rest frame.
    root_translation: (3,) metres, model frame.
    """

    rotations: dict[str, tuple[float, float, float, float]]
    root_translation: tuple[float, float, float]


@dataclass(frozen=True)
class BonePose:
    """The pose-bone values that produce an :class:`EnginePose` on a given armature object."""

    rotations: dict[str, Quaternion]
    root_bone: str
    root_location: Vector


@dataclass(frozen=True)
class _Placement:
    root_bone: str  # the engine root's bone
    rest_head: Vector  # root joint rest position, model frame (metres)
    rest_rotation: Matrix  # root joint rest rotation (3x3), model frame
    extra_rotation: Matrix  # object placement beyond model_to_world, model frame (3x3)
    extra_offset: Vector  # same, translation, model frame (metres)
    unit: float  # metres per armature unit (the official SMPL-X add-on's armatures are in cm)


def root_bone_name(armature: bpy.types.Object, info: BodyInfo) -> str:
    """The bone of the engine's root joint: the first joint whose bone has no parent among the
    joints' bones (no parent at all for 'Add body' bodies; ``root`` for the SMPL-X add-on's)."""
    bones = {info.bone(name) for name in info.joint_names}
    for name in info.joint_names:
        bone = armature.data.bones.get(info.bone(name))
        if bone is not None and (bone.parent is None or bone.parent.name not in bones):
            return bone.name
    raise ProseError(f"{armature.name} has no root bone among its joints: rebuild it with 'Add body'")


def _placement(armature: bpy.types.Object, info: BodyInfo) -> _Placement:
    root = root_bone_name(armature, info)
    bone = armature.data.bones[root]
    frame = armature.matrix_world
    if bone.parent is not None:
        # Whatever the bones above the root joint do (the SMPL-X add-on's ``root`` bone, turned
        # -90 degrees about X for AMASS clips) is placement, like the object's transform.
        parent = armature.pose.bones[bone.parent.name]
        frame = frame @ parent.matrix @ bone.parent.matrix_local.inverted()
    location, rotation, scale = frame.decompose()
    unit = float(scale[0])
    if info.convention == "prosepose" and max(abs(s - 1.0) for s in scale) > 1e-5:
        raise ProseError(f"{armature.name} is scaled: apply its scale (Ctrl+A > Scale) so the body keeps its real size")
    if max(abs(s - unit) for s in scale) > 1e-5 * abs(unit) or unit <= 0:
        raise ProseError(f"{armature.name} is scaled unevenly ({tuple(round(s, 4) for s in scale)}): give it one scale on all axes")
    model_to_world = info.model_to_world
    extra_rotation = model_to_world.transposed() @ rotation.to_matrix()
    extra_offset = model_to_world.transposed() @ location
    return _Placement(root, bone.head_local * unit, bone.matrix_local.to_3x3(), extra_rotation, extra_offset, unit)


def read_engine_pose(armature: bpy.types.Object, info: BodyInfo) -> EnginePose:
    """The armature's current pose (as evaluated at the current frame) in the engine's form."""
    place = _placement(armature, info)
    rotations: dict[str, tuple[float, float, float, float]] = {}
    for name in info.joint_names:
        pose_bone = armature.pose.bones.get(info.bone(name))
        if pose_bone is None:
            raise ProseError(f"{armature.name} has no bone {name!r}: rebuild the body with 'Add body'")
        if pose_bone.rotation_mode != "QUATERNION":
            quaternion = pose_bone.matrix_basis.to_quaternion()
        else:
            quaternion = pose_bone.rotation_quaternion.normalized()
        rotations[name] = tuple(quaternion)
    root_joint = info.joint_names[[info.bone(n) for n in info.joint_names].index(place.root_bone)]
    root_pose = armature.pose.bones[place.root_bone]
    offset = place.rest_rotation @ root_pose.location * place.unit
    local = Quaternion(rotations[root_joint]).to_matrix()
    # Fold the object's extra placement into the root joint (see the module docstring).
    moved_head = place.extra_rotation @ (place.rest_head + offset) + place.extra_offset
    root_rotation = place.rest_rotation.transposed() @ place.extra_rotation @ place.rest_rotation @ local
    rotations[root_joint] = tuple(root_rotation.to_quaternion().normalized())
    translation = moved_head - place.rest_head
    return EnginePose(rotations, tuple(translation))


def bone_pose_from_engine(armature: bpy.types.Object, info: BodyInfo, pose: EnginePose) -> BonePose:
    """Inverse of :func:`read_engine_pose`: the pose-bone values giving ``pose``."""
    place = _placement(armature, info)
    rotations = {info.bone(name): Quaternion(q).normalized() for name, q in pose.rotations.items()}
    for name in info.joint_names:
        rotations.setdefault(info.bone(name), Quaternion())
    root_rotation = rotations[place.root_bone].to_matrix()
    undo = place.extra_rotation.transposed()
    local = place.rest_rotation.transposed() @ undo @ place.rest_rotation @ root_rotation
    rotations[place.root_bone] = local.to_quaternion().normalized()
    moved_head = place.rest_head + Vector(pose.root_translation)
    offset = undo @ (moved_head - place.extra_offset) - place.rest_head
    location = place.rest_rotation.transposed() @ offset / place.unit
    return BonePose(rotations, place.root_bone, location)
