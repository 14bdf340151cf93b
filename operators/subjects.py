"""Subjects: add a body, import an AMASS / SMPL-X animation onto it."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..prose_blender import amass
from ..prose_blender.body_task import AddBodyTask, AdoptSmplxAddonTask
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


class PROSEPOSE_OT_use_smplx_addon_body(TaskOperatorMixin, bpy.types.Operator):
    """Use the selected body of the official SMPL-X add-on (its armature or mesh) as Person 1 or Person 2, read and written in that add-on's convention with your SMPL-X model file"""

    bl_idname = "prosepose.use_smplx_addon_body"
    bl_label = "Use SMPL-X add-on body"
    bl_options = {"REGISTER", "UNDO"}

    armature_name: StringProperty(name="Armature", description="The add-on's armature (empty: the active object's)", options={"SKIP_SAVE"})
    person: IntProperty(name="Person", description="1 or 2 (0: Person 1 unless it is set, then Person 2)", min=0, max=2, default=0, options={"SKIP_SAVE"})
    gender: EnumProperty(name="Gender", description="SMPL-X model file to use when the body does not say", items=SMPLX_GENDERS, default="NEUTRAL")
    rig_file: StringProperty(name="Rig file", description="Use this SMPL-X rig description (.npz) instead of asking the engine", subtype="FILE_PATH", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return super().poll(context) and context.mode == "OBJECT"

    def invoke(self, context, event):
        self.gender = context.scene.prose.smplx_gender
        return super().invoke(context, event)

    def create_task(self, context):
        from ..prose_blender.smplx_addon import addon_armature_of

        armature = bpy.data.objects.get(self.armature_name) if self.armature_name else addon_armature_of(context.active_object)
        return AdoptSmplxAddonTask(engine_settings(context), armature, self.gender, self.rig_file, self.person)


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


classes = (PROSEPOSE_OT_add_body, PROSEPOSE_OT_use_smplx_addon_body, PROSEPOSE_OT_import_animation)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
