"""Plain data for the Anny body: which skin group each bone's vertices belong to, and the
landmark joints the region geometry is measured from (see ``engine.body.region_map``)."""

from __future__ import annotations

import re

# Landmarks: the two hip joints (top of the thighs) and the base of the neck.
HIP_JOINTS: tuple[str, str] = ("upperleg01.L", "upperleg01.R")
NECK_BASE_JOINT = "neck01"
# The heads of the upper arms (left, right): the centre of each shoulder.
SHOULDER_JOINTS: tuple[str, str] = ("upperarm01.L", "upperarm01.R")

# Bone name pattern -> skin group. The side comes from the ".L" / ".R" suffix.
_GROUP_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"root|pelvis\.[LR]|spine0[1-5]", "torso"),
    (r"neck0[1-3]", "neck"),
    (r"head|eye\.[LR]", "head"),
    (r"clavicle\.[LR]|shoulder01\.[LR]", "shoulder"),
    (r"upperarm0[12]\.[LR]|lowerarm0[12]\.[LR]", "arm"),
    (r"wrist\.[LR]|metacarpal\d\.[LR]|finger\d-\d\.[LR]", "hand"),
    (r"upperleg0[12]\.[LR]|lowerleg0[12]\.[LR]", "leg"),
    (r"foot\.[LR]|toe\d-\d\.[LR]", "foot"),
)


def joint_group(name: str) -> str:
    for pattern, group in _GROUP_PATTERNS:
        if re.fullmatch(pattern, name):
            return group
    raise KeyError(f"Anny bone {name!r} has no region rule")


def joint_side(name: str) -> str | None:
    if name.endswith(".L"):
        return "left"
    if name.endswith(".R"):
        return "right"
    return None
