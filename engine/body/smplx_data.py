"""Plain data for SMPL-X: the 55 joint names in the model's order, the kinematic tree, and
the region rules (skin group of each joint, landmark joints for ``engine.body.region_map``)."""

from __future__ import annotations

SMPLX_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2",
    "right_middle3", "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1",
    "right_ring2", "right_ring3", "right_thumb1", "right_thumb2", "right_thumb3",
)

SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)

SMPLX_NUM_VERTICES = 10475
# Shape components in a full SMPL-X file: 300 body shape + 100 expression.
SMPLX_SHAPE_SPACE_DIM = 300
SMPLX_EXPRESSION_SPACE_DIM = 100

HIP_JOINTS: tuple[str, str] = ("left_hip", "right_hip")
NECK_BASE_JOINT = "neck"
# The heads of the upper arms (left, right): the centre of each shoulder.
SHOULDER_JOINTS: tuple[str, str] = ("left_shoulder", "right_shoulder")

_GROUPS: dict[str, str] = {
    "pelvis": "torso", "spine1": "torso", "spine2": "torso", "spine3": "torso",
    "neck": "neck",
    "head": "head", "jaw": "head", "left_eye_smplhf": "head", "right_eye_smplhf": "head",
    "collar": "shoulder",
    "shoulder": "arm", "elbow": "arm",
    "wrist": "hand", "index": "hand", "middle": "hand", "pinky": "hand", "ring": "hand",
    "thumb": "hand",
    "hip": "leg", "knee": "leg",
    "ankle": "foot", "foot": "foot",
}


def joint_side(name: str) -> str | None:
    for side in ("left", "right"):
        if name.startswith(side + "_") and not name.endswith("_smplhf"):
            return side
    return None


def joint_group(name: str) -> str:
    if name in _GROUPS:
        return _GROUPS[name]
    stem = name.split("_", 1)[1] if joint_side(name) else name
    stem = stem.rstrip("123")
    if stem in _GROUPS:
        return _GROUPS[stem]
    raise KeyError(f"SMPL-X joint {name!r} has no region rule")
