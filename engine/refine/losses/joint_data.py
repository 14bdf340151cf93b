"""Per-body joint data: which joints the optimizer moves and their anatomical limits.

Limits are the maximum rotation angle of a joint away from its rest orientation (degrees),
one number per joint: the larger of the joint's main ranges of motion in the normal-adult
reference values of the American Academy of Orthopaedic Surgeons ("Joint Motion: Method of
Measuring and Recording", AAOS 1965; the same figures are tabulated in Soucie et al.,
"Range of motion measurements: reference values and a database for comparison studies",
Haemophilia 17(3), 2011): shoulder flexion 180, elbow flexion 150, forearm pronation /
supination 80, wrist flexion 80, hip flexion 120, knee flexion 135, ankle plantar flexion 50,
cervical rotation 80 and thoracolumbar flexion 80, the last two shared by the chain of neck and
spine bones of a rig. A magnitude limit cannot tell flexion from hyperextension; it keeps the
optimizer from twisting a limb into an impossible pose, and the stay-close term does the rest.
"""

from __future__ import annotations

import math

# Joints the optimizer never moves (fingers, toes, eyes, jaw): the contact loss works on the
# body pose, as in the method; hands keep the artist's or the regressor's pose.
FROZEN_NAME_PARTS: dict[str, tuple[str, ...]] = {
    "anny": ("finger", "metacarpal", "toe", "eye."),
    "smplx": ("jaw", "eye", "index", "middle", "pinky", "ring", "thumb"),
}

# joint name -> maximum angle from rest, degrees (see the module docstring for the source).
JOINT_LIMITS_DEG: dict[str, dict[str, float]] = {
    "anny": {
        **{f"pelvis.{s}": 15.0 for s in "LR"},
        **{f"upperleg01.{s}": 120.0 for s in "LR"},  # hip
        **{f"upperleg02.{s}": 45.0 for s in "LR"},  # thigh twist
        **{f"lowerleg01.{s}": 135.0 for s in "LR"},  # knee
        **{f"lowerleg02.{s}": 30.0 for s in "LR"},  # shin twist
        **{f"foot.{s}": 50.0 for s in "LR"},  # ankle
        **{f"spine0{i}": 20.0 for i in range(1, 6)},  # 80 degrees over five bones
        **{f"clavicle.{s}": 30.0 for s in "LR"},
        **{f"shoulder01.{s}": 30.0 for s in "LR"},
        **{f"upperarm01.{s}": 150.0 for s in "LR"},  # glenohumeral, from an A-pose rest
        **{f"upperarm02.{s}": 80.0 for s in "LR"},  # upper-arm twist
        **{f"lowerarm01.{s}": 150.0 for s in "LR"},  # elbow
        **{f"lowerarm02.{s}": 80.0 for s in "LR"},  # pronation / supination
        **{f"wrist.{s}": 80.0 for s in "LR"},
        **{f"neck0{i}": 30.0 for i in range(1, 4)},  # 80 degrees over three bones
        "head": 40.0,
    },
    "smplx": {
        **{f"{s}_hip": 120.0 for s in ("left", "right")},
        **{f"{s}_knee": 135.0 for s in ("left", "right")},
        **{f"{s}_ankle": 50.0 for s in ("left", "right")},
        **{f"{s}_foot": 30.0 for s in ("left", "right")},
        **{f"spine{i}": 30.0 for i in (1, 2, 3)},
        **{f"{s}_collar": 30.0 for s in ("left", "right")},
        **{f"{s}_shoulder": 150.0 for s in ("left", "right")},
        **{f"{s}_elbow": 150.0 for s in ("left", "right")},
        **{f"{s}_wrist": 80.0 for s in ("left", "right")},
        "neck": 50.0,
        "head": 40.0,
    },
    "synthetic": {
        **{f"{s}_knee": 135.0 for s in ("left", "right")},
        **{f"{s}_elbow": 150.0 for s in ("left", "right")},
        "spine": 40.0,
        "neck": 40.0,
    },
}


# One "unit" of shape change for the shape prior: SMPL-X betas are standard deviations
# already; Anny's phenotypes live in [0, 1], where 0.02 is already about 1 cm of height: the
# artist's character must not be re-proportioned to reach a contact.
SHAPE_UNIT: dict[str, float] = {"anny": 0.02, "smplx": 1.0, "synthetic": 1.0}


# Multiplier of every joint's stay-close weight. Anny spreads one anatomical joint over
# several bones (five spine bones, two upper-arm and two forearm bones, three neck bones):
# the same posture change split over k bones costs 1/k as much squared angle, so its bones
# are held proportionally harder to keep a posture as stiff as on SMPL-X's one bone per joint.
STAY_CLOSE_RIG_SCALE: dict[str, float] = {"anny": 4.0, "smplx": 1.0, "synthetic": 1.0}


def optimized_joint_mask(kind: str, joint_names: tuple[str, ...]) -> list[bool]:
    """True for every joint the optimizer may rotate (the root included: global orientation)."""
    frozen = FROZEN_NAME_PARTS.get(kind, ())
    return [not any(part in name for part in frozen) for name in joint_names]


def joint_limit_radians(kind: str, joint_names: tuple[str, ...]) -> list[float]:
    """Per joint, the maximum angle from rest in radians (inf where no limit is known)."""
    table = JOINT_LIMITS_DEG.get(kind, {})
    return [math.radians(table[name]) if name in table else math.inf for name in joint_names]
