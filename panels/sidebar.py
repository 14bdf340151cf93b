"""The "ProsePose" tab of the 3D Viewport sidebar. Panels and lists only draw."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..prose_blender import runtime, smplx_addon
from ..prose_blender.preferences import preferences
from ..prose_blender.contacts import contact_label


class ProsePanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ProsePose"


def _draw_task(layout, title: str) -> None:
    task = runtime.active_task()
    if task is not None and task.title == title:
        layout.progress(factor=task.progress, type="BAR", text=task.status_text)
        layout.label(text="Esc cancels", icon="CANCEL")


class PROSEPOSE_UL_contacts(bpy.types.UIList):
    """Contacts: enabled, the pair, how many samples named it, weight"""

    bl_idname = "PROSEPOSE_UL_contacts"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        text = contact_label(item.part_a, item.person_a, item.part_b, item.person_b)
        row.label(text=text, icon="LIGHT_HEMI" if item.source == "LMM" else "GREASEPENCIL")
        if item.source == "LMM":
            row.label(text=f"{item.count}")
        else:
            row.prop(item, "weight", text="")


def result_text(item) -> str:
    """A result row's distances: "12.3 -> 0.4 cm" for one frame, with the nearest regions
    where a part stands for several ("by left hand - right hand"); for a range the worst
    frame and how many frames are within 1 cm."""
    if not item.measured:
        return "not measured"
    text = f"{item.before * 100:.1f} -> {item.after * 100:.1f} cm"
    if item.nearest:
        text += f" by {item.nearest}"
    if item.frame_count > 1:
        text += f" (worst: frame {item.frame}), {item.within}/{item.frame_count} frames within 1 cm"
    return text


class PROSEPOSE_UL_results(bpy.types.UIList):
    """Distance of each contact before and after the last refinement"""

    bl_idname = "PROSEPOSE_UL_results"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        row = layout.row()
        row.label(text=item.label, icon="LIGHT_HEMI" if item.source == "lmm" else "GREASEPENCIL")
        row.label(text=result_text(item))


class PROSEPOSE_UL_result_details(bpy.types.UIList):
    """The engine's terms per refined frame"""

    bl_idname = "PROSEPOSE_UL_result_details"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        row = layout.row()
        row.label(text=f"{item.frame}: {item.label}")
        row.label(text=f"{item.before * 100:.1f} -> {item.after * 100:.1f} cm")


class PROSEPOSE_PT_subjects(ProsePanel, bpy.types.Panel):
    bl_label = "Subjects"
    bl_idname = "PROSEPOSE_PT_subjects"

    def draw(self, context):
        layout = self.layout
        prose = context.scene.prose
        row = layout.row(align=True)
        row.prop(prose, "body_kind", text="")
        if prose.body_kind == "smplx":
            row.prop(prose, "smplx_gender", text="")
        layout.operator("prosepose.add_body", icon="OUTLINER_OB_ARMATURE")
        _draw_task(layout, "Add body")
        if smplx_addon.needs_adoption(context.active_object):
            layout.operator("prosepose.use_smplx_addon_body", icon="ARMATURE_DATA")
            _draw_task(layout, "Use SMPL-X add-on body")
        for index in (1, 2):
            row = layout.row(align=True)
            row.prop(prose, f"person_{index}")
            sub = row.row()
            sub.enabled = getattr(prose, f"person_{index}") is not None
            sub.prop(prose, f"move_person_{index}", text="", icon="UNLOCKED")
        layout.operator("prosepose.import_animation", icon="IMPORT")


class PROSEPOSE_PT_reference(ProsePanel, bpy.types.Panel):
    bl_label = "Reference"
    bl_idname = "PROSEPOSE_PT_reference"

    def draw(self, context):
        layout = self.layout
        prose = context.scene.prose
        layout.prop(prose, "reference_image", text="")
        row = layout.row(align=True)
        row.operator("prosepose.find_contacts", icon="VIEWZOOM")
        row.operator("prosepose.find_contacts", icon="FILE_REFRESH", text="Ask again").ask_again = True
        _draw_task(layout, "Find contacts")
        prefs = preferences(context)
        if prefs is not None and prefs.lmm_replay_file:
            # Say so: a replay file set in the preferences answers instead of the model.
            layout.label(text=f"Answers replayed from {Path(prefs.lmm_replay_file).name} (Preferences)", icon="FILE_TEXT")
        if prose.lmm_sample_count:
            layout.label(text=f"{prose.lmm_sample_count} answers, {prose.lmm_empty_count} empty")
        row = layout.row(align=True)
        row.prop(prose, "backoff_mode")
        if prose.backoff_mode == "COUNT":
            row.prop(prose, "backoff_count", text="")


