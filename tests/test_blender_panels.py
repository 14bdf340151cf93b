"""Every panel, list and the preferences draw in every state (no subjects, one, two; with and
without contacts and results; a task running) and name only existing properties and
operators."""

from __future__ import annotations

import bpy
import pytest

from support import small_rig
from support.blender_helpers import enabled_addon  # noqa: F401
from support.layout_recorder import draw_panel

PANELS = ("PROSEPOSE_PT_subjects", "PROSEPOSE_PT_reference", "PROSEPOSE_PT_contacts", "PROSEPOSE_PT_refine", "PROSEPOSE_PT_export")


def _draw_all(state: str) -> list[tuple]:
    calls = []
    for name in PANELS:
        recorder = draw_panel(getattr(bpy.types, name))
        assert not recorder.errors, (state, name, recorder.errors)
        calls += recorder.calls
    return calls


@pytest.mark.parametrize("people", [0, 1, 2])
@pytest.mark.parametrize("with_contacts", [False, True])
def test_panels_draw_in_every_state(enabled_addon, tmp_path, people, with_contacts):
    from prosepose.prose_blender import runtime
    from prosepose.prose_blender.tasks import EngineTask
    from prosepose.prose_blender.settings import EngineSettings

    prose = bpy.context.scene.prose
    for index in range(people):
        small_rig.make_rig(tmp_path / f"rig{index}.npz")
        assert bpy.ops.prosepose.add_body(rig_file=str(tmp_path / f"rig{index}.npz"), name=f"P{index + 1}") == {"FINISHED"}
    assert (prose.person_2 is not None) == (people == 2)
    if with_contacts:
        lmm = prose.contacts.add()
        lmm.source, lmm.part_a, lmm.person_a, lmm.part_b, lmm.person_b, lmm.count, lmm.key = "LMM", "hand", 1, "shoulder (front)", 2, 12, "k"
        artist = prose.contacts.add()
        artist.source, artist.part_a, artist.person_a, artist.part_b, artist.person_b = "ARTIST", "upper", 1, "ground", 1
        result = prose.results.add()
        result.label, result.before, result.after = "P1 hand - P2 shoulder", 0.05, 0.001
        prose.result_summary = "Refined 1 frame(s)"
        prose.frame_mode = "RANGE"
        prose.body_kind = "smplx"
    calls = _draw_all(f"{people} people, contacts={with_contacts}")
    assert ("operator", "prosepose.refine") in calls and ("template_list", "PROSEPOSE_UL_contacts") in calls
    assert (("template_list", "PROSEPOSE_UL_results") in calls) == with_contacts
    assert (("prop", "frame_start") in calls) == with_contacts

    # While a task runs its panel shows progress.
    task = EngineTask(EngineSettings())
    task.title, task.progress, task.status_text = "Refine", 0.4, "Refine: stage 1"
    runtime.set_active_task(task)
    try:
        assert ("progress", "Refine: stage 1") in _draw_all("running")
    finally:
        runtime.clear_active_task(task)


def test_preferences_draw(enabled_addon):
    from prosepose.prose_blender.preferences import ProsePreferences

    prefs = bpy.context.preferences.addons["prosepose"].preferences
    recorder = draw_panel(ProsePreferences, prefs)
    assert not recorder.errors
    assert ("prop", "lmm_api_key") in recorder.calls and ("operator", "prosepose.create_engine_environment") in recorder.calls


def test_every_property_and_operator_has_a_tooltip(enabled_addon):
    from prosepose.operators import contacts, engine_setup, refine, subjects
    from prosepose.prose_blender import preferences, properties

    missing = []
    for module in (contacts, engine_setup, refine, subjects):
        for cls in module.classes:
            if not (cls.__doc__ or "").strip():
                missing.append(cls.__name__)
            module_name, _, op_name = cls.bl_idname.partition(".")
            for prop in getattr(getattr(bpy.ops, module_name), op_name).get_rna_type().properties:
                own = prop.identifier in getattr(cls, "__annotations__", {})
                if own and prop.identifier != "filter_glob" and not prop.description:
                    missing.append(f"{cls.__name__}.{prop.identifier}")
    for cls in properties.classes + preferences.classes:
        for prop in cls.bl_rna.properties:
            if prop.identifier not in {"rna_type", "name", "bl_idname"} and not prop.description:
                missing.append(f"{cls.__name__}.{prop.identifier}")
    assert not missing


def test_reference_panel_says_when_answers_are_replayed(enabled_addon, tmp_path):
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    recorder = draw_panel(bpy.types.PROSEPOSE_PT_reference)
    assert not recorder.errors and not [c for c in recorder.calls if c[0] == "label" and "replayed" in str(c[1])]
    prefs.lmm_replay_file = str(tmp_path / "answers.json")
    try:
        recorder = draw_panel(bpy.types.PROSEPOSE_PT_reference)
        assert not recorder.errors
        assert ("label", "Answers replayed from answers.json (Preferences)") in recorder.calls
    finally:
        prefs.lmm_replay_file = ""
