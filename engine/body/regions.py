"""The body-part vocabulary: the single source of truth for every region name.

Three layers, from what a language model writes to what lives on a mesh:

* **Parts** (``TWO_PERSON_PARTS``, ``ONE_PERSON_PARTS``): the coarse words the prompts offer.
  They carry no side; the model is told not to write left/right.
* **Bases** (``REGION_BASES``): what a part stands for on the body, e.g. the part
  ``"waist (front)"`` is the base ``"waist_front"``. A base is sided (limbs, shoulders) or not.
* **Regions** (``MESH_REGIONS``): concrete vertex sets on one body, e.g. ``"left_hand"``.
  A sided base has a ``left_`` and a ``right_`` region; an unsided base is one region.
  ``"ground"`` is not a mesh region: it stands for the floor plane.

``SYNONYMS`` maps the finer or looser words people and models write (forearm, thigh, hip,
torso, floor, ...) to one part or to a tuple of alternative parts.

Nothing else in the project spells a region or part list: import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["left", "right"]
SIDES: tuple[Side, Side] = ("left", "right")

GROUND = "ground"


@dataclass(frozen=True)
class RegionBase:
    """What one vocabulary part stands for on a body."""

    name: str
    sided: bool
    # Bases whose union this one is ("waist" = front + back); empty for an elementary base.
    union_of: tuple[str, ...] = ()
    # A short description, shown in the prompt's vocabulary list and in the add-on's menus.
    description: str = ""


_BASES: tuple[RegionBase, ...] = (
    RegionBase("head", False, description="head and face"),
    RegionBase("neck", False, description="neck"),
    RegionBase("chest", False, description="front of the upper torso"),
    RegionBase("stomach", False, description="belly, front of the lower torso"),
    RegionBase("waist_front", False, description="front of the waist and hips"),
    RegionBase("waist_back", False, description="lower back and back of the hips"),
    RegionBase("waist", False, ("waist_front", "waist_back"), "waist all around"),
    RegionBase("back", False, description="upper back"),
    RegionBase("butt", False, description="buttocks"),
    RegionBase("shoulder_front", True, description="front of a shoulder"),
    RegionBase("shoulder_back", True, description="back of a shoulder"),
    RegionBase("shoulder", True, ("shoulder_front", "shoulder_back"), "a shoulder"),
    RegionBase("arm", True, description="upper arm, elbow and forearm"),
    RegionBase("hand", True, description="hand, palm and fingers"),
    RegionBase("leg", True, description="thigh, knee and lower leg"),
    RegionBase("foot", True, description="foot and toes"),
)

REGION_BASES: dict[str, RegionBase] = {base.name: base for base in _BASES}

# The words the prompts offer, mapped to their base. Order is the order shown to the model.
PART_TO_BASE: dict[str, str] = {
    "head": "head",
    "neck": "neck",
    "chest": "chest",
    "stomach": "stomach",
    "waist": "waist",
    "waist (front)": "waist_front",
    "waist (back)": "waist_back",
    "back": "back",
    "shoulder": "shoulder",
    "shoulder (front)": "shoulder_front",
    "shoulder (back)": "shoulder_back",
    "arm": "arm",
    "hand": "hand",
    "leg": "leg",
    "foot": "foot",
    "butt": "butt",
}

TWO_PERSON_PARTS: tuple[str, ...] = (
    "head",
    "neck",
    "chest",
    "stomach",
    "waist (front)",
    "waist (back)",
    "back",
    "shoulder (front)",
    "shoulder (back)",
    "arm",
    "hand",
    "leg",
    "foot",
    "butt",
)

ONE_PERSON_PARTS: tuple[str, ...] = (
    "head",
    "back",
    "shoulder",
    "arm",
    "hand",
    "leg",
    "foot",
    "stomach",
    "butt",
    GROUND,
)

# Every part word the parser accepts as a cell, including the ones only one prompt offers
# ("waist" alone, "shoulder" alone, "ground").
ALL_PARTS: tuple[str, ...] = tuple(PART_TO_BASE) + (GROUND,)

# Finer or looser words -> one part, or alternatives (the closest one satisfies the row).
# Keys are lower case, singular, without punctuation; the parser normalises before look-up.
SYNONYMS: dict[str, tuple[str, ...]] = {
    # head
    "face": ("head",),
    "forehead": ("head",),
    "cheek": ("head",),
    "chin": ("head",),
    "jaw": ("head",),
    "mouth": ("head",),
    "lip": ("head",),
    "nose": ("head",),
    "ear": ("head",),
    "eye": ("head",),
    "hair": ("head",),
    "temple": ("head",),
    "skull": ("head",),
    # neck
    "throat": ("neck",),
    "nape": ("neck",),
    # torso
    "breast": ("chest",),
    "pec": ("chest",),
    "pectoral": ("chest",),
    "sternum": ("chest",),
    "rib": ("chest", "stomach"),
    "ribcage": ("chest", "stomach"),
    "torso": ("chest", "stomach", "back"),
    "trunk": ("chest", "stomach", "back"),
    "body": ("chest", "stomach", "back"),
    "belly": ("stomach",),
    "abdomen": ("stomach",),
    "abs": ("stomach",),
    "tummy": ("stomach",),
    "midriff": ("stomach",),
    "navel": ("stomach",),
    "front waist": ("waist (front)",),
    "back waist": ("waist (back)",),
    "waist front": ("waist (front)",),
    "waist back": ("waist (back)",),
    "lower back": ("waist (back)",),
    "small of the back": ("waist (back)",),
    "upper back": ("back",),
    "spine": ("back",),
    "shoulder blade": ("back", "shoulder (back)"),
    "scapula": ("back", "shoulder (back)"),
    "side": ("waist",),
    "flank": ("waist",),
    "hip": ("waist", "butt"),
    "pelvis": ("waist",),
    "groin": ("waist (front)",),
    "buttock": ("butt",),
    "bottom": ("butt",),
    "glute": ("butt",),
    "rear": ("butt",),
    "seat": ("butt",),
    "behind": ("butt",),
    # shoulders
    "front shoulder": ("shoulder (front)",),
    "back shoulder": ("shoulder (back)",),
    "shoulder front": ("shoulder (front)",),
    "shoulder back": ("shoulder (back)",),
    "collarbone": ("shoulder (front)",),
    "clavicle": ("shoulder (front)",),
    "deltoid": ("shoulder",),
    # arms
    "upper arm": ("arm",),
    "forearm": ("arm",),
    "elbow": ("arm",),
    "bicep": ("arm",),
    "tricep": ("arm",),
    "armpit": ("arm", "shoulder"),
    # hands
    "palm": ("hand",),
    "finger": ("hand",),
    "fingertip": ("hand",),
    "thumb": ("hand",),
    "fist": ("hand",),
    "wrist": ("hand",),
    "knuckle": ("hand",),
    # legs
    "thigh": ("leg",),
    "knee": ("leg",),
    "shin": ("leg",),
    "calf": ("leg",),
    "lower leg": ("leg",),
    "upper leg": ("leg",),
    "lap": ("leg",),
    # feet
    "ankle": ("foot",),
    "heel": ("foot",),
    "toe": ("foot",),
    "sole": ("foot",),
    # ground
    "floor": (GROUND,),
    "ground plane": (GROUND,),
    "mat": (GROUND,),
}

# One-person rule: a limb never pairs with its own adjacent segment on the same side (they
# touch at the joint anyway, so the minimum over left/right would pick that pair and the
# constraint would do nothing). Pairs of bases, order-free.
ADJACENT_SAME_SIDE: frozenset[frozenset[str]] = frozenset(
    frozenset(pair)
    for pair in (
        ("hand", "arm"),
        ("foot", "leg"),
        ("arm", "shoulder"),
        ("arm", "shoulder_front"),
        ("arm", "shoulder_back"),
    )
)


def region_name(base: str, side: Side | None) -> str:
    """Concrete region name of ``base`` on ``side`` (``None`` for an unsided base)."""
    spec = REGION_BASES[base]
    if spec.sided:
        if side not in SIDES:
            raise ValueError(f"region base {base!r} is sided: give 'left' or 'right', not {side!r}")
        return f"{side}_{base}"
    if side is not None:
        raise ValueError(f"region base {base!r} has no sides, got side {side!r}")
    return base


def split_region(region: str) -> tuple[str, Side | None]:
    """Inverse of :func:`region_name`: ``"left_hand"`` -> ``("hand", "left")``."""
    for side in SIDES:
        prefix = f"{side}_"
        if region.startswith(prefix) and region[len(prefix):] in REGION_BASES:
            base = region[len(prefix):]
            if REGION_BASES[base].sided:
                return base, side
    if region in REGION_BASES and not REGION_BASES[region].sided:
        return region, None
    raise KeyError(f"unknown region {region!r}; known regions: {', '.join(MESH_REGIONS)}")


def _all_regions() -> tuple[str, ...]:
    names: list[str] = []
    for base in _BASES:
        if base.sided:
            names.extend(region_name(base.name, side) for side in SIDES)
        else:
            names.append(base.name)
    return tuple(names)


# Every concrete region a body model provides (composites included).
MESH_REGIONS: tuple[str, ...] = _all_regions()

# The regions a body model derives directly; composites are unions of these.
ELEMENTARY_REGIONS: tuple[str, ...] = tuple(
    r for r in MESH_REGIONS if not REGION_BASES[split_region(r)[0]].union_of
)


def composite_members(region: str) -> tuple[str, ...]:
    """Elementary regions a region is the union of (itself for an elementary region)."""
    base, side = split_region(region)
    members = REGION_BASES[base].union_of
    if not members:
        return (region,)
    return tuple(region_name(member, side) for member in members)


def mirror_region(region: str) -> str:
    """The same region on the other side; unsided regions mirror to themselves."""
    base, side = split_region(region)
    if side is None:
        return region
    return region_name(base, "right" if side == "left" else "left")


def are_adjacent_same_side(region_a: str, region_b: str) -> bool:
    """True for a limb and its own adjacent segment on the same side (e.g. left foot, left leg)."""
    base_a, side_a = split_region(region_a)
    base_b, side_b = split_region(region_b)
    return side_a is not None and side_a == side_b and frozenset((base_a, base_b)) in ADJACENT_SAME_SIDE
