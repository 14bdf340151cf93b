"""Bodies made by the official SMPL-X Blender add-on (Meshcapade's), used as subjects as they are.

Their convention (read from that add-on's source; nothing of it is copied here):

* an armature whose bone ``root`` is the parent of ``pelvis``; below it the 55 SMPL-X joints in
  the model's order (the eyes named ``left_eye_smplhf`` / ``right_eye_smplhf``, or ``left_eye``
  / ``right_eye`` in some versions), the last 30 being 15 finger bones per hand;
* every bone's rest matrix is the identity in armature space (head at the joint, tail 10 cm
  along +Y of the armature, no roll), so a bone's ``rotation_quaternion`` *is* SMPL-X's local
  axis-angle rotation; armature space is SMPL-X's Y-up model frame, usually in centimetres (the
  object scaled by 0.01 and turned +90 degrees about X so the body stands in Blender's Z up,
  bones then pointing +Z in the world);
* ``pelvis`` location keyed from ``trans`` (armature units, SMPL-X's Y-up axes); for AMASS
  imports the ``root`` bone is keyed at -90 degrees about X to stand the Z-up AMASS data up;
* the mesh is a child of the armature, in SMPL-X's vertex order, with vertex groups named after
  the joints, shape keys ``Shape000...`` (betas) and ``Pose000...`` (pose correctives).

The engine's root is ``pelvis``; whatever ``root``'s pose and the object's transform do is a
placement folded into the pelvis when a pose is read, and folded back out when it is written
(``poses.py``). ``root`` is never keyed by a refinement.
"""

from __future__ import annotations

import re

import bpy
import numpy as np

from .addon import PROP_BODY, PROP_REGIONS
from .retarget import SMPLX_JOINTS  # SMPL-X's 55 joints in the model's order (the engine's names)
from .settings import ProseError

CONVENTION = "smplx_addon"
ROOT_BONE = "root"
SMPLX_MODEL_TO_WORLD = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))

#: Other names the add-on's versions give a joint.
_ALIASES = {"left_eye_smplhf": ("left_eye",), "right_eye_smplhf": ("right_eye",)}
_SHAPE_KEY = re.compile(r"^Shape(\d{3})$")


def bone_names(armature: bpy.types.Object) -> tuple[str, ...] | None:
    """The armature's bone for each SMPL-X joint (engine order), or None when it is not built
    like the official add-on's (a ``root`` bone parenting ``pelvis`` and all 55 joints)."""
    if armature is None or armature.type != "ARMATURE":
        return None
    bones = armature.data.bones
    root, pelvis = bones.get(ROOT_BONE), bones.get("pelvis")
    if root is None or pelvis is None or pelvis.parent != root:
        return None
    names = []
    for joint in SMPLX_JOINTS:
        found = next((n for n in (joint, *_ALIASES.get(joint, ())) if n in bones), None)
        if found is None:
            return None
        names.append(found)
    return tuple(names)


def is_addon_armature(armature: bpy.types.Object) -> bool:
    return bone_names(armature) is not None


def addon_mesh(armature: bpy.types.Object) -> bpy.types.Object | None:
    """The mesh the armature deforms (SMPL-X's 10475 vertices)."""
    for obj in bpy.data.objects:
        if obj.type == "MESH" and any(m.type == "ARMATURE" and m.object == armature for m in obj.modifiers):
            return obj
    return None


def addon_armature_of(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The add-on armature ``obj`` is, or whose mesh it is."""
    if obj is None:
        return None
    if obj.type == "MESH":
        obj = next((m.object for m in obj.modifiers if m.type == "ARMATURE" and m.object is not None), obj.parent)
    return obj if obj is not None and is_addon_armature(obj) else None


def shape_betas(mesh: bpy.types.Object, count: int) -> list[float]:
    """The betas the mesh's ``ShapeNNN`` keys hold (muted keys count as zero), ``count`` long."""
    betas = [0.0] * count
    keys = mesh.data.shape_keys
    if keys is None:
        return betas
    for block in keys.key_blocks:
        match = _SHAPE_KEY.match(block.name)
        if match and int(match.group(1)) < count and not block.mute:
            betas[int(match.group(1))] = float(block.value)
    return betas


def model_gender(armature: bpy.types.Object, mesh: bpy.types.Object | None) -> str | None:
    """'NEUTRAL' / 'MALE' / 'FEMALE' from the add-on's ``gender`` property or the names."""
    for obj in (mesh, armature):
        if obj is not None and isinstance(obj.get("gender"), str):
            return obj["gender"].upper()
    for obj in (mesh, armature):
        if obj is None:
            continue
        lowered = obj.name.lower()
        for gender in ("female", "male", "neutral"):
            if gender in lowered:
                return gender.upper()
    return None


def adopt(armature: bpy.types.Object, model_file: str, rig) -> bpy.types.Object:
    """Make an add-on armature a ProsePose subject: store what the engine needs on it (SMPL-X,
    the user's model file, the betas of its shape keys, its bone names) and the rig's regions
    on its mesh (SMPL-X vertex order). Neither bones, keys nor the mesh's geometry change."""
    names = bone_names(armature)
    if names is None:
        raise ProseError(f"{armature.name} is not an armature of the SMPL-X add-on (a 'root' bone above 'pelvis' and the 55 SMPL-X joints)")
    mesh = addon_mesh(armature)
    if mesh is None:
        raise ProseError(f"{armature.name} deforms no mesh: select the SMPL-X add-on's body (its mesh or armature)")
    if len(mesh.data.vertices) != len(rig.vertices):
        raise ProseError(f"{mesh.name} has {len(mesh.data.vertices)} vertices, SMPL-X has {len(rig.vertices)}: is it an SMPL-X mesh?")
    if rig.kind != "smplx" or tuple(rig.joint_names) != SMPLX_JOINTS:
        raise ProseError("The rig file is not SMPL-X's")
    armature[PROP_BODY] = {
        "kind": "smplx",
        "model_file": model_file,
        "shape": shape_betas(mesh, len(rig.shape) or 10),
        "joint_names": list(SMPLX_JOINTS),
        "bone_names": list(names),
        "model_to_world": [v for row in SMPLX_MODEL_TO_WORLD for v in row],
        "convention": CONVENTION,
    }
    mesh.data[PROP_REGIONS] = {
        "names": list(rig.region_names),
        "offsets": rig.region_offsets.astype(np.int32).tolist(),
        "vertex_ids": rig.region_vertex_ids.astype(np.int32).tolist(),
    }
    for name in names:
        armature.pose.bones[name].rotation_mode = "QUATERNION"
    return mesh


def needs_adoption(obj: bpy.types.Object | None) -> bool:
    """Whether ``obj`` (or its armature) is an SMPL-X add-on body not yet used as a subject."""
    armature = addon_armature_of(obj)
    return armature is not None and armature.get(PROP_BODY) is None
