"""Refine the pose against the contacts, export the result."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..prose_blender import amass, layers
from ..prose_blender.preferences import engine_settings
from ..prose_blender.refine import RefineRequest, RefineTask
from ..prose_blender.settings import ProseError
from .task_operator import TaskOperatorMixin


def refine_request(scene) -> RefineRequest:
    prose = scene.prose
    if prose.frame_mode == "RANGE":
        if prose.frame_end < prose.frame_start:
            raise ProseError("The frame range ends before it starts")
        frames = tuple(range(prose.frame_start, prose.frame_end + 1))
    else:
        frames = (scene.frame_current,)
    return RefineRequest(frames, prose.contact_strength, prose.stay_close_strength, prose.iterations, prose.ease_frames)


class PROSEPOSE_OT_refine(TaskOperatorMixin, bpy.types.Operator):
    """Pull the enabled contacts' regions together while staying close to the current pose (runs the engine in the background; Esc cancels). The result goes into a new action on its own NLA track"""

    bl_idname = "prosepose.refine"
    bl_label = "Refine"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        prose = context.scene.prose
        return super().poll(context) and prose.person_1 is not None and any(c.enabled for c in prose.contacts)

    def create_task(self, context):
        return RefineTask(engine_settings(context), context.scene, refine_request(context.scene))


class PROSEPOSE_OT_remove_refinement(bpy.types.Operator):
    """Remove the refinement of every subject: its track, its actions and whatever the first refinement added, so the original animation plays exactly as it was"""

    bl_idname = "prosepose.remove_refinement"
    bl_label = "Remove refinement"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return any(layers.refinement_track(o) is not None for o in context.scene.objects if o.type == "ARMATURE")

    def execute(self, context):
        scene = context.scene
        removed = [o.name for o in scene.objects if o.type == "ARMATURE" and layers.remove_refinement(scene, o)]
        if not removed:
            self.report({"WARNING"}, "No refinement to remove")
            return {"CANCELLED"}
        prose = scene.prose
        prose.results.clear()
        prose.result_details.clear()
        prose.result_summary = ""
        self.report({"INFO"}, f"Removed the refinement of {', '.join(removed)}")
        return {"FINISHED"}