class PROSEPOSE_PT_contacts(ProsePanel, bpy.types.Panel):
    bl_label = "Contacts"
    bl_idname = "PROSEPOSE_PT_contacts"

    def draw(self, context):
        layout = self.layout
        prose = context.scene.prose
        row = layout.row()
        row.template_list("PROSEPOSE_UL_contacts", "", prose, "contacts", prose, "contacts_index", rows=4)
        column = row.column(align=True)
        column.operator("prosepose.add_contact", icon="ADD", text="")
        column.operator("prosepose.remove_contact", icon="REMOVE", text="")
        if 0 <= prose.contacts_index < len(prose.contacts):
            contact = prose.contacts[prose.contacts_index]
            box = layout.box()
            box.prop(contact, "enabled")
            if contact.source == "ARTIST":
                box.prop(contact, "weight")
            else:
                box.label(text=f"Named by {contact.count} answer(s)")
            box.prop(contact, "use_interval")
            if contact.use_interval:
                row = box.row(align=True)
                row.prop(contact, "interval_start")
                row.prop(contact, "interval_end")
                row = box.row(align=True)
                row.prop(contact, "ease_in")
                row.prop(contact, "ease_out")
                if contact.source == "LMM":
                    box.label(text="Language-model contacts share the first one's interval")
        row = layout.row(align=True)
        row.operator("prosepose.show_regions", icon="HIDE_OFF")
        row.operator("prosepose.hide_regions", icon="HIDE_ON")


class PROSEPOSE_PT_refine(ProsePanel, bpy.types.Panel):
    bl_label = "Refine"
    bl_idname = "PROSEPOSE_PT_refine"

    def draw(self, context):
        layout = self.layout
        prose = context.scene.prose
        layout.prop(prose, "frame_mode")
        if prose.frame_mode == "RANGE":
            row = layout.row(align=True)
            row.prop(prose, "frame_start")
            row.prop(prose, "frame_end")
        layout.prop(prose, "contact_strength")
        layout.prop(prose, "stay_close_strength")
        layout.prop(prose, "iterations")
        row = layout.row(align=True)
        row.prop(prose, "floor_mode")
        if prose.floor_mode == "HEIGHT":
            row.prop(prose, "floor_height", text="")
        layout.prop(prose, "ease_frames")
        layout.operator("prosepose.refine", icon="MOD_ARMATURE")
        _draw_task(layout, "Refine")
        if prose.result_summary:
            layout.label(text=prose.result_summary)
        if len(prose.results):
            layout.template_list("PROSEPOSE_UL_results", "", prose, "results", prose, "results_index", rows=3)
        if len(prose.result_details):
            layout.prop(prose, "show_result_details")
            if prose.show_result_details:
                layout.template_list("PROSEPOSE_UL_result_details", "", prose, "result_details", prose, "result_details_index", rows=4)
        if bpy.ops.prosepose.remove_refinement.poll():
            row = layout.row(align=True)
            row.prop(prose, "refinement_influence", slider=True)
            row.operator("prosepose.remove_refinement", icon="TRASH", text="")


class PROSEPOSE_PT_export(ProsePanel, bpy.types.Panel):
    bl_label = "Export"
    bl_idname = "PROSEPOSE_PT_export"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.operator("prosepose.export_smplx", icon="EXPORT")
        layout.operator("prosepose.export_scene", icon="EXPORT")


classes = (
    PROSEPOSE_UL_contacts,
    PROSEPOSE_UL_results,
    PROSEPOSE_UL_result_details,
    PROSEPOSE_PT_subjects,
    PROSEPOSE_PT_reference,
    PROSEPOSE_PT_contacts,
    PROSEPOSE_PT_refine,
    PROSEPOSE_PT_export,
)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
