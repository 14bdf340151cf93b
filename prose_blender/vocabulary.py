"""From a contact's part label to the regions of a mesh. The vocabulary itself is never
spelled here: region names come from the rig stored on each mesh, part labels from the
engine's contacts file; this only applies the engine's naming rules (a sided region is
``left_<base>`` / ``right_<base>``, a union base such as ``waist`` covers ``waist_*``, a label
writes ``_front`` as `` (front)`` and may list alternatives joined by `` or ``)."""

from __future__ import annotations

from collections.abc import Iterable

# The floor plane: a contact target that is not a mesh region (engine job format).
GROUND = "ground"
SIDES = ("left", "right")


def _label_to_base(text: str) -> tuple[str, str | None]:
    words = text.strip().lower()
    side = None
    for prefix in SIDES:
        if words.startswith(prefix + " "):
            side, words = prefix, words[len(prefix) + 1:]
    if words.startswith("both "):
        words = words[5:]
        words = "foot" if words == "feet" else words.removesuffix("s")
    base = words.replace(" (front)", "_front").replace(" (back)", "_back").replace(" ", "_")
    return base, side


def _split_side(region: str) -> tuple[str | None, str]:
    for side in SIDES:
        if region.startswith(side + "_"):
            return side, region[len(side) + 1:]
    return None, region


def regions_for_part(label: str, available: Iterable[str]) -> list[str]:
    """Regions of ``available`` that a part label ("hand", "back or waist (back)",
    "left foot", or a region name such as "left_hand") stands for."""
    available = list(available)
    if label in available:
        return [label]
    found: list[str] = []
    for alternative in label.split(" or "):
        base, side = _label_to_base(alternative)
        for region in available:
            region_side, region_base = _split_side(region)
            if (region_base == base or region_base.startswith(base + "_")) and side in (None, region_side):
                if region not in found:
                    found.append(region)
    return found
