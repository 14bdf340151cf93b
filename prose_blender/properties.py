"""Scene state: one PropertyGroup on the scene, ``Scene.prose``."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .addon import PROP_BODY
from .intervals import interval_changed

BODY_KINDS = (
    ("anny", "Anny", "Built-in Anny body (no licence file needed)"),
    ("smplx", "SMPL-X", "SMPL-X body from your own licensed model file (Preferences)"),
)

SMPLX_GENDERS = (
    ("NEUTRAL", "Neutral", "SMPLX_NEUTRAL model file"),
    ("MALE", "Male", "SMPLX_MALE model file"),
    ("FEMALE", "Female", "SMPLX_FEMALE model file"),
)


def _is_body_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE" and obj.get(PROP_BODY) is not None


class ProseContact(bpy.types.PropertyGroup):
    """One contact: a region or part of one person touching one of another (or the same)."""

    part_a: StringProperty(name="Part A", description="Body part or region of the first person of the pair")
    person_a: IntProperty(name="Person A", description="Which subject the first part belongs to (1 or 2)", min=1, max=2, default=1)
    part_b: StringProperty(name="Part B", description="Body part or region of the second person of the pair, or 'ground'")
    person_b: IntProperty(name="Person B", description="Which subject the second part belongs to (1 or 2)", min=1, max=2, default=2)
    count: IntProperty(name="Samples", description="How many language-model samples named this contact", min=0)
    enabled: BoolProperty(name="Enabled", description="Use this contact in Refine and Show regions", default=True, update=interval_changed)
    weight: FloatProperty(name="Weight", description="Strength of this contact (artist contacts only; language-model contacts use Contact strength)", min=0.0, soft_max=10.0, default=1.0)
    source: EnumProperty(
        name="Source",
        description="Where this contact comes from",
        items=(("LMM", "Language model", "Found by Find contacts"), ("ARTIST", "Artist", "Added by hand")),
        default="ARTIST",
    )
    key: StringProperty(name="Key", description="Stable identifier of a language-model contact (from the contacts file)")
    # Issue 20: the frames over which the contact holds when a range is refined.
    use_interval: BoolProperty(name="Interval", description="Hold this contact only over a frame interval when a range is refined (off: on every refined frame)", default=False, update=interval_changed)
    interval_start: IntProperty(name="From", description="First frame on which the contact holds", default=1, update=interval_changed)
    interval_end: IntProperty(name="To", description="Last frame on which the contact holds", default=1, update=interval_changed)
    ease_in: IntProperty(name="Ease in", description="Frames before the interval over which the correction grows from nothing", min=0, soft_max=48, default=0, update=interval_changed)
    ease_out: IntProperty(name="Ease out", description="Frames after the interval over which the correction fades out", min=0, soft_max=48, default=0, update=interval_changed)


class ProseConstraintResult(bpy.types.PropertyGroup):
    """Distance of one contact before and after the last refinement (at its worst frame for a
    frame range), or one of the engine's terms at one frame (details)."""

    label: StringProperty(name="Contact", description="The contact, as in the contact list (details: the engine's term)")
    source: StringProperty(name="Source", description="Language model or artist")
    before: FloatProperty(name="Before", description="Distance before refinement", unit="LENGTH")
    after: FloatProperty(name="After", description="Distance after refinement", unit="LENGTH")
    frame: IntProperty(name="Frame", description="The frame (for a range: the frame where the contact is farthest after refinement)")
    frame_count: IntProperty(name="Frames", description="How many frames were refined", min=0)
    within: IntProperty(name="Within 1 cm", description="How many refined frames have this contact within 1 cm", min=0)
    measured: BoolProperty(name="Measured", description="False when a part names no region of its body", default=True)
    nearest: StringProperty(
        name="Nearest regions",
        description="Which of the regions the contact's parts stand for are nearest after refinement "
        "(a part without a side is met by either side: this says which)",
    )


def _influence_changed(self, context):
    from .layers import set_influence

    set_influence(context.scene, self.refinement_influence)


