"""Issue 16, items 4-8 and 10: readable results, settings that take effect, Check engine that
names what is missing, an empty answer that keeps the list, clips at another frame rate, and
undo after Refine."""

from __future__ import annotations

import json
import stat
import sys

import bpy
import numpy as np
import pytest
from mathutils import Quaternion

from conftest import REPO_ROOT
from support import small_rig
from support.blender_helpers import action_fcurves, enabled_addon, scene_digest  # noqa: F401
from support.layout_recorder import draw_panel

ENGINE_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")


def _standin(tmp_path, mode="echo"):
    script = tmp_path / f"standin-{mode}"
    script.write_text(f"#!/bin/sh\nPROSEPOSE_STANDIN={mode} exec {sys.executable} {REPO_ROOT / 'tests' / 'support' / 'standin_engine.py'} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _prefs():
    return bpy.context.preferences.addons["prosepose"].preferences


def _pair(tmp_path):
    for index in (1, 2):
        rig = tmp_path / f"rig{index}.npz"
        small_rig.make_rig(rig)
        assert bpy.ops.prosepose.add_body(rig_file=str(rig), name=f"P{index}") == {"FINISHED"}
    arm = bpy.data.objects["P1"].pose.bones["arm"]
    for frame, angle in ((1, 0.0), (30, 1.2)):
        arm.rotation_quaternion = Quaternion((0, 0, 1), angle)
        arm.keyframe_insert("rotation_quaternion", frame=frame)
    prose = bpy.context.scene.prose
    for source, a, b in (("ARTIST", "upper", "upper"), ("LMM", "lower", "upper")):
        contact = prose.contacts.add()
        contact.source, contact.part_a, contact.person_a, contact.part_b, contact.person_b = source, a, 1, b, 2
        contact.key, contact.count = ("k", 12) if source == "LMM" else ("", 0)
    _prefs().engine_python = _standin(tmp_path)
    return prose


def test_results_show_one_row_per_contact_with_frames(enabled_addon, tmp_path):
    """Item 4: one row per contact of the list (not one per engine term and frame), with
    before -> after, and for a range the worst frame and the frames within 1 cm; the engine's
    terms with their frame numbers only on demand."""
    from prosepose.panels.sidebar import result_text

    prose = _pair(tmp_path)
    prose.frame_mode, prose.frame_start, prose.frame_end = "RANGE", 3, 6
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    assert [(r.label, r.source, r.frame_count) for r in prose.results] == [
        ("P1 upper - P2 upper", "artist", 4), ("P1 lower - P2 upper", "lmm", 4)]
    for row in prose.results:
        assert 3 <= row.frame <= 6 and 0 <= row.within <= 4 and row.measured
        assert row.before > 0.05  # the stand-in moves Person 1's arm; Person 2 is 0 to 0.9 m away
    assert [r.frame for r in prose.result_details] == [3, 4, 5, 6]
    calls = draw_panel(bpy.types.PROSEPOSE_PT_refine).calls
    texts = [text for kind, text in calls if kind == "label"]
    assert "P1 upper - P2 upper" in texts and result_text(prose.results[0]) in texts
    assert "worst: frame" in result_text(prose.results[0]) and "frames within 1 cm" in result_text(prose.results[0])
    assert ("template_list", "PROSEPOSE_UL_result_details") not in calls
    prose.show_result_details = True
    calls = draw_panel(bpy.types.PROSEPOSE_PT_refine).calls
    assert ("template_list", "PROSEPOSE_UL_result_details") in calls and ("label", "3: P1 upper - P2 upper") in calls


def test_every_visible_setting_takes_effect(enabled_addon, tmp_path):
    """Item 5: each setting the Contacts and Refine panels draw changes what Refine does (the
    job, or for ease and influence the written layer); a language-model row shows no weight
    and the export writes none for it."""
    from prosepose.operators.refine import refine_request
    from prosepose.prose_blender import amass
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.refine import build_job

    prose = _pair(tmp_path)
    scene = bpy.context.scene
    prose.frame_mode, prose.frame_start, prose.frame_end = "RANGE", 2, 4
    scene.frame_set(10)
    prose.floor_mode = "HEIGHT"
    from support.layout_recorder import LayoutRecorder

    drawn = set()
    for index, contact in enumerate(prose.contacts):
        prose.contacts_index = index
        calls = draw_panel(bpy.types.PROSEPOSE_PT_contacts).calls + draw_panel(bpy.types.PROSEPOSE_PT_refine).calls
        drawn |= {name for kind, name in calls if kind == "prop"}
        if contact.source == "LMM":
            # Its list row and its detail box show no weight.
            row = LayoutRecorder()
            bpy.types.PROSEPOSE_UL_contacts.draw_item(None, bpy.context, row, prose, contact, 0, prose, "contacts_index", index)
            box = [c for c in calls if c[0] == "prop"]
            assert ("prop", "weight") not in row.calls
            assert box.count(("prop", "weight")) == sum(1 for c in prose.contacts if c.source == "ARTIST")
    changes = {
        "enabled": lambda: setattr(prose.contacts[0], "enabled", False),
        "weight": lambda: setattr(prose.contacts[0], "weight", 3.0),
        # Issue 20: a contact's interval (the range 2-4 is refined as one clip).
        "use_interval": lambda: setattr(prose.contacts[0], "use_interval", True),
        "frame_mode": lambda: setattr(prose, "frame_mode", "CURRENT"),
        "frame_start": lambda: setattr(prose, "frame_start", 0),
        "frame_end": lambda: setattr(prose, "frame_end", 5),
        "contact_strength": lambda: setattr(prose, "contact_strength", 2.0),
        "stay_close_strength": lambda: setattr(prose, "stay_close_strength", 2.0),
        "iterations": lambda: setattr(prose, "iterations", 50),
        "floor_mode": lambda: setattr(prose, "floor_mode", "AUTO"),
        "floor_height": lambda: setattr(prose, "floor_height", 0.3),
    }
    # Ease frames and influence shape the written layer (tests/test_blender_animator.py).
    assert drawn - set(changes) <= {"ease_frames", "refinement_influence", "show_result_details"}, drawn
    for name in sorted(drawn & set(changes)):
        job = json.dumps(build_job(scene, refine_request(scene), engine_settings()), sort_keys=True)
        state = {"enabled": prose.contacts[0].enabled, "weight": prose.contacts[0].weight, "use_interval": prose.contacts[0].use_interval}
        saved = {k: getattr(prose, k) for k in ("frame_mode", "frame_start", "frame_end", "contact_strength", "stay_close_strength", "iterations", "floor_mode", "floor_height")}
        changes[name]()
        changed = json.dumps(build_job(scene, refine_request(scene), engine_settings()), sort_keys=True)
        assert changed != job, name
        for key, value in saved.items():
            setattr(prose, key, value)
        prose.contacts[0].enabled, prose.contacts[0].weight = state["enabled"], state["weight"]
        prose.contacts[0].use_interval = state["use_interval"]
    # The export: a language-model row carries its samples, not a weight Refine ignores.
    prose.contacts[1].weight = 7.0
    out = tmp_path / "out.npz"
    amass.export_clip(scene, bpy.data.objects["P1"], [1], out, tmp_path / "out.contacts.json")
    exported = json.loads((tmp_path / "out.contacts.json").read_text())
    lmm = [c for c in exported["contacts"] if c["source"] == "lmm"]
    assert lmm and all("weight" not in c and c["samples"] == 12 for c in lmm)
    assert [c["weight"] for c in exported["contacts"] if c["source"] == "artist"] == [1.0]


def test_check_engine_fails_and_names_the_missing_packages(enabled_addon, tmp_path):
    """Item 6: an interpreter without torch and anny is not 'Engine OK'."""
    _prefs().engine_python = _standin(tmp_path, "info")
    with pytest.raises(RuntimeError, match="lacks torch, anny.*Create engine environment"):
        bpy.ops.prosepose.check_engine()


HUG = "| Person 1 part | Person 2 part |\n|---|---|\n| hand | back |\n"


def test_empty_answers_keep_the_list_and_ask_again_bypasses_the_cache(enabled_addon, tmp_path):
    """Item 7."""
    from support.fake_openai_server import FakeOpenAIServer
    from test_blender_animator import _png

    for index in (1, 2):
        rig = tmp_path / f"rig{index}.npz"
        small_rig.make_rig(rig)
        assert bpy.ops.prosepose.add_body(rig_file=str(rig), name=f"P{index}") == {"FINISHED"}
    image = tmp_path / "reference.png"
    _png(image)
    prose = bpy.context.scene.prose
    prose.reference_image = str(image)
    prefs = _prefs()
    prefs.engine_python, prefs.lmm_api_key, prefs.lmm_samples = ENGINE_PYTHON, "sk-test", 3
    with FakeOpenAIServer(texts=[HUG, HUG, HUG, "", "I cannot tell.", ""]) as server:
        prefs.lmm_base_url = server.base_url
        assert bpy.ops.prosepose.find_contacts() == {"FINISHED"}
        rows = [(c.part_a, c.part_b, c.count) for c in prose.contacts]
        assert rows == [("hand", "back", 3)] and len(server.received) == 1
        # The same image again: the kept answers, no request.
        assert bpy.ops.prosepose.find_contacts() == {"FINISHED"}
        assert len(server.received) == 1
        # Ask again: new answers, all empty or unreadable: the list stays, a message says why.
        assert bpy.ops.prosepose.find_contacts(ask_again=True) == {"FINISHED"}
        assert len(server.received) == 2
    assert [(c.part_a, c.part_b, c.count) for c in prose.contacts] == rows
    calls = draw_panel(bpy.types.PROSEPOSE_PT_reference).calls
    assert calls.count(("operator", "prosepose.find_contacts")) == 2


def test_empty_answers_message(enabled_addon, tmp_path):
    from prosepose.prose_blender.contacts import ContactsResult, ContactsTask
    from prosepose.prose_blender.settings import EngineSettings

    _pair(tmp_path)
    task = ContactsTask(EngineSettings(), bpy.context.scene, "x.png", 2)
    task.result = ContactsResult((), "[]", 20, 20)
    task.apply(bpy.context)
    assert task.messages[0].level == "WARNING"
    assert "all 20 answers were empty or unreadable; the previous 1 language-model contact(s) are kept" in task.messages[0].text
    assert [c.source for c in bpy.context.scene.prose.contacts] == ["ARTIST", "LMM"]


@pytest.mark.parametrize("choice", ["RESAMPLE", "SCENE"])
def test_a_clip_at_another_frame_rate_lands_on_whole_frames(enabled_addon, tmp_path, choice):
    """Item 8: a 30 fps clip in a 24 fps scene: resampled to 24 fps or the scene set to 30."""
    small_rig.make_rig(tmp_path / "rig.npz")
    assert bpy.ops.prosepose.add_body(rig_file=str(tmp_path / "rig.npz"), name="P1") == {"FINISHED"}
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    frames = 31  # one second at 30 fps
    angles = np.linspace(0.0, 1.0, frames)
    poses = np.zeros((frames, 3 * len(small_rig.JOINTS)))
    poses[:, 6] = angles  # the arm turns about its x axis at a steady rate
    trans = np.stack([np.linspace(0, 0.3, frames), np.zeros(frames), np.zeros(frames)], 1)
    clip = tmp_path / "clip.npz"
    np.savez(clip, poses=poses, trans=trans, betas=np.zeros(2), gender="neutral", mocap_framerate=np.float64(30))
    assert bpy.ops.prosepose.import_animation(filepath=str(clip), start_frame=1, frame_rate=choice) == {"FINISHED"}
    action = bpy.data.objects["P1"].animation_data.action
    keyed = sorted({k.co[0] for c in action_fcurves(action) for k in c.keyframe_points})
    assert all(float(f).is_integer() for f in keyed)
    if choice == "RESAMPLE":
        assert (scene.render.fps, scene.render.fps_base) == (24, 1.0)
        assert keyed == [float(f) for f in range(1, 26)]  # 1 s at 24 fps
    else:
        assert scene.render.fps / scene.render.fps_base == pytest.approx(30)
        assert keyed == [float(f) for f in range(1, 32)]
    # Half a second in, the arm has turned half way (0.5 rad) either way.
    rate = scene.render.fps / scene.render.fps_base
    scene.frame_set(1 + int(rate / 2))
    from prosepose.prose_blender import bodies, poses as poses_module
    pose = poses_module.read_engine_pose(bpy.data.objects["P1"], bodies.body_info(bpy.data.objects["P1"]))
    rest = bpy.data.objects["P1"].data.bones["arm"].matrix_local.to_quaternion()
    turned = rest @ Quaternion(pose.rotations["arm"]) @ rest.conjugated()
    assert turned.angle == pytest.approx(0.5, abs=1e-4)


def test_undo_after_refine_and_remove_refinement_restore_the_scene(enabled_addon, tmp_path):
    """Item 10: undo (with a window context, as headless Blender allows) takes a refine back;
    Remove refinement restores the scene hash-identical too."""
    _pair(tmp_path)
    scene = bpy.context.scene
    scene.frame_set(10)
    before = scene_digest()
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window, screen=window.screen, area=window.screen.areas[0]):
        bpy.ops.ed.undo_push(message="before Refine")
        assert bpy.ops.prosepose.refine() == {"FINISHED"}
        bpy.ops.ed.undo_push(message="Refine")
        assert scene_digest() != before
        bpy.ops.ed.undo()
    bpy.context.scene.frame_set(10)
    assert scene_digest() == before
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    assert bpy.ops.prosepose.remove_refinement() == {"FINISHED"}
    assert scene_digest() == before