class PROSEPOSE_OT_export_smplx(bpy.types.Operator, ExportHelper):
    """Export a subject's pose (current frame or frame range) as AMASS-style SMPL-X parameters (.npz), with a JSON of the contacts used"""

    bl_idname = "prosepose.export_smplx"
    bl_label = "Export SMPL-X parameters"
    bl_options = {"REGISTER"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    person: IntProperty(name="Person", description="Which subject to export", min=1, max=2, default=1)
    write_contacts: BoolProperty(name="Contacts JSON", description="Also write the enabled contacts next to the file (.contacts.json)", default=True)
    anny_format: EnumProperty(
        name="Anny body as",
        description="What an Anny subject's file holds (an SMPL-X subject always gives an AMASS-style SMPL-X file)",
        items=(
            ("ANNY", "Anny's own joints", "Anny's joint names and rotations; no AMASS names"),
            ("SMPLX", "SMPL-X (inverse retarget)", "An AMASS-style SMPL-X file through the inverse retarget; the bone-direction error is reported"),
        ),
        default="ANNY",
    )

    @classmethod
    def poll(cls, context):
        return context.scene.prose.person_1 is not None

    def execute(self, context):
        scene = context.scene
        armature = scene.prose.person_1 if self.person == 1 else scene.prose.person_2
        if armature is None:
            self.report({"ERROR"}, f"Person {self.person} is not set")
            return {"CANCELLED"}
        path = Path(self.filepath)
        contacts = path.with_suffix(".contacts.json") if self.write_contacts else None
        try:
            frames = list(refine_request(scene).frames)
            messages = amass.export_clip(scene, armature, frames, path, contacts, self.anny_format == "SMPLX", engine_settings(context))
        except (ProseError, OSError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for message in messages:
            self.report({"INFO"}, message)
        self.report({"INFO"}, f"Wrote {path}")
        return {"FINISHED"}


class PROSEPOSE_OT_export_scene(bpy.types.Operator, ExportHelper):
    """Export the subjects (armatures and meshes) with the refined animation baked, as glTF or FBX, through Blender's own exporters: every frame of the scene's range as the scene shows it (the refinement layer included)"""

    bl_idname = "prosepose.export_scene"
    bl_label = "Export glTF / FBX"
    bl_options = {"REGISTER"}

    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb;*.gltf;*.fbx", options={"HIDDEN"})
    file_format: EnumProperty(
        name="Format",
        description="glTF binary or FBX; both hold the animation as the scene shows it at every frame",
        items=(("GLB", "glTF binary (.glb)", "glTF 2.0, the scene's animation sampled at every frame"),
               ("FBX", "FBX (.fbx)", "FBX with the scene's animation baked at every frame")),
        default="GLB",
    )
    subjects_only: BoolProperty(name="Subjects only", description="Export only Person 1 and Person 2 (armatures and their meshes)", default=True)

    def check(self, context):
        wanted = ".fbx" if self.file_format == "FBX" else ".glb"
        path = Path(self.filepath)
        if self.filepath and path.suffix.lower() != wanted:
            self.filepath = str(path.with_suffix(wanted))
            return True
        return False

    def execute(self, context):
        self.check(context)
        scene = context.scene
        subjects = [a for a in (scene.prose.person_1, scene.prose.person_2) if a is not None]
        if self.subjects_only and not subjects:
            self.report({"ERROR"}, "No subject to export: set Person 1 in the Subjects panel")
            return {"CANCELLED"}
        objects = subjects + [o for o in scene.objects if o.parent in subjects and o.type == "MESH"]
        selected = [o for o in context.view_layer.objects if o.select_get()]
        active = context.view_layer.objects.active
        try:
            if self.subjects_only:
                for obj in selected:
                    obj.select_set(False)
                for obj in objects:
                    obj.select_set(True)
            if self.file_format == "FBX":
                # The scene's animation (NLA layers evaluated), one key per frame, unsimplified.
                result = bpy.ops.export_scene.fbx(
                    filepath=self.filepath, use_selection=self.subjects_only, object_types={"ARMATURE", "MESH"},
                    add_leaf_bones=False, bake_anim=True, bake_anim_use_all_actions=False,
                    bake_anim_use_nla_strips=False, bake_anim_step=1.0, bake_anim_simplify_factor=0.0,
                    bake_anim_force_startend_keying=True)
            else:
                # 'SCENE' samples what the scene shows; the default ('ACTIONS') would export the
                # original action without the refinement layer.
                result = bpy.ops.export_scene.gltf(
                    filepath=self.filepath, export_format="GLB", use_selection=self.subjects_only,
                    export_animations=True, export_animation_mode="SCENE", export_force_sampling=True,
                    export_frame_step=1)
        except (RuntimeError, TypeError) as error:
            self.report({"ERROR"}, f"Blender's exporter failed: {error}")
            return {"CANCELLED"}
        finally:
            if self.subjects_only:
                for obj in objects:
                    obj.select_set(False)
                for obj in selected:
                    obj.select_set(True)
                context.view_layer.objects.active = active
        if result != {"FINISHED"}:
            self.report({"ERROR"}, f"Blender's exporter did not finish ({', '.join(result)})")
            return {"CANCELLED"}
        note = " (Blender's FBX importer: set Animation Offset to 0 to keep the frame numbers)" if self.file_format == "FBX" else ""
        self.report({"INFO"}, f"Wrote {self.filepath}, frames {scene.frame_start}-{scene.frame_end}{note}")
        return {"FINISHED"}


classes = (PROSEPOSE_OT_refine, PROSEPOSE_OT_remove_refinement, PROSEPOSE_OT_export_smplx, PROSEPOSE_OT_export_scene)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