class ProseSceneSettings(bpy.types.PropertyGroup):
    """Everything ProsePose keeps per scene. No secret is ever stored here."""

    person_1: PointerProperty(name="Person 1", description="Armature of the first person (made by Add body)", type=bpy.types.Object, poll=_is_body_armature)
    person_2: PointerProperty(name="Person 2", description="Armature of the second person (leave empty for one person)", type=bpy.types.Object, poll=_is_body_armature)
    move_person_1: BoolProperty(name="Move", description="Let Refine change the first person's pose", default=True)
    move_person_2: BoolProperty(name="Move", description="Let Refine change the second person's pose", default=True)

    body_kind: EnumProperty(name="Body", description="Body model for Add body", items=BODY_KINDS, default="anny")
    smplx_gender: EnumProperty(name="Gender", description="Which SMPL-X model file of the model folder to use", items=SMPLX_GENDERS, default="NEUTRAL")

    reference_image: StringProperty(name="Reference image", description="Photo, video frame or render showing the contact to reproduce", subtype="FILE_PATH")

    contacts: CollectionProperty(type=ProseContact, name="Contacts", description="Contacts used by Refine")
    contacts_index: IntProperty(name="Active contact", description="Selected contact in the list", default=0)
    lmm_samples_json: StringProperty(name="Language-model samples", description="Parsed samples of the last Find contacts (copied into refine jobs)", default="[]", options={"HIDDEN"})
    lmm_sample_count: IntProperty(name="Samples", description="Number of language-model samples of the last Find contacts", min=0)
    lmm_empty_count: IntProperty(name="Empty samples", description="Samples that named no contact", min=0)
    backoff_mode: EnumProperty(
        name="Back off",
        description="When so many answers name no contact that the image shows none reliably, Refine uses no language-model contact (artist contacts still count)",
        items=(
            ("HALF", "Half empty", "Back off when at least half of the answers are empty (the method's default)"),
            ("COUNT", "At a count", "Back off when at least 'Empty answers' answers are empty"),
            ("NEVER", "Never", "Always use the language-model contacts, however many answers are empty"),
        ),
        default="HALF",
    )
    backoff_count: IntProperty(name="Empty answers", description="Back off when this many answers or more are empty", min=1, default=10)

    frame_mode: EnumProperty(
        name="Frames",
        description="Which frames Refine works on",
        items=(("CURRENT", "Current frame", "Refine the pose at the current frame"), ("RANGE", "Frame range", "Refine every frame of a range")),
        default="CURRENT",
    )
    frame_start: IntProperty(name="Start", description="First frame to refine", default=1)
    frame_end: IntProperty(name="End", description="Last frame to refine", default=1)
    contact_strength: FloatProperty(name="Contact strength", description="Multiplier of the pull of the contacts", min=0.0, soft_max=10.0, default=1.0)
    stay_close_strength: FloatProperty(name="Stay-close strength", description="Multiplier of how strongly the pose stays near the original", min=0.0, soft_max=10.0, default=1.0)
    iterations: IntProperty(name="Iterations", description="Most optimizer iterations per stage", min=1, max=5000, default=1000)
    floor_mode: EnumProperty(
        name="Floor",
        description="Height of the floor that ground contacts reach for",
        items=(
            ("HEIGHT", "Height", "The floor at the height given (world Z; Add body stands new bodies on z = 0, the default)"),
            ("AUTO", "Where they stand", "The lowest foot point of the bodies at the first refined frame"),
        ),
        default="HEIGHT",
    )
    floor_height: FloatProperty(name="Floor height", description="World Z of the floor for ground contacts (Add body stands new bodies on z = 0)", unit="LENGTH", default=0.0)

    ease_frames: IntProperty(name="Ease frames", description="Frames on each side of the refined frames over which the correction fades into the untouched animation (0: only the refined frames change)", min=0, soft_max=24, default=3)
    refinement_influence: FloatProperty(
        name="Influence",
        description="How much of the refinement is shown (0: the original animation, 1: the refinement); compare them with this slider",
        min=0.0, max=1.0, default=1.0, subtype="FACTOR", update=_influence_changed,
    )

    results: CollectionProperty(type=ProseConstraintResult, name="Results", description="Per-contact distances of the last refinement")
    results_index: IntProperty(name="Active result", description="Selected result row", default=0)
    result_details: CollectionProperty(type=ProseConstraintResult, name="Result details", description="The engine's terms per refined frame")
    result_details_index: IntProperty(name="Active detail", description="Selected detail row", default=0)
    show_result_details: BoolProperty(name="Details", description="Show the engine's terms per refined frame", default=False)
    result_summary: StringProperty(name="Summary", description="Outcome of the last refinement")
    refined_action: PointerProperty(name="Refined action", description="Action written by the last refinement", type=bpy.types.Action)


classes = (ProseContact, ProseConstraintResult, ProseSceneSettings)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.prose = PointerProperty(type=ProseSceneSettings, name="ProsePose", description="ProsePose scene settings")


def unregister():
    del bpy.types.Scene.prose
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
