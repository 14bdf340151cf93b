"""Contacts: find them with the language model, edit the list, show the regions."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from ..prose_blender import region_display
from ..prose_blender.bodies import mesh_regions
from ..prose_blender.contacts import ContactsTask
from ..prose_blender.preferences import engine_settings
from ..prose_blender.settings import ProseError
from ..prose_blender.subjects import scene_subjects
from ..prose_blender.vocabulary import GROUND
from .task_operator import TaskOperatorMixin


def _people(scene) -> int:
    prose = scene.prose
    return int(prose.person_1 is not None) + int(prose.person_2 is not None)


class PROSEPOSE_OT_find_contacts(TaskOperatorMixin, bpy.types.Operator):
    """Ask the language model which body parts touch in the reference image (runs in the background; Esc cancels); fills the contact list"""

    bl_idname = "prosepose.find_contacts"
    bl_label = "Find contacts"
    bl_options = {"REGISTER", "UNDO"}

    ask_again: BoolProperty(name="Ask again", description="Ask the language model for new answers instead of reusing the ones kept for this image", default=False, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        prose = context.scene.prose
        return super().poll(context) and bool(prose.reference_image) and _people(context.scene) > 0

    def create_task(self, context):
        scene = context.scene
        return ContactsTask(engine_settings(context), scene, scene.prose.reference_image, _people(scene), self.ask_again)


def _region_items(self, context):
    names = []
    scene = context.scene if context else bpy.context.scene
    try:
        subjects = scene_subjects(scene)
    except ProseError:
        subjects = []
    for subject in subjects:
        mesh = subject.mesh
        if mesh is not None:
            names += [n for n in mesh_regions(mesh.data) if n not in names]
    names.append(GROUND)
    _region_items.cache = [(n, n.replace("_", " "), f"Region {n}") for n in names]
    return _region_items.cache


class PROSEPOSE_OT_add_contact(bpy.types.Operator):
    """Add a contact by hand: a region of one person touching a region of the other (or of the same person, or the ground)"""

    bl_idname = "prosepose.add_contact"
    bl_label = "Add contact"
    bl_options = {"REGISTER", "UNDO"}

    person_a: IntProperty(name="Person A", description="Person of the first region", min=1, max=2, default=1)
    region_a: EnumProperty(name="Region A", description="First region", items=_region_items)
    person_b: IntProperty(name="Person B", description="Person of the second region", min=1, max=2, default=2)
    region_b: EnumProperty(name="Region B", description="Second region (ground: the floor)", items=_region_items)
    weight: FloatProperty(name="Weight", description="Strength of this contact", min=0.0, soft_max=10.0, default=1.0)

    @classmethod
    def poll(cls, context):
        return context.scene.prose.person_1 is not None

    def invoke(self, context, event):
        if _people(context.scene) == 1:
            self.person_b = 1
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        people = _people(context.scene)
        if max(self.person_a, self.person_b) > people:
            self.report({"ERROR"}, f"Person {max(self.person_a, self.person_b)} is not set")
            return {"CANCELLED"}
        if self.region_a == GROUND:
            self.report({"ERROR"}, "Put the ground as Region B")
            return {"CANCELLED"}
        if (self.region_a, self.person_a) == (self.region_b, self.person_b):
            self.report({"ERROR"}, "A region cannot touch itself: pick two different regions")
            return {"CANCELLED"}
        prose = context.scene.prose
        item = prose.contacts.add()
        item.source = "ARTIST"
        item.person_a, item.part_a = self.person_a, self.region_a
        item.person_b = self.person_a if self.region_b == GROUND else self.person_b
        item.part_b = self.region_b
        item.weight = self.weight
        item.enabled = True
        prose.contacts_index = len(prose.contacts) - 1
        return {"FINISHED"}


class PROSEPOSE_OT_remove_contact(bpy.types.Operator):
    """Remove the selected contact from the list"""

    bl_idname = "prosepose.remove_contact"
    bl_label = "Remove contact"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        prose = context.scene.prose
        return 0 <= prose.contacts_index < len(prose.contacts)

    def execute(self, context):
        prose = context.scene.prose
        prose.contacts.remove(prose.contacts_index)
        prose.contacts_index = min(prose.contacts_index, len(prose.contacts) - 1)
        return {"FINISHED"}


class PROSEPOSE_OT_show_regions(bpy.types.Operator):
    """Colour the regions of the enabled contacts on each subject's mesh"""

    bl_idname = "prosepose.show_regions"
    bl_label = "Show regions"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return len(context.scene.prose.contacts) > 0 and context.scene.prose.person_1 is not None

    def execute(self, context):
        try:
            shown = region_display.show_regions(context.scene)
        except ProseError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Showing {len(shown)} region(s)" if shown else "No enabled contact names a region of the subjects")
        return {"FINISHED"}


class PROSEPOSE_OT_hide_regions(bpy.types.Operator):
    """Remove the region colours and restore the meshes as they were"""

    bl_idname = "prosepose.hide_regions"
    bl_label = "Hide regions"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return region_display.regions_shown(context.scene)

    def execute(self, context):
        region_display.hide_regions(context.scene)
        return {"FINISHED"}


classes = (
    PROSEPOSE_OT_find_contacts,
    PROSEPOSE_OT_add_contact,
    PROSEPOSE_OT_remove_contact,
    PROSEPOSE_OT_show_regions,
    PROSEPOSE_OT_hide_regions,
)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
