"""Subjects: add a body, import an AMASS / SMPL-X animation onto it."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..prose_blender import amass
from ..prose_blender.body_task import AddBodyTask
from ..prose_blender.preferences import engine_settings
from ..prose_blender.properties import BODY_KINDS, SMPLX_GENDERS
from ..prose_blender.settings import ProseError
from .task_operator import TaskOperatorMixin


class PROSEPOSE_OT_add_body(TaskOperatorMixin, bpy.types.Operator):
    """Add a body (armature, skinned mesh, vertex groups) built from the engine's rig description; it becomes Person 1, or Person 2 if Person 1 is set"""

    bl_idname = "prosepose.add_body"
    bl_label = "Add body"
    bl_options = {"REGISTER", "UNDO"}

    kind: EnumProperty(name="Body", description="Body model", items=BODY_KINDS, default="anny")
    gender: EnumProperty(name="Gender", description="SMPL-X model file to use", items=SMPLX_GENDERS, default="NEUTRAL")
    rig_file: StringProperty(name="Rig file", description="Use this rig description (.npz) instead of asking the engine", subtype="FILE_PATH", options={"SKIP_SAVE"})
    name: StringProperty(name="Name", description="Name of the new armature (empty: the body model's name)", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return super().poll(context) and context.mode == "OBJECT"

    def invoke(self, context, event):
        self.kind = context.scene.prose.body_kind
        self.gender = context.scene.prose.smplx_gender
        return super().invoke(context, event)

    def create_task(self, context):
        return AddBodyTask(engine_settings(context), self.kind, self.gender, self.rig_file, self.name)


class PROSEPOSE_OT_import_animation(bpy.types.Operator, ImportHelper):
    """Import an AMASS / SMPL-X motion (.npz with poses, trans, betas, gender, frame rate) as the active action of the selected subject"""

    bl_idname = "prosepose.import_animation"
    bl_label = "Import animation"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    person: IntProperty(name="Person", description="Which subject receives the animation", min=1, max=2, default=1)
    start_frame: IntProperty(name="Start frame", description="Frame of the clip's first pose", default=1)
    frame_rate: EnumProperty(
        name="Frame rate",
        description="What to do when the clip's frame rate differs from the scene's",
        items=(
            ("RESAMPLE", "Resample to the scene", "Interpolate the clip at the scene's frame rate (one key per scene frame)"),
            ("SCENE", "Set the scene's rate", "Set the scene's frame rate to the clip's (one key per clip frame)"),
        ),
        default="RESAMPLE",
    )

    @classmethod
    def poll(cls, context):
        return context.scene.prose.person_1 is not None

    def execute(self, context):
        prose = context.scene.prose
        armature = prose.person_1 if self.person == 1 else prose.person_2
        if armature is None:
            self.report({"ERROR"}, f"Person {self.person} is not set: pick it in the Subjects panel")
            return {"CANCELLED"}
        try:
            clip = amass.load_clip(self.filepath)
            action, warnings = amass.import_clip(context.scene, armature, clip, self.start_frame, self.frame_rate)
        except ProseError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for warning in warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Imported the clip into {action.name}")
        return {"FINISHED"}


classes = (PROSEPOSE_OT_add_body, PROSEPOSE_OT_import_animation)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
