"""Refine and Find contacts failures end with a clear message and leave the scene exactly as
it was (hash of all actions, keyframes, object and bone transforms, NLA and mesh data); the
API key never lands in a .blend, a job file or the log."""

from __future__ import annotations

import os
import stat
import sys

import bpy
import pytest

from conftest import REPO_ROOT
from support import small_rig
from support.blender_helpers import enabled_addon, scene_digest  # noqa: F401

PLANTED_KEY = "sk-planted-test-key-4f1c9a7e"


def _standin(tmp_path, mode):
    script = tmp_path / "standin-python"
    script.write_text(f"#!/bin/sh\nPROSEPOSE_STANDIN={mode} exec {sys.executable} {REPO_ROOT / 'tests' / 'support' / 'standin_engine.py'} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _two_person_scene(tmp_path):
    for index in (1, 2):
        rig = tmp_path / f"rig{index}.npz"
        small_rig.make_rig(rig)
        assert bpy.ops.prosepose.add_body(rig_file=str(rig), name=f"P{index}") == {"FINISHED"}
    bpy.data.objects["P2"].location.x = 0.5
    bone = bpy.data.objects["P1"].pose.bones["spine"]
    for frame, w in ((1, 1.0), (10, 0.9)):
        bone.rotation_quaternion = (w, (1 - w * w) ** 0.5, 0, 0)
        bone.keyframe_insert("rotation_quaternion", frame=frame)
    prose = bpy.context.scene.prose
    contact = prose.contacts.add()
    contact.source, contact.part_a, contact.person_a, contact.part_b, contact.person_b = "ARTIST", "upper", 1, "upper", 2
    bpy.context.scene.frame_set(4)


def _prefs():
    return bpy.context.preferences.addons["prosepose"].preferences


@pytest.mark.parametrize("mode, expected", [
    ("crash", r"stopped unexpectedly \(exit code 3\).*simulated crash"),
    ("corrupt", "not valid JSON"),
])
def test_refine_failure_leaves_the_scene_unchanged(enabled_addon, tmp_path, mode, expected):
    _two_person_scene(tmp_path)
    _prefs().engine_python = _standin(tmp_path, mode)
    before = scene_digest()
    with pytest.raises(RuntimeError, match=expected):
        bpy.ops.prosepose.refine()
    assert scene_digest() == before
    assert not bpy.context.scene.prose.results


def test_refine_cancel_stops_the_engine_and_leaves_the_scene_unchanged(enabled_addon, tmp_path):
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.refine import RefineTask
    from prosepose.operators.refine import refine_request
    from prosepose.prose_blender.tasks import TaskState

    _two_person_scene(tmp_path)
    _prefs().engine_python = _standin(tmp_path, "hang")
    before = scene_digest()
    task = RefineTask(engine_settings(), bpy.context.scene, refine_request(bpy.context.scene))
    task.start()
    for _ in range(100):
        assert task.poll() is TaskState.RUNNING
        if task.progress > 0:
            break
        import time
        time.sleep(0.02)
    assert task.progress > 0 and "iteration" in task.status_text
    task.cancel()
    assert task.state is TaskState.CANCELLED and task.process.returncode is not None
    assert task.finish(bpy.context) is False
    assert "cancelled" in task.messages[-1].text
    assert scene_digest() == before


def test_missing_interpreter_is_reported_and_nothing_changes(enabled_addon, tmp_path):
    _two_person_scene(tmp_path)
    _prefs().engine_python = str(tmp_path / "no-such-python")
    before = scene_digest()
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.prosepose.refine()
    _prefs().engine_python = ""
    with pytest.raises(RuntimeError, match="No engine interpreter is set"):
        bpy.ops.prosepose.refine()
    assert scene_digest() == before


def test_online_access_off_blocks_a_remote_endpoint(enabled_addon, tmp_path):
    _two_person_scene(tmp_path)
    image = tmp_path / "ref.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    bpy.context.scene.prose.reference_image = str(image)
    _prefs().engine_python = _standin(tmp_path, "env")
    _prefs().lmm_base_url = "https://api.example.invalid/v1"
    system = bpy.context.preferences.system
    previous = system.use_online_access
    system.use_online_access = False
    try:
        with pytest.raises(RuntimeError, match="Online access is disabled"):
            bpy.ops.prosepose.find_contacts()
    finally:
        system.use_online_access = previous


def test_api_key_reaches_the_engine_only_through_its_environment(enabled_addon, tmp_path):
    _two_person_scene(tmp_path)
    image = tmp_path / "ref.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    prose = bpy.context.scene.prose
    prose.reference_image = str(image)
    prefs = _prefs()
    prefs.lmm_api_key = PLANTED_KEY
    prefs.lmm_api_key_env = "PROSEPOSE_TEST_KEY"
    prefs.lmm_base_url = "http://127.0.0.1:9/v1"
    prefs.engine_python = _standin(tmp_path, "env")
    before = scene_digest()
    with pytest.raises(RuntimeError, match="key variable PROSEPOSE_TEST_KEY set: True"):
        bpy.ops.prosepose.find_contacts()
    assert scene_digest() == before
    # A job file as Refine writes it.
    prefs.engine_python = _standin(tmp_path, "crash")
    with pytest.raises(RuntimeError):
        bpy.ops.prosepose.refine()
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
    cache = tmp_path / "cache"
    written = [blend] + [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-job.json") for p in written) and any(p.name == "engine.log" for p in written)
    leaks = [str(p) for p in written if PLANTED_KEY.encode() in p.read_bytes()]
    assert not leaks
    assert PLANTED_KEY not in os.environ.get("PROSEPOSE_TEST_KEY", "")


def test_refine_result_becomes_a_new_action_on_a_new_track(enabled_addon, tmp_path):
    """The write-back path on its own (the stand-in answers with the job's poses, one joint
    turned); the real optimizer is covered by test_blender_end_to_end.py."""
    from support.blender_helpers import action_digest

    _two_person_scene(tmp_path)
    _prefs().engine_python = _standin(tmp_path, "echo")
    prose = bpy.context.scene.prose
    prose.move_person_2 = False
    p1, p2 = bpy.data.objects["P1"], bpy.data.objects["P2"]
    original = p1.animation_data.action
    original_digest = action_digest(original)
    p2_before = [tuple(b.matrix_basis.col[3]) + tuple(b.rotation_quaternion) for b in p2.pose.bones]
    spine_before = p1.pose.bones["spine"].rotation_quaternion.normalized()
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    assert action_digest(original) == original_digest
    assert [t.strips[0].action for t in p1.animation_data.nla_tracks][0] == original
    track = p1.animation_data.nla_tracks[-1]
    refined = track.strips[0].action
    assert track.name == "ProsePose refinement" and refined.name == "P1 refined 4"
    assert p2.animation_data is None or not p2.animation_data.nla_tracks
    bpy.context.scene.frame_set(4)
    assert abs(abs(p1.pose.bones["arm"].rotation_quaternion.dot((0.8, 0.6, 0.0, 0.0))) - 1) < 1e-6
    # Same rotation (the job carries unit quaternions; an interpolated key is not unit).
    assert abs(p1.pose.bones["spine"].rotation_quaternion.normalized().dot(spine_before)) > 1 - 1e-9
    assert [tuple(b.matrix_basis.col[3]) + tuple(b.rotation_quaternion) for b in p2.pose.bones] == p2_before
    # One row per contact of the list (measured on the meshes), the engine's terms as details.
    assert [(r.label, r.frame, r.frame_count) for r in prose.results] == [("P1 upper - P2 upper", 4, 1)]
    assert [(r.frame, r.label, round(r.before, 3), round(r.after, 3)) for r in prose.result_details] == [(4, "P1 upper - P2 upper", 0.3, 0.01)]
    # Away from the refined frame the original animation plays unchanged.
    bpy.context.scene.frame_set(10)
    assert abs(p1.pose.bones["spine"].rotation_quaternion.w - 0.9) < 1e-6


class _Event:
    def __init__(self, type_, value="PRESS"):
        self.type, self.value = type_, value


class _ModalDriver:
    """Drives the operators' modal() the way Blender's event loop does (a headless bpy has no
    event loop, so the timer events are fed by hand); reports are collected."""

    def __init__(self, task):
        from prosepose.operators.task_operator import TaskOperatorMixin

        self.reports = []
        self._task = task
        self._timer = None
        self.modal = TaskOperatorMixin.modal.__get__(self)
        self._conclude = TaskOperatorMixin._conclude.__get__(self)

    def report(self, levels, text):
        self.reports.append((set(levels), text))


def test_modal_loop_polls_on_timer_events_and_esc_cancels(enabled_addon, tmp_path):
    from prosepose.operators.refine import refine_request
    from prosepose.prose_blender import runtime
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.refine import RefineTask

    _two_person_scene(tmp_path)
    before = scene_digest()
    _prefs().engine_python = _standin(tmp_path, "hang")
    task = RefineTask(engine_settings(), bpy.context.scene, refine_request(bpy.context.scene))
    task.start()
    driver = _ModalDriver(task)
    assert runtime.active_task() is task and not bpy.ops.prosepose.refine.poll()
    import time
    for _ in range(200):
        assert driver.modal(bpy.context, _Event("TIMER")) == {"RUNNING_MODAL"}
        if task.progress > 0:
            break
        time.sleep(0.02)
    assert driver.modal(bpy.context, _Event("MOUSEMOVE")) == {"PASS_THROUGH"}
    assert driver.modal(bpy.context, _Event("ESC")) == {"CANCELLED"}
    assert driver.reports and "cancelled" in driver.reports[-1][1]
    assert runtime.active_task() is None and bpy.ops.prosepose.refine.poll()
    assert scene_digest() == before

    # The same loop to a successful end; then the operator called as the UI calls it (a
    # headless bpy runs it through execute).
    _prefs().engine_python = _standin(tmp_path, "echo")
    task = RefineTask(engine_settings(), bpy.context.scene, refine_request(bpy.context.scene))
    task.start()
    driver = _ModalDriver(task)
    for _ in range(500):
        state = driver.modal(bpy.context, _Event("TIMER"))
        if state != {"RUNNING_MODAL"}:
            break
        time.sleep(0.02)
    assert state == {"FINISHED"} and any("ProsePose refinement" in text for _, text in driver.reports)
    assert bpy.ops.prosepose.refine("INVOKE_DEFAULT") == {"FINISHED"}
    # A second run replaces the first: still one refinement track (above the original and
    # the base pose of the bones the original does not animate).
    names = [t.name for t in bpy.data.objects["P1"].animation_data.nla_tracks]
    assert names == ["P1Action", "ProsePose base pose", "ProsePose refinement"]


def test_refining_a_frame_range_keys_every_frame(enabled_addon, tmp_path):
    from support.blender_helpers import action_fcurves

    _two_person_scene(tmp_path)
    _prefs().engine_python = _standin(tmp_path, "echo")
    prose = bpy.context.scene.prose
    prose.frame_mode, prose.frame_start, prose.frame_end, prose.ease_frames = "RANGE", 3, 6, 0
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    for name in ("P1", "P2"):
        refined = bpy.data.objects[name].animation_data.nla_tracks[-1].strips[0].action
        frames = {tuple(k.co[0] for k in curve.keyframe_points) for curve in action_fcurves(refined)}
        assert frames == {(3.0, 4.0, 5.0, 6.0)}
    assert bpy.context.scene.frame_current == 4


def test_disabling_the_addon_mid_refine_stops_the_engine_and_its_timer(enabled_addon, tmp_path):
    """What the modal operator holds while it runs (the task, a window timer) is released when
    the add-on is disabled. A headless bpy runs operators through execute, so the modal state
    is set up here the way invoke() sets it up."""
    import addon_utils
    from prosepose.operators.refine import refine_request
    from prosepose.prose_blender import runtime
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.refine import RefineTask

    _two_person_scene(tmp_path)
    _prefs().engine_python = _standin(tmp_path, "hang")
    before = scene_digest()
    window_manager = bpy.context.window_manager
    task = RefineTask(engine_settings(), bpy.context.scene, refine_request(bpy.context.scene))
    task.start()
    runtime.add_timer(window_manager, window_manager.event_timer_add(0.1, window=window_manager.windows[0]))
    assert runtime.active_task() is task and len(runtime._timers) == 1
    addon_utils.disable("prosepose", default_set=True, handle_error=None)
    assert task.process.returncode is not None and runtime.active_task() is None and not runtime._timers
    assert not hasattr(bpy.types.Scene, "prose")
    addon_utils.enable("prosepose", default_set=True, handle_error=None)
    assert scene_digest() == before
