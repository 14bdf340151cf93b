"""Contact intervals on the timeline (issue 20): each enabled contact with an interval is
drawn as timeline markers at its start and end, so the artist sees where each contact holds;
and the intervals as the job's (schemas/job.md, "Clips")."""

from __future__ import annotations

import bpy

from .contacts import contact_label

# Markers this module owns start with this; others' markers are never touched.
MARKER_PREFIX = "ProsePose: "


def interval_of(contact) -> dict | None:
    """The job's interval of a contact row, or None when it holds on every frame."""
    if not contact.use_interval:
        return None
    start, end = int(contact.interval_start), int(contact.interval_end)
    return {
        "start": min(start, end),
        "end": max(start, end),
        "ease_in": int(contact.ease_in),
        "ease_out": int(contact.ease_out),
    }


def sync_interval_markers(scene: bpy.types.Scene) -> None:
    """Replace this add-on's timeline markers by the current intervals' starts and ends."""
    markers = scene.timeline_markers
    for marker in [m for m in markers if m.name.startswith(MARKER_PREFIX)]:
        markers.remove(marker)
    for contact in scene.prose.contacts:
        interval = interval_of(contact) if contact.enabled else None
        if interval is None:
            continue
        label = contact_label(contact.part_a, contact.person_a, contact.part_b, contact.person_b)
        markers.new(f"{MARKER_PREFIX}{label} start", frame=interval["start"])
        markers.new(f"{MARKER_PREFIX}{label} end", frame=interval["end"])


def interval_changed(_self, context) -> None:
    """Property update callback: redraw the markers."""
    if context is not None and context.scene is not None:
        sync_interval_markers(context.scene)
